"""Mailgun (anymail's Mailgun backend and webhook: basic auth and Mailgun's HMAC signature)."""

from __future__ import annotations

import json
from email.utils import parseaddr

from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from django import forms

from integrations.email_providers.base import LOOKUP_METADATA, ProviderForm, SecretField
from integrations.email_providers.esp import AnymailKind, api_url_field, lookup_json

DEFAULT_API_URL = "https://api.mailgun.net/v3"


class MailgunForm(ProviderForm):
    api_key = SecretField(label="API key")
    webhook_signing_key = SecretField(
        label="HTTP webhook signing key",
        required=False,
        help_text="Mailgun → Sending → Webhooks. Empty: the API key (Mailgun's older accounts sign with it).",
    )
    sender_domain = forms.CharField(
        label="Sending domain",
        required=False,
        max_length=500,
        help_text="Empty: the domain of the From address.",
    )
    api_url = api_url_field(DEFAULT_API_URL + " (https://api.eu.mailgun.net/v3 for the EU region)")


class Mailgun(AnymailKind):
    key = "mailgun"
    label = "Mailgun"
    backend = "anymail.backends.mailgun.EmailBackend"
    default_api_url = DEFAULT_API_URL
    form_class = MailgunForm
    tracking_view = MailgunTrackingWebhookView
    webhook_help = (
        "In Mailgun: Sending → Webhooks, for each of Delivered, Temporary failure, Permanent failure, "
        "Spam complaints, Opens and Clicks add the URL above; copy the HTTP webhook signing key into this "
        "provider."
    )

    def backend_kwargs(self, provider) -> dict:
        kwargs = super().backend_kwargs(provider)
        if provider.settings.get("sender_domain"):
            kwargs["sender_domain"] = provider.settings["sender_domain"]
        return kwargs

    can_look_up = True

    def accepted(self, provider, key: str, content: dict) -> bool | None:
        """Mailgun's events API: an `accepted` event whose custom variable carries the key."""
        domain = provider.settings.get("sender_domain") or _domain(content.get("from", ""))
        if not domain:
            return None
        url = f"{self.api_url(provider).rstrip('/')}/{domain}/events"
        params = {
            "event": "accepted",
            "user-variables": json.dumps({LOOKUP_METADATA: key}),
            "limit": 1,
        }
        body = lookup_json(url, params=params, auth=("api", provider.secret_values.get("api_key", "")))
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            return None
        return bool(body["items"])

    def tracking_kwargs(self, provider) -> dict:
        secrets = provider.secret_values
        key = secrets.get("webhook_signing_key") or secrets.get("api_key", "")
        return {**super().tracking_kwargs(provider), "webhook_signing_key": key}

    def bounce_kind(self, event) -> str:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        data = esp_event.get("event-data", {}) if isinstance(esp_event.get("event-data"), dict) else {}
        return "soft" if data.get("severity") == "temporary" else "hard"


def _domain(from_header: str) -> str:
    return parseaddr(from_header)[1].rpartition("@")[2]
