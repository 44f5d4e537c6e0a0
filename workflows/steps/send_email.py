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

from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from consent import email_step as consent
from integrations.channels.base import ChannelError
from integrations.channels.email import EmailTransport
from integrations.email_providers.platform import PLATFORM, platform_rate_limit
from integrations.failures import Failure
from integrations.message_keys import message_key
from integrations.models import Provider, Sender
from integrations.ratelimit import RateLimit
from integrations.templating import render, render_header, template_variables
from workflows.steps import budget
from workflows.steps.common import RetryForm, RetrySettings
from workflows.steps.context import SentDelivery, StepContext
from workflows.steps.fields import ChoiceField, FlagField, TemplateField
from workflows.steps.forms import StepForm
from workflows.steps.references import LayoutField, SenderField, TopicField
from workflows.steps.send_kind import SendKind, rendered, template_context
from workflows.steps.send_window import SendWindowForm, SendWindowSettings

TEMPLATE_FIELDS = (("to", "To"), ("subject", "Subject"), ("html", "HTML body"), ("text", "Text body"))

MAX_COPY_ADDRESSES = 50
DEFAULT = "default"


@dataclass(kw_only=True)
class EmailSettings(SendWindowSettings, RetrySettings):
    sender: int | None = None
    to: str
    subject: str
    html: str = ""
    text: str = ""
    reply_to: str = ""
    cc: str = ""
    bcc: str = ""
    layout: int | str | None = None  # a layout's id, NO_LAYOUT, or None: the workspace's default
    allow_unsubscribe: bool = False
    topic: int | None = None
    priority: str = "normal"
    over_budget: str = "drop"
    continue_when_skipped: bool = False


class EmailForm(RetryForm, SendWindowForm, StepForm):
    settings_class = EmailSettings

    sender = SenderField(label="From", help_text="Senders and their providers are on the Email page.")
    to = TemplateField(label="To", required=True, help_text="e.g. {{ item.email }}")
    subject = TemplateField(label="Subject", required=True)
    html = TemplateField(
        label="HTML body", help_text="Values are HTML-escaped. <style> blocks are inlined for mail clients."
    )
    text = TemplateField(label="Text body", help_text="Left empty, it is made from the HTML body.")
    reply_to = TemplateField(label="Reply-To", help_text="Empty: the sender's Reply-To, if any.")
    cc = TemplateField(label="CC", help_text="Addresses separated by commas.")
    bcc = TemplateField(label="BCC", help_text="Addresses separated by commas.")
    layout = LayoutField(label="Layout", help_text="The HTML around the body (footer, address).")
    allow_unsubscribe = FlagField(
        label="Allow unsubscribe",
        help_text="Off for transactional mail (receipts, password resets, security alerts).",
    )
    topic = TopicField(label="Topic", help_text="What recipients unsubscribe from.")
    priority = ChoiceField(
        label="Priority",
        choices=budget.PRIORITIES,
        required=False,
        initial="normal",
        help_text="Which message wins when the recipient's frequency budget (a tenant limit) runs short.",
    )
    over_budget = ChoiceField(
        label="Over the recipient's budget",
        choices=budget.OVER_BUDGET_POLICIES,
        required=False,
        initial="drop",
        help_text="Transactional topics are always exempt; a message without a topic counts unless exempt here.",
    )
    continue_when_skipped = FlagField(label="Go on to the next steps when the recipient is skipped")

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        data["priority"] = data.get("priority") or "normal"
        data["over_budget"] = data.get("over_budget") or "drop"
        if not self.errors and not (data["html"].strip() or data["text"].strip()):
            self.add_error("text", "Write a text body, an HTML body, or both.")
        if not data.get("allow_unsubscribe"):
            for name, label in TEMPLATE_FIELDS:
                if name in data and "unsubscribe_url" in template_variables(data[name]):
                    self.add_error(
                        name,
                        f"{label} uses {{{{ unsubscribe_url }}}}, but this step does not allow unsubscribe: "
                        "tick “Allow unsubscribe” or remove the link.",
                    )
        return data


