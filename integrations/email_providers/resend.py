"""Resend (anymail's Resend backend and webhook). Resend signs webhooks with Svix; verifying that signature
needs the `svix` package (pydantic, httpx...), which Rowbell does not install: the webhook URL's basic auth,
which anymail supports for Resend too, authenticates it."""

from __future__ import annotations

from anymail.webhooks.resend import ResendTrackingWebhookView

from integrations.email_providers.base import ProviderForm, SecretField
from integrations.email_providers.esp import AnymailKind, api_url_field

DEFAULT_API_URL = "https://api.resend.com/"


class ResendForm(ProviderForm):
    api_key = SecretField(label="API key")
    api_url = api_url_field(DEFAULT_API_URL)


class Resend(AnymailKind):
    key = "resend"
    label = "Resend"
    backend = "anymail.backends.resend.EmailBackend"
    default_api_url = DEFAULT_API_URL
    form_class = ResendForm
    tracking_view = ResendTrackingWebhookView
    webhook_help = (
        "In Resend: Webhooks → Add endpoint, paste the URL above and choose the email.delivered, "
        "email.delivery_delayed, email.bounced, email.complained, email.opened and email.clicked events."
    )

    def tracking_kwargs(self, provider) -> dict:
        return {**super().tracking_kwargs(provider), "signing_secret": None}
