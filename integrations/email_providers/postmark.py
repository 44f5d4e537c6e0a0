"""Postmark (anymail's Postmark backend and tracking webhook; basic auth on the webhook)."""

from __future__ import annotations

from anymail.webhooks.postmark import PostmarkTrackingWebhookView

from integrations.email_providers.base import ProviderForm, SecretField
from integrations.email_providers.esp import AnymailKind, _json, api_url_field

DEFAULT_API_URL = "https://api.postmarkapp.com/"


class PostmarkForm(ProviderForm):
    server_token = SecretField(label="Server API token")
    api_url = api_url_field(DEFAULT_API_URL)


class Postmark(AnymailKind):
    key = "postmark"
    label = "Postmark"
    backend = "anymail.backends.postmark.EmailBackend"
    default_api_url = DEFAULT_API_URL
    form_class = PostmarkForm
    tracking_view = PostmarkTrackingWebhookView
    webhook_help = (
        "In Postmark: Servers → your server → your message stream → Webhooks → Add webhook, paste the "
        "URL above (it carries the basic-auth user and password), tick Delivery, Bounce, Spam complaint, "
        "Open and Click."
    )

    def backend_kwargs(self, provider) -> dict:
        return {
            "server_token": provider.secret_values.get("server_token", ""),
            "api_url": self.api_url(provider),
        }

    def provider_message(self, response) -> str:
        body = _json(response)
        if isinstance(body, dict) and "Message" in body:
            return f"{body['Message']} (ErrorCode {body.get('ErrorCode')})"
        return super().provider_message(response)

    def bounce_kind(self, event) -> str:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        return "soft" if esp_event.get("Type") == "SoftBounce" else "hard"
