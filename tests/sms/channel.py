"""The SMS channel: hands `{"to", "text", "provider"}` to the provider's kind, which speaks its API. A test
send asks for a phone number and sends a short text."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator

from integrations.channels.base import Channel

PHONE = RegexValidator(r"^\+[1-9][0-9]{6,14}$", "A phone number in international form, like +15550000001.")


class SmsChannel(Channel):
    concurrent_sends = True  # one self-contained HTTP request per message
    reports_events = True  # its gateways post delivery reports
    label = "SMS"
    test_noun = "SMS"

    def send(self, message: dict[str, Any], *, idempotency_key: str = "") -> str:
        provider = message["provider"]
        return provider.kind_module.send(provider, message["to"], message["text"], idempotency_key)

    def test_recipient_field(self) -> forms.Field:
        return forms.CharField(
            label="To (phone)", max_length=16, validators=[PHONE], help_text="Where the test SMS goes."
        )

    def test_message(self, provider, data: dict[str, Any]) -> dict[str, Any]:
        return {"to": data["to"], "text": f"Rowbell test SMS through {provider.name}.", "provider": provider}
