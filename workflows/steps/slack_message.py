"""Slack message: a templated text posted to an incoming-webhook URL, which is stored encrypted.

The builder sends `webhook_url` in the clear; validation replaces it with `webhook_url_encrypted` (a
Fernet token), so the step's config never holds the URL in the clear and can be shown and exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms

from integrations.channels.slack import SlackTransport
from integrations.crypto import decrypt, encrypt
from integrations.failures import Failure
from integrations.outbound import check_url_at_save
from integrations.templating import render
from workflows.steps.common import RetryForm, RetrySettings
from workflows.steps.context import StepContext
from workflows.steps.fields import SecretField, TemplateField
from workflows.steps.forms import StepForm
from workflows.steps.send_kind import SendKind, rendered, template_context
from workflows.steps.send_window import SendWindowForm, SendWindowSettings


@dataclass(kw_only=True)
class SlackSettings(SendWindowSettings, RetrySettings):
    webhook_url_encrypted: str
    text: str


class SlackForm(RetryForm, SendWindowForm, StepForm):
    """The URL is typed in the clear and stored encrypted; an empty box keeps the saved one."""

    settings_class = SlackSettings

    webhook_url = SecretField(
        label="Incoming webhook URL",
        required=False,
        help_text="https://hooks.slack.com/services/... (stored encrypted)",
    )
    text = TemplateField(label="Message", required=True)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.raw("webhook_url_encrypted"):
            self.fields["webhook_url"].widget.attrs["placeholder"] = "saved — type to replace"

    def clean_webhook_url(self) -> str:
        url = (self.cleaned_data["webhook_url"] or "").strip()
        if url:
            if not url.startswith(("https://", "http://")):
                raise forms.ValidationError("Paste the webhook URL Slack gave you; it starts with https://.")
            refused = check_url_at_save(url)
            if refused:
                raise forms.ValidationError(refused)  # best effort: checked again on every message
            return encrypt(url)
        saved = self.raw("webhook_url_encrypted")
        if not saved:
            raise forms.ValidationError("Paste the incoming webhook URL of the Slack channel.")
        try:
            decrypt(saved)
        except ValueError:
            raise forms.ValidationError("The stored webhook URL cannot be read; paste it again.") from None
        return str(saved)

    def draft_config(self, saved: Mapping[str, Any]) -> dict[str, Any]:
        """A draft never holds the URL in the clear: a good one is kept encrypted, a refused one is not kept
        (the person pastes it again)."""
        draft = super().draft_config(saved)
        draft.pop("webhook_url", None)
        if "webhook_url" in self.cleaned_data:
            draft["webhook_url_encrypted"] = self.cleaned_data["webhook_url"]
        return draft

    def settings_kwargs(self) -> dict[str, Any]:
        kwargs = super().settings_kwargs()
        kwargs["webhook_url_encrypted"] = self.cleaned_data["webhook_url"]
        return kwargs


class SlackMessage(SendKind[SlackTransport]):
    kind = "slack_message"
    label = "Slack message"
    description = "Posts a message to a Slack channel through an incoming webhook."
    channel = "slack"
    form_class = SlackForm

    def summary(self, config: dict[str, Any]) -> str:
        return " ".join((config.get("text") or "").split())

    def render(self, ctx: StepContext, item: dict[str, Any]) -> tuple[dict[str, Any], SlackTransport]:
        settings = self.step_settings(ctx)
        text = rendered("Message", render, settings.text, template_context(ctx, item))
        try:
            url = decrypt(settings.webhook_url_encrypted)
        except ValueError:
            raise Failure(
                "Slack: the webhook URL is missing or unreadable; paste it again.", permanent=True
            ) from None
        return {"text": text}, {"text": text, "webhook_url": url}

    def recipient(self, content: dict[str, Any]) -> str:
        return "slack webhook"
