"""A test SMS gateway provider kind: a JSON API that takes `{"to", "text"}` at `<api_url>/messages` with a
bearer key and answers `{"id": ...}` (pytest-httpserver plays it)."""

from __future__ import annotations

import json

import requests

from integrations import outbound
from integrations.channels.base import ChannelError, http_status_error
from integrations.providers.base import ProviderField, ProviderKind


class TestSmsGateway(ProviderKind):
    __test__ = False  # not a pytest test class

    key = "test_sms"
    label = "Test SMS gateway"
    channel = "sms"
    sends_over_http = True
    fields = (
        ProviderField("api_url", "API URL"),
        ProviderField("api_key", "API key", secret=True),
    )

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
        return json.loads(reply.text)["id"]

    def map_error(self, exc: Exception) -> ChannelError | None:
        if isinstance(exc, outbound.OutboundRefused):
            return ChannelError(exc.message, permanent=True)
        if isinstance(exc, requests.RequestException | OSError):
            return ChannelError(f"{self.label} could not be reached: {exc}", permanent=False)
        return None
