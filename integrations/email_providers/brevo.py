"""Brevo, formerly Sendinblue (anymail's Brevo backend and transactional webhook; basic auth)."""

from __future__ import annotations

from anymail.webhooks.brevo import BrevoTrackingWebhookView

from integrations.email_providers.base import ProviderForm, SecretField
from integrations.email_providers.esp import AnymailKind, api_url_field

DEFAULT_API_URL = "https://api.brevo.com/v3/"


class BrevoForm(ProviderForm):
    api_key = SecretField(label="API key")
    api_url = api_url_field(DEFAULT_API_URL)


class Brevo(AnymailKind):
    key = "brevo"
    label = "Brevo"
    backend = "anymail.backends.brevo.EmailBackend"
    default_api_url = DEFAULT_API_URL
    form_class = BrevoForm
    tracking_view = BrevoTrackingWebhookView
    webhook_help = (
        "In Brevo: Transactional → Settings → Webhook → Add a new webhook, paste the URL above and tick "
        "Delivered, Deferred, Soft bounce, Hard bounce, Complaint, Blocked, Opened and Clicked."
    )

    def bounce_kind(self, event) -> str:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        return "soft" if esp_event.get("event") == "soft_bounce" else "hard"
