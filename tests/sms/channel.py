"""The SMS channel: hands `{"to", "text", "provider"}` to the provider's kind, which speaks its API."""

from __future__ import annotations

from typing import Any

from integrations.channels.base import Channel


class SmsChannel(Channel):
    concurrent_sends = True  # one self-contained HTTP request per message

    def send(self, message: dict[str, Any], *, idempotency_key: str = "") -> str:
        provider = message["provider"]
        return provider.kind_module.send(provider, message["to"], message["text"], idempotency_key)
