"""The SMS channel, provider kind and step kind in Rowbell's registries: one line per registry."""

from integrations.channels.registry import CHANNELS
from integrations.providers.registry import PROVIDER_KINDS
from tests.sms.channel import SmsChannel
from tests.sms.gateway import TestSmsGateway
from tests.sms.step import SendSms
from workflows.steps import STEP_KINDS


def register(monkeypatch) -> None:
    """Registered for one test (undone after it)."""
    monkeypatch.setitem(CHANNELS, "sms", SmsChannel)
    monkeypatch.setitem(PROVIDER_KINDS, "test_sms", TestSmsGateway())
    monkeypatch.setitem(STEP_KINDS, "send_sms", SendSms())
