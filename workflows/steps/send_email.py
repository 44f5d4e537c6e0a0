"""Send email: recipient, subject, HTML and text bodies as sandboxed Jinja2 templates, sent over SMTP.

Consent (consent/): a step with "allow unsubscribe" carries `List-Unsubscribe` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` and gives templates `{{ unsubscribe_url }}`, for
its topic. Before a batch is sent, one statement finds which of its recipients are suppressed or
unsubscribed (`skip_reasons`); those, and empty addresses, get a `skipped` delivery instead.
The HTML goes through the step's layout (or the tenant's default), CSS is inlined, and a text part is
made from the HTML when the step has no text body.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from consent import sending as consent
from integrations.channels.email import EmailChannel
from workflows.steps import register
from workflows.steps.base import ConfigError, Field
from workflows.steps.common import RETRY_FIELDS, clean_retry, clean_template
from workflows.steps.results import StepFailed
from workflows.steps.sending import SendKind, rendered, template_context
from workflows.templating import render, render_header, template_variables

TEMPLATE_FIELDS = (("to", "To"), ("subject", "Subject"), ("html", "HTML body"), ("text", "Text body"))


@register
class SendEmail(SendKind):
    kind = "send_email"
    label = "Send email"
    description = "Sends one email per item, rendered from templates over the item."
    channel = "email"
    fields = (
        Field("to", "To", widget="template", required=True, help="e.g. {{ item.email }}"),
        Field("subject", "Subject", widget="template", required=True),
        Field(
            "html",
            "HTML body",
            widget="template",
            help="Values are HTML-escaped. <style> blocks are inlined for mail clients.",
        ),
        Field("text", "Text body", widget="template", help="Left empty, it is made from the HTML body."),
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
        clean_template(config, "to", errors, cleaned, required=True)
        clean_template(config, "subject", errors, cleaned, required=True)
        clean_template(config, "html", errors, cleaned, required=False)
        clean_template(config, "text", errors, cleaned, required=False)
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

    def address(self, ctx, item: dict[str, Any]) -> str:
        """The rendered recipient (may be empty: such a message is skipped, not failed)."""
        return rendered("To", render_header, ctx.step.config["to"], template_context(ctx, item))

    def skip_reasons(self, ctx, pairs) -> dict[int, tuple[str, str]]:
        return consent.batch_skip_reasons(ctx, self, pairs)

    def render(self, ctx, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        config = ctx.step.config
        context = template_context(ctx, item)
        to = rendered("To", render_header, config["to"], context)
        try:
            validate_email(to)
        except ValidationError:
            raise StepFailed(f"To: “{to}” is not an email address.", permanent=True) from None
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
        if headers:
            content["headers"] = headers
        return content, content

    def recipient(self, content: dict[str, Any]) -> str:
        return content["to"]

    def result_items_when_skipped(self, config: dict[str, Any], item: dict[str, Any]) -> list[dict]:
        return [item] if config.get("continue_when_skipped") else []

    def open_channel(self) -> EmailChannel:
        return EmailChannel()

    def override_recipient(self, content, transport, recipient):
        content = {**content, "to": recipient, "original_to": content["to"]}
        return content, content
