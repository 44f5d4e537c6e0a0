"""Send email: recipient, subject, HTML and text bodies as sandboxed Jinja2 templates, sent over SMTP."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from integrations.channels.email import EmailChannel
from workflows.steps import register
from workflows.steps.base import ConfigError, Field
from workflows.steps.common import RETRY_FIELDS, clean_retry, clean_template
from workflows.steps.results import StepFailed
from workflows.steps.sending import SendKind, rendered, template_context
from workflows.templating import render, render_header


@register
class SendEmail(SendKind):
    kind = "send_email"
    label = "Send email"
    description = "Sends one email per item, rendered from templates over the item."
    channel = "email"
    fields = (
        Field("to", "To", widget="template", required=True, help="e.g. {{ item.email }}"),
        Field("subject", "Subject", widget="template", required=True),
        Field("html", "HTML body", widget="template", help="Values are HTML-escaped."),
        Field("text", "Text body", widget="template"),
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
        clean_retry(config, errors, cleaned)
        if errors:
            raise ConfigError(errors)
        return cleaned

    def render(self, ctx, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        config = ctx.step.config
        context = template_context(ctx, item)
        to = rendered("To", render_header, config["to"], context)
        try:
            validate_email(to)
        except ValidationError:
            raise StepFailed(f"To: “{to}” is not an email address.", permanent=True) from None
        content = {
            "to": to,
            "subject": rendered("Subject", render_header, config["subject"], context),
            "text": rendered("Text body", render, config.get("text") or "", context),
            "html": rendered("HTML body", render, config.get("html") or "", context, html=True),
        }
        return content, content

    def recipient(self, content: dict[str, Any]) -> str:
        return content["to"]

    def open_channel(self) -> EmailChannel:
        return EmailChannel()

    def override_recipient(self, content, transport, recipient):
        content = {**content, "to": recipient, "original_to": content["to"]}
        return content, content
