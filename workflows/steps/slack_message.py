"""Slack message: a templated text posted to an incoming-webhook URL, which is stored encrypted.

The builder sends `webhook_url` in the clear; validation replaces it with `webhook_url_encrypted` (a
Fernet token), so the step's config never holds the URL in the clear and can be shown and exported.
"""

from __future__ import annotations

from typing import Any

from integrations.crypto import decrypt, encrypt
from integrations.failures import Failure
from integrations.outbound import check_url_at_save
from integrations.templating import render
from workflows.steps.base import ConfigError, Field
from workflows.steps.common import RETRY_FIELDS, clean_retry, clean_template
from workflows.steps.context import StepContext
from workflows.steps.send_kind import SendKind, rendered, template_context


class SlackMessage(SendKind):
    kind = "slack_message"
    label = "Slack message"
    description = "Posts a message to a Slack channel through an incoming webhook."
    channel = "slack"
    fields = (
        Field(
            "webhook_url",
            "Incoming webhook URL",
            widget="secret",
            required=True,
            help="https://hooks.slack.com/services/... (stored encrypted)",
        ),
        Field("text", "Message", widget="template", required=True),
        *RETRY_FIELDS,
    )

    def summary(self, config: dict[str, Any]) -> str:
        return " ".join((config.get("text") or "").split())

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        url = config.get("webhook_url")
        if isinstance(url, str) and url.strip():
            url = url.strip()
            if not url.startswith(("https://", "http://")):
                errors["webhook_url"] = "Paste the webhook URL Slack gave you; it starts with https://."
            elif refused := check_url_at_save(url):
                errors["webhook_url"] = refused  # best effort: checked again on every message
            else:
                cleaned["webhook_url_encrypted"] = encrypt(url)
        elif config.get("webhook_url_encrypted"):
            try:
                decrypt(config["webhook_url_encrypted"])
                cleaned["webhook_url_encrypted"] = config["webhook_url_encrypted"]
            except ValueError:
                errors["webhook_url"] = "The stored webhook URL cannot be read; paste it again."
        else:
            errors["webhook_url"] = "Paste the incoming webhook URL of the Slack channel."
        clean_template(config, "text", errors, cleaned, required=True)
        clean_retry(config, errors, cleaned)
        if errors:
            raise ConfigError(errors)
        return cleaned

    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        text = rendered("Message", render, ctx.step.config["text"], template_context(ctx, item))
        try:
            url = decrypt(ctx.step.config["webhook_url_encrypted"])
        except (KeyError, ValueError):
            raise Failure(
                "Slack: the webhook URL is missing or unreadable; paste it again.", permanent=True
            ) from None
        return {"text": text}, {"text": text, "webhook_url": url}

    def recipient(self, content: dict[str, Any]) -> str:
        return "slack webhook"
