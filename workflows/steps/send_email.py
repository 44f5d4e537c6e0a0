"""Send email: recipient, subject, HTML and text bodies as sandboxed Jinja2 templates, from one of the
tenant's senders (integrations.models.Sender: From, Reply-To, and the provider that carries it), with
optional Reply-To, CC and BCC templates. Header values never keep CR or LF (render_header).

Consent (consent/): a step with "allow unsubscribe" carries `List-Unsubscribe` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` and gives templates `{{ unsubscribe_url }}`, for
its topic. Before a batch is sent, one statement finds which of its recipients are suppressed or
unsubscribed (`skip_reasons`); those, and empty addresses, get a `skipped` delivery instead.
The HTML goes through the step's layout (or the tenant's default), CSS is inlined, and a text part is
made from the HTML when the step has no text body.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from consent import email_step as consent
from integrations.channels.base import ChannelError
from integrations.email_providers.platform import PLATFORM
from integrations.failures import Failure
from integrations.models import Sender
from integrations.templating import render, render_header, template_variables
from workflows.steps.base import ConfigError, Field
from workflows.steps.common import RETRY_FIELDS, clean_retry, clean_template
from workflows.steps.context import StepContext
from workflows.steps.send_kind import SendKind, rendered, template_context

TEMPLATE_FIELDS = (("to", "To"), ("subject", "Subject"), ("html", "HTML body"), ("text", "Text body"))

MAX_COPY_ADDRESSES = 50
DEFAULT = "default"


class SendEmail(SendKind):
    kind = "send_email"
    label = "Send email"
    description = "Sends one email per item, rendered from templates over the item."
    channel = "email"
    previews_in_panel = True
    fields = (
        Field("sender", "From", widget="sender", help="Senders and their providers are on the Email page."),
        Field("to", "To", widget="template", required=True, help="e.g. {{ item.email }}"),
        Field("subject", "Subject", widget="template", required=True),
        Field(
            "html",
            "HTML body",
            widget="template",
            help="Values are HTML-escaped. <style> blocks are inlined for mail clients.",
        ),
        Field("text", "Text body", widget="template", help="Left empty, it is made from the HTML body."),
        Field("reply_to", "Reply-To", widget="template", help="Empty: the sender's Reply-To, if any."),
        Field("cc", "CC", widget="template", help="Addresses separated by commas."),
        Field("bcc", "BCC", widget="template", help="Addresses separated by commas."),
        Field("layout", "Layout", widget="layout", help="The HTML around the body (footer, address)."),
        Field(
            "allow_unsubscribe",
            "Allow unsubscribe",
            widget="checkbox",
            help="Off for transactional mail (receipts, password resets, security alerts).",
        ),
        Field("topic", "Topic", widget="topic", help="What recipients unsubscribe from."),
        Field(
            "continue_when_skipped",
            "Go on to the next steps when the recipient is skipped",
            widget="checkbox",
        ),
        *RETRY_FIELDS,
    )

    def default_config(self) -> dict[str, Any]:
        return {"to": "{{ item.email }}", "subject": "", "html": "", "text": ""}

    def summary(self, config: dict[str, Any]) -> str:
        subject = (config.get("subject") or "").strip()
        return f"“{subject}” to {config.get('to') or '?'}" if subject else f"to {config.get('to') or '?'}"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        sender = config.get("sender")
        if sender in (None, ""):
            cleaned["sender"] = None
        elif isinstance(sender, int) and not isinstance(sender, bool):
            cleaned["sender"] = sender
        else:
            errors["sender"] = "Choose one of the workspace's senders."
        clean_template(config, "to", errors, cleaned, required=True)
        clean_template(config, "subject", errors, cleaned, required=True)
        clean_template(config, "html", errors, cleaned, required=False)
        clean_template(config, "text", errors, cleaned, required=False)
        for name in ("reply_to", "cc", "bcc"):
            clean_template(config, name, errors, cleaned, required=False)
        if not errors and not (cleaned["html"].strip() or cleaned["text"].strip()):
            errors["text"] = "Write a text body, an HTML body, or both."
        consent.clean_consent(config, errors, cleaned)
        if not cleaned.get("allow_unsubscribe"):
            for name, label in TEMPLATE_FIELDS:
                if name in cleaned and "unsubscribe_url" in template_variables(cleaned[name]):
                    errors[name] = (
                        f"{label} uses {{{{ unsubscribe_url }}}}, but this step does not allow unsubscribe: "
                        "tick “Allow unsubscribe” or remove the link."
                    )
        clean_retry(config, errors, cleaned)
        if errors:
            raise ConfigError(errors)
        return cleaned

    def address(self, ctx: StepContext, item: dict[str, Any]) -> str:
        """The rendered recipient (may be empty: such a message is skipped, not failed)."""
        return rendered("To", render_header, ctx.step.config["to"], template_context(ctx, item))

    def skip_reasons(self, ctx: StepContext, pairs) -> dict[int, tuple[str, str]]:
        return consent.batch_skip_reasons(ctx, self, pairs)

    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        config = ctx.step.config
        context = template_context(ctx, item)
        to = rendered("To", render_header, config["to"], context)
        _check_address("To", to)
        sender = resolve_sender(ctx, config.get("sender"))
        reply_to = rendered("Reply-To", render_header, config.get("reply_to") or "", context)
        if reply_to:
            _check_address("Reply-To", reply_to)
        subject = rendered("Subject", render_header, config["subject"], context)
        headers = consent.unsubscribe_headers(ctx, to, context)
        body_html = rendered("HTML body", render, config.get("html") or "", context, html=True)
        html = rendered("Layout", consent.compose_html, ctx, body_html, context)
        text = rendered("Text body", render, config.get("text") or "", context)
        content = {
            "to": to,
            "subject": subject,
            "text": text or consent.html_to_text(html),
            "html": html,
        }
        extra = {
            "from": sender.from_header if sender else settings.DEFAULT_FROM_EMAIL,
            "reply_to": reply_to or (sender.reply_to if sender else ""),
            "cc": _address_list("CC", config.get("cc"), context),
            "bcc": _address_list("BCC", config.get("bcc"), context),
            "headers": headers,
        }
        content.update({key: value for key, value in extra.items() if value})
        if sender is not None:
            content["sender"] = sender.name
        transport = {**content, "provider": sender.provider if sender else None}
        return content, transport

    def recipient(self, content: dict[str, Any]) -> str:
        return content["to"]

    def provider_id(self, ctx: StepContext) -> int | None:
        try:
            sender = resolve_sender(ctx, ctx.step.config.get("sender"))
        except Failure:
            return None  # the message fails with the reason (render resolves the sender too)
        return sender.provider_id if sender is not None else None

    def on_refused(self, ctx: StepContext, error: ChannelError, delivery_id: int) -> None:
        consent.suppress_refused(ctx.run.tenant_id, error, delivery_id)

    def result_items_when_skipped(self, config: dict[str, Any], item: dict[str, Any]) -> list[dict]:
        return [item] if config.get("continue_when_skipped") else []

    def messages_in_flight(self, ctx: StepContext) -> int:
        """What the sender's provider allows (the platform's own server without one)."""
        try:
            sender = resolve_sender(ctx, ctx.step.config.get("sender"))
        except Failure:
            return 1  # each message then fails with the reason, one at a time
        provider = sender.provider if sender is not None else None
        return (provider.kind_module if provider is not None else PLATFORM).messages_in_flight()

    def override_recipient(self, content, transport, recipient):
        # A test run's override reaches the tester only: no copies to CC or BCC.
        drop = ("cc", "bcc")
        content = {k: v for k, v in content.items() if k not in drop}
        content.update({"to": recipient, "original_to": content["to"]})
        transport = {k: v for k, v in transport.items() if k not in drop}
        transport.update({"to": recipient, "original_to": transport["to"]})
        return content, transport


def resolve_sender(ctx: StepContext, sender_id: int | None):
    """The step's sender (or the tenant's default; None: the platform's address and server), read once
    per batch with its provider."""

    key = ("sender", sender_id or DEFAULT)
    cache = ctx.resources.cache
    if key not in cache:
        senders = Sender.objects.filter(tenant_id=ctx.run.tenant_id).select_related("provider")
        found = (senders.filter(pk=sender_id) if sender_id else senders.filter(is_default=True)).first()
        if sender_id and found is None:
            raise Failure(
                "From: the sender chosen in this step no longer exists; choose another one.", permanent=True
            )
        cache[key] = found
    return cache[key]


def _check_address(label: str, address: str) -> None:
    try:
        validate_email(address)
    except ValidationError:
        raise Failure(f"{label}: “{address}” is not an email address.", permanent=True) from None


def _address_list(label: str, template: str | None, context: dict[str, Any]) -> list[str]:
    if not template:
        return []
    text = rendered(label, render_header, template, context)
    addresses = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
    if len(addresses) > MAX_COPY_ADDRESSES:
        raise Failure(f"{label}: at most {MAX_COPY_ADDRESSES} addresses.", permanent=True)
    for address in addresses:
        _check_address(label, address)
    return addresses
