"""What a send email step asks of consent: who to skip, unsubscribe links, and layouts.

Kept out of workflows/steps/send_email.py so that the step reads as what it sends, and so that the
engine's statement budget is visible in one place: `batch_skip_reasons` is one statement per batch,
and the layout is read once per batch (cached in the batch's resources).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from consent.checks import skip_reasons
from consent.layouts import compose, html_to_text
from consent.models import EmailLayout, Suppression
from consent.suppression import suppress_address
from consent.tokens import unsubscribe_url
from integrations.channels.base import ChannelError
from integrations.failures import Failure

NO_LAYOUT = "none"
NO_ADDRESS = "no recipient address"

__all__ = ["batch_skip_reasons", "compose_html", "html_to_text", "suppress_refused", "unsubscribe_headers"]


def unsubscribes_apply(config: dict[str, Any]) -> bool:
    """Steps that allow unsubscribe honour unsubscribes; transactional ones only when the operator says so
    (CONSENT_TRANSACTIONAL_IGNORES_UNSUBSCRIBES). Suppressions apply to every step, always."""
    return bool(config.get("allow_unsubscribe")) or not settings.CONSENT_TRANSACTIONAL_IGNORES_UNSUBSCRIBES


def batch_skip_reasons(ctx, kind, pairs: list[tuple[int, dict[str, Any]]]) -> dict[int, tuple[str, str]]:
    """{key: (address, reason)} for the messages of a batch that must not be sent (one statement).

    `pairs` are (execution id, item). A recipient template that fails is left to the send, which fails
    the message with the template's error.
    """
    config = ctx.step.config
    skips: dict[int, tuple[str, str]] = {}
    addresses: dict[int, str] = {}
    for key, item in pairs:
        try:
            address = kind.address(ctx, item)
        except Failure:
            continue
        if address:
            addresses[key] = address
        else:
            skips[key] = ("", NO_ADDRESS)
    reasons = skip_reasons(
        ctx.run.tenant_id, addresses.values(), config.get("topic"), unsubscribes_apply(config)
    )
    for key, address in addresses.items():
        reason = reasons.get(address.strip().lower())
        if reason:
            skips[key] = (address, reason)
    return skips


def link_address(ctx, to: str) -> str:
    """Whose subscriptions the message's links change: in a test run sent to the tester, the tester's."""
    options = ctx.run.options or {}
    return options.get("override_recipient") or to if ctx.run.is_test else to


def unsubscribe_headers(ctx, to: str, context: dict[str, Any]) -> dict[str, str]:
    """RFC 8058 headers for a step that allows unsubscribe; puts `unsubscribe_url` in the templates' context."""
    config = ctx.step.config
    if not config.get("allow_unsubscribe"):
        return {}
    url = unsubscribe_url(ctx.run.tenant_id, link_address(ctx, to), config.get("topic"))
    context["unsubscribe_url"] = url
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def step_layout(ctx) -> str | None:
    """The HTML of the step's layout (or the tenant's default), read once per batch."""
    cache = ctx.resources.cache
    key = ("layout", ctx.step.pk)
    if key not in cache:
        cache[key] = _load_layout(ctx.run.tenant_id, ctx.step.config.get("layout"))
    return cache[key]


def _load_layout(tenant_id: int, choice: Any) -> str | None:
    if choice == NO_LAYOUT:
        return None
    layouts = EmailLayout.objects.filter(tenant_id=tenant_id)
    if choice in (None, ""):
        return layouts.filter(is_default=True).values_list("html", flat=True).first()
    html = layouts.filter(pk=choice).values_list("html", flat=True).first()
    if html is None:
        raise Failure(
            "Layout: the layout chosen for this step no longer exists; choose another.", permanent=True
        )
    return html


def compose_html(ctx, body_html: str, context: dict[str, Any]) -> str:
    layout = step_layout(ctx)
    if not body_html and not layout:
        return ""
    return compose(body_html, layout, {**context, "unsubscribe_url": context.get("unsubscribe_url", "")})


def suppress_refused(tenant_id: int, error: ChannelError, delivery_id: int) -> None:
    """The server refused the recipient itself (5xx at RCPT): never send to that address again."""
    if error.refused_address:
        suppress_address(
            tenant_id,
            error.refused_address,
            Suppression.Reason.REJECTED,
            delivery=delivery_id,
            source=Suppression.Source.SMTP,
            detail=error.message,
            channel="email",
        )
