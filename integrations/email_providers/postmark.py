"""Postmark (anymail's Postmark backend and tracking webhook; basic auth on the webhook)."""

from __future__ import annotations

from anymail.webhooks.postmark import PostmarkTrackingWebhookView

from integrations.email_providers.base import LOOKUP_METADATA, ProviderForm, SecretField
from integrations.email_providers.esp import AnymailKind, _json, api_url_field, lookup_json

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

    can_look_up = True

    def accepted(self, provider, key: str, content: dict) -> bool | None:
        """Postmark's outbound message search, filtered by the metadata Rowbell set (`metadata_<field>`)."""
        url = self.api_url(provider).rstrip("/") + "/messages/outbound"
        params = {"count": 1, "offset": 0, f"metadata_{LOOKUP_METADATA}": key}
        headers = {
            "Accept": "application/json",
            "X-Postmark-Server-Token": provider.secret_values.get("server_token", ""),
        }
        body = lookup_json(url, params=params, headers=headers)
        if not isinstance(body, dict) or not isinstance(body.get("TotalCount"), int):
            return None
        return body["TotalCount"] > 0

    def bounce_kind(self, event) -> str:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        return "soft" if esp_event.get("Type") == "SoftBounce" else "hard"
