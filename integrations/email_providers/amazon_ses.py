"""Amazon SES (anymail's SES v2 backend through boto3, and its SNS tracking webhook with basic auth).

The provider's own access key is always given to boto3, so a tenant can never send with the credentials
the operator's machine may have (instance role, environment). boto3 opens its own connections: the endpoint's
address is checked by integrations/outbound.py when the batch opens (not pinned for boto3's later
connections; AWS's own endpoint names are not the tenant's to point elsewhere, a custom endpoint URL is).
SNS subscription confirmations are not followed automatically: confirm the subscription in the SNS console.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from anymail.exceptions import AnymailAPIError
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from django import forms
from django.utils.module_loading import import_string

from integrations.channels.base import ChannelError
from integrations.email_providers.base import ProviderForm, SecretField
from integrations.email_providers.esp import AnymailKind, outbound_refusal
from integrations.outbound import OutboundRefused, check_scheme, resolve_checked

REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
TRANSIENT_CODES = {"Throttling", "ThrottlingException", "TooManyRequestsException", "LimitExceededException"}
CREDENTIAL_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "AccessDeniedException",
    "IncompleteSignature",
}


class AmazonSESForm(ProviderForm):
    region = forms.CharField(label="Region", max_length=500, help_text="e.g. eu-west-1", initial="us-east-1")
    access_key_id = forms.CharField(label="Access key ID", max_length=500)
    secret_access_key = SecretField(label="Secret access key")
    configuration_set = forms.CharField(
        label="Configuration set", required=False, max_length=500, help_text="The one that publishes to SNS."
    )
    endpoint_url = forms.CharField(
        label="Endpoint URL",
        required=False,
        max_length=500,
        help_text="Empty: https://email.<region>.amazonaws.com",
    )


class AmazonSES(AnymailKind):
    key = "amazon_ses"
    label = "Amazon SES"
    backend = "anymail.backends.amazon_ses.EmailBackend"
    form_class = AmazonSESForm
    default_rate_per_second = 14.0  # SES's default sending rate (an account's own is in its console)
    tracking_view = AmazonSESTrackingWebhookView
    webhook_help = (
        "In AWS: create an SNS topic with an HTTPS subscription to the URL above (raw message delivery "
        "off), confirm the subscription in the SNS console, and in SES add an event destination for "
        "Deliveries, Bounces, Complaints, Rejects, Delivery delays, Opens and Clicks to your configuration "
        "set, publishing to that topic."
    )

    def clean(self, settings: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
        if not REGION.match(settings.get("region") or ""):
            return {"region": "An AWS region name, like eu-west-1."}
        errors = super().clean({"api_url": settings.get("endpoint_url")}, secrets)
        return {"endpoint_url": errors["api_url"]} if errors else {}

    def backend_kwargs(self, provider) -> dict:
        settings, secrets = provider.settings, provider.secret_values
        # One attempt: the engine retries transient errors itself, with its own backoff.
        client = {
            "region_name": settings.get("region") or "us-east-1",
            "config": {"retries": {"total_max_attempts": 1}, "connect_timeout": 10, "read_timeout": 30},
        }
        endpoint = (settings.get("endpoint_url") or "").strip()
        if endpoint:
            client["endpoint_url"] = endpoint
        host = urlsplit(endpoint).hostname if endpoint else f"email.{client['region_name']}.amazonaws.com"
        port = urlsplit(endpoint).port if endpoint else None
        if endpoint:
            check_scheme(endpoint)
        if not host:  # "https:///": the lookup of no name would answer this machine's own addresses
            raise OutboundRefused(f"Refused to call {endpoint[:100]}: the endpoint URL names no host.")
        resolve_checked(host, port or 443)  # raises OutboundRefused
        kwargs = {
            "session_params": {
                "aws_access_key_id": settings.get("access_key_id", ""),
                "aws_secret_access_key": secrets.get("secret_access_key", ""),
            },
            "client_params": client,
        }
        if settings.get("configuration_set"):
            kwargs["configuration_set_name"] = settings["configuration_set"]
        return kwargs

    def open_backend(self, provider) -> Any:
        return import_string(self.backend)(fail_silently=False, **self.backend_kwargs(provider))

    def map_error(self, exc: Exception) -> ChannelError | None:
        refused = outbound_refusal(exc)
        if refused is not None:
            return ChannelError(refused.message, permanent=True)
        if isinstance(exc, AnymailAPIError) and exc.status_code is None:
            return self._boto_error(exc)
        return super().map_error(exc)

    def _boto_error(self, exc: AnymailAPIError) -> ChannelError:
        response = exc.response if isinstance(exc.response, dict) else None
        if response is None:  # no answer: a network error
            cause = exc.__cause__ or exc
            return ChannelError(f"Amazon SES could not be reached: {cause}", permanent=False)
        error = response.get("Error", {})
        code, said = error.get("Code", ""), error.get("Message", "") or str(exc.__cause__ or exc)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in CREDENTIAL_CODES:
            return ChannelError(f"Amazon SES refused the credentials ({code}): {said}", permanent=True)
        throttled = code in TRANSIENT_CODES or status == 429
        transient = throttled or status >= 500
        return ChannelError(
            f"Amazon SES answered {code or status}: {said}", permanent=not transient, throttled=throttled
        )

    def bounce_kind(self, event) -> str:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        bounce = esp_event["bounce"] if isinstance(esp_event.get("bounce"), dict) else {}
        return "soft" if bounce.get("bounceType") == "Transient" else "hard"

    def tracking_kwargs(self, provider) -> dict:
        return {**super().tracking_kwargs(provider), "auto_confirm_sns_subscriptions": False}
