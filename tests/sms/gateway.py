"""A test SMS gateway provider kind: a JSON API that takes `{"to", "text"}` at `<api_url>/messages` with a
bearer key and answers `{"id": ...}` (pytest-httpserver plays it). Its credentials form, its errors and
its tracking webhook (basic auth with the provider's webhook credentials, a JSON body of status reports)
are all here: nothing else in Rowbell knows about it."""

from __future__ import annotations

import json
from datetime import datetime

import requests
from django import forms
from django.http import HttpRequest

from integrations import outbound
from integrations.channels.base import ChannelError, http_status_error
from integrations.providers.base import ProviderKind
from integrations.providers.forms import ProviderForm, SecretField
from integrations.providers.tracking import (
    TrackingEvent,
    TrackingRefused,
    TrackingUnreadable,
    basic_auth_matches,
)

# The gateway's delivery reports: "undeliverable" is a number that will never get a text (a hard bounce).
STATUSES = {
    "delivered": ("delivered", ""),
    "queued_at_carrier": ("deferred", ""),
    "undeliverable": ("bounced", "hard"),
    "carrier_failure": ("bounced", "soft"),
    "spam_report": ("complained", ""),
}


class TestSmsGatewayForm(ProviderForm):
    __test__ = False  # not a pytest test class

    api_url = forms.URLField(
        label="API URL", max_length=500, assume_scheme="https", help_text="The gateway's base URL."
    )
    api_key = SecretField(label="API key")


class TestSmsGateway(ProviderKind):
    __test__ = False  # not a pytest test class

    key = "test_sms"
    label = "Test SMS gateway"
    channel = "sms"
    sends_over_http = True
    form_class = TestSmsGatewayForm
    webhook_help = (
        "In the gateway's console: Delivery reports → Callback URL, paste the URL above (it carries the "
        "basic-auth user and password)."
    )

    @property
    def has_tracking_webhook(self) -> bool:
        return True

    def clean(self, settings, secrets) -> dict[str, str]:
        problem = outbound.check_url_at_save(settings.get("api_url", ""))
        return {"api_url": problem} if problem else {}

    def send(self, provider, to: str, text: str, idempotency_key: str) -> str:
        try:
            reply = outbound.request(
                "POST",
                provider.settings["api_url"].rstrip("/") + "/messages",
                data=json.dumps({"to": to, "text": text}).encode(),
                headers={
                    "Authorization": f"Bearer {provider.secret_values.get('api_key', '')}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key,
                },
                timeout=5,
            )
        except Exception as exc:
            mapped = self.map_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if reply.status >= 300:
            raise http_status_error(reply.status, reply.text, self.label)
        try:
            return str(json.loads(reply.text)["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ChannelError(
                f"{self.label} answered without a message id: {reply.text[:200]}", permanent=False
            ) from exc

    def map_error(self, exc: Exception) -> ChannelError | None:
        if isinstance(exc, outbound.OutboundRefused):
            return ChannelError(exc.message, permanent=True)
        if isinstance(exc, requests.RequestException | OSError):
            return ChannelError(f"{self.label} could not be reached: {exc}", permanent=False)
        return None

    def read_tracking(self, provider, request: HttpRequest) -> list[TrackingEvent]:
        """`{"reports": [{"id", "message_id", "status", "to", "at", "error"}]}` behind basic auth."""
        if not basic_auth_matches(request.META.get("HTTP_AUTHORIZATION", ""), provider.webhook_credentials):
            raise TrackingRefused("Wrong or missing credentials.")
        try:
            reports = json.loads(request.body)["reports"]
            return [self._event(report) for report in reports]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TrackingUnreadable(f"not a list of delivery reports ({type(exc).__name__})") from exc

    @staticmethod
    def _event(report: dict) -> TrackingEvent:
        kind, bounce = STATUSES.get(report["status"], ("", ""))
        return TrackingEvent(
            kind=kind,
            message_id=str(report["message_id"]),
            occurred_at=datetime.fromisoformat(report["at"]) if report.get("at") else None,
            recipient=str(report.get("to") or ""),
            bounce=bounce,
            mta_response=str(report.get("error") or ""),
            event_id=str(report.get("id") or ""),
        )
