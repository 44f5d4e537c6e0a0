"""Brevo, formerly Sendinblue (anymail's Brevo backend and transactional webhook; basic auth)."""

from __future__ import annotations

from anymail.webhooks.brevo import BrevoTrackingWebhookView

from integrations.email_providers.base import ProviderField
from integrations.email_providers.esp import AnymailKind, api_url_field


class Brevo(AnymailKind):
    key = "brevo"
    label = "Brevo"
    backend = "anymail.backends.brevo.EmailBackend"
    default_api_url = "https://api.brevo.com/v3/"
    fields = (ProviderField("api_key", "API key", secret=True), api_url_field(default_api_url))
    tracking_view = BrevoTrackingWebhookView
    webhook_help = (
        "In Brevo: Transactional → Settings → Webhook → Add a new webhook, paste the URL above and tick "
        "Delivered, Deferred, Soft bounce, Hard bounce, Complaint, Blocked, Opened and Clicked."
    )

    def bounce_kind(self, event) -> str:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        return "soft" if esp_event.get("event") == "soft_bounce" else "hard"