class SendEmail(SendKind[EmailTransport]):
    kind = "send_email"
    label = "Send email"
    description = "Sends one email per item, rendered from templates over the item."
    channel = "email"
    previews_in_panel = True
    form_class = EmailForm

    def default_config(self) -> dict[str, Any]:
        return {"to": "{{ item.email }}", "subject": "", "html": "", "text": ""}

    def summary(self, config: dict[str, Any]) -> str:
        subject = (config.get("subject") or "").strip()
        return f"“{subject}” to {config.get('to') or '?'}" if subject else f"to {config.get('to') or '?'}"

    def address(self, ctx: StepContext, item: dict[str, Any]) -> str:
        """The rendered recipient (may be empty: such a message is skipped, not failed)."""
        return rendered("To", render_header, self.step_settings(ctx).to, template_context(ctx, item))

    def skip_reasons(
        self, ctx: StepContext, pairs: list[tuple[int, dict[str, Any]]]
    ) -> dict[int, tuple[str, str]]:
        """Suppressed, unsubscribed or empty recipients; then, of the rest, those over their frequency
        budget (workflows/steps/budget.py), which counts the messages it lets through."""
        skips = consent.batch_skip_reasons(ctx, self, pairs)
        addresses: dict[int, str] = {}
        for key, item in pairs:
            if key in skips:
                continue
            try:
                addresses[key] = self.address(ctx, item)
            except Failure:
                continue  # the send fails the message with the template's error
        skips.update(budget.over_budget(ctx, addresses))
        return skips

    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], EmailTransport]:
        step = self.step_settings(ctx)
        context = template_context(ctx, item)
        to = rendered("To", render_header, step.to, context)
        _check_address("To", to)
        sender = resolve_sender(ctx, step.sender)
        reply_to = rendered("Reply-To", render_header, step.reply_to or "", context)
        if reply_to:
            _check_address("Reply-To", reply_to)
        subject = rendered("Subject", render_header, step.subject, context)
        headers = consent.unsubscribe_headers(ctx, to, context)
        body_html = rendered("HTML body", render, step.html or "", context, html=True)
        html = rendered("Layout", consent.compose_html, ctx, body_html, context)
        text = rendered("Text body", render, step.text or "", context)
        content: dict[str, Any] = {
            "to": to,
            "subject": subject,
            "text": text or consent.html_to_text(html),
            "html": html,
        }
        extra = {
            "from": sender.from_header if sender else settings.DEFAULT_FROM_EMAIL,
            "reply_to": reply_to or (sender.reply_to if sender else ""),
            "cc": _address_list("CC", step.cc, context),
            "bcc": _address_list("BCC", step.bcc, context),
            "headers": headers,
        }
        content.update({key: value for key, value in extra.items() if value})
        if sender is not None:
            content["sender"] = sender.name
        # The content's keys are EmailTransport's (to, subject, text, html and the optional ones above).
        transport = cast(EmailTransport, {**content, "provider": sender.provider if sender else None})
        return content, transport

    def recipient(self, content: dict[str, Any]) -> str:
        return str(content["to"])

    def provider_id(self, ctx: StepContext) -> int | None:
        try:
            sender = resolve_sender(ctx, ctx.step.config.get("sender"))
        except Failure:
            return None  # the message fails with the reason (render resolves the sender too)
        return sender.provider_id if sender is not None else None

    def rate_limit(self, ctx: StepContext) -> RateLimit | None:
        """The sender's provider's limit (the platform's server's, EMAIL_RATE_PER_SECOND, without one)."""
        try:
            sender = resolve_sender(ctx, self.step_settings(ctx).sender)
        except Failure:
            return None  # each message then fails with the reason
        provider = sender.provider if sender is not None else None
        return provider.rate_limit if provider is not None else platform_rate_limit()

    def was_accepted(self, ctx: StepContext, delivery: SentDelivery) -> bool | None:
        """Asked of the provider the message went through, by the opaque key it carried as metadata
        (Postmark, Mailgun); the platform's own server and SMTP or SES providers cannot tell."""
        if delivery.sent_via_id is None:
            return None
        provider = Provider.objects.filter(pk=delivery.sent_via_id, tenant_id=ctx.run.tenant_id).first()
        if provider is None or not provider.kind_module.can_look_up:
            return None
        key = message_key(delivery.step_execution_id)
        accepted: bool | None = provider.kind_module.accepted(provider, key, delivery.content or {})
        return accepted

    def cost(self, transport: EmailTransport) -> int:
        """One token per recipient, To + CC + BCC (SES and most ESPs count recipients, not messages)."""
        return 1 + len(transport.get("cc") or ()) + len(transport.get("bcc") or ())

    def on_refused(self, ctx: StepContext, error: ChannelError, delivery_id: int) -> None:
        consent.suppress_refused(ctx.run.tenant_id, error, delivery_id)

    def result_items_when_skipped(self, config: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
        return [item] if self.settings(config).continue_when_skipped else []

    def messages_in_flight(self, ctx: StepContext) -> int:
        """What the sender's provider allows (the platform's own server without one)."""
        try:
            sender = resolve_sender(ctx, self.step_settings(ctx).sender)
        except Failure:
            return 1  # each message then fails with the reason, one at a time
        provider = sender.provider if sender is not None else None
        return (provider.kind_module if provider is not None else PLATFORM).messages_in_flight()

    def override_recipient(
        self, content: dict[str, Any], transport: EmailTransport, recipient: str
    ) -> tuple[dict[str, Any], EmailTransport]:
        # A test run's override reaches the tester only: no copies to CC or BCC.
        drop = ("cc", "bcc")
        content = {k: v for k, v in content.items() if k not in drop}
        content.update({"to": recipient, "original_to": content["to"]})
        redirected = transport.copy()
        redirected.pop("cc", None)
        redirected.pop("bcc", None)
        redirected.update({"to": recipient, "original_to": transport["to"]})
        return content, redirected


def resolve_sender(ctx: StepContext, sender_id: int | None) -> Sender | None:
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
    found_sender: Sender | None = cache[key]
    return found_sender


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
