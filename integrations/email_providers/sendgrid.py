"""SendGrid (anymail's SendGrid backend and event webhook: basic auth, and its signed-webhook key if given)."""

from __future__ import annotations

import warnings

from anymail.exceptions import AnymailNotSupportedWarning
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from cryptography.hazmat.primitives import serialization

from integrations.email_providers.base import ProviderForm, SecretField
from integrations.email_providers.esp import AnymailKind, _json, api_url_field

DEFAULT_API_URL = "https://api.sendgrid.com/v3/"


class SendGridForm(ProviderForm):
    api_key = SecretField(label="API key")
    verification_key = SecretField(
        label="Event webhook verification key",
        required=False,
        help_text="Optional: the public key SendGrid shows when you turn on signed event webhooks.",
    )
    api_url = api_url_field(DEFAULT_API_URL)


class SendGrid(AnymailKind):
    key = "sendgrid"
    label = "SendGrid"
    backend = "anymail.backends.sendgrid.EmailBackend"
    default_api_url = DEFAULT_API_URL
    form_class = SendGridForm
    tracking_view = SendGridTrackingWebhookView
    webhook_help = (
        "In SendGrid: Settings → Mail Settings → Event Webhooks → Create new webhook, paste the URL above "
        "as the Post URL, select the Delivered, Deferred, Bounced, Dropped, Spam report, Opened and Clicked "
        "events. With Signed Event Webhook on, paste its verification key into this provider."
    )

    def open_backend(self, provider):
        with warnings.catch_warnings():
            # anymail 15 warns on every SendGrid backend that it no longer officially supports SendGrid;
            # it still works (tests/emailing), and a warning per batch would only flood the worker's log.
            warnings.simplefilter("ignore", AnymailNotSupportedWarning)
            return super().open_backend(provider)

    def clean(self, settings, secrets) -> dict[str, str]:
        errors = super().clean(settings, secrets)
        key = secrets.get("verification_key")
        if key and not _is_public_key(key):
            errors["verification_key"] = (
                "Not a public key: paste the verification key SendGrid shows, without the BEGIN/END lines."
            )
        return errors

    def tracking_kwargs(self, provider) -> dict:
        key = provider.secret_values.get("verification_key") or None
        return {**super().tracking_kwargs(provider), "tracking_webhook_verification_key": key}

    def provider_message(self, response) -> str:
        body = _json(response)
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            return "; ".join(str(e.get("message", e)) for e in body["errors"] if isinstance(e, dict))
        return super().provider_message(response)


def _is_public_key(key: str) -> bool:
    """Whether anymail can load the signed-webhook verification key (base64 DER, as SendGrid shows it)."""
    pem = f"-----BEGIN PUBLIC KEY-----\n{key}\n-----END PUBLIC KEY-----".encode()
    try:
        serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return False
    return True
