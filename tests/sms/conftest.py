import pytest
from pytest_httpserver import HTTPServer

from integrations.channels.registry import CHANNELS
from integrations.providers.registry import PROVIDER_KINDS
from tests.engine.conftest import clock  # noqa: F401 (fixture)
from tests.sms.channel import SmsChannel
from tests.sms.gateway import TestSmsGateway
from tests.sms.step import SendSms
from workflows.steps import STEP_KINDS


@pytest.fixture
def sms(monkeypatch):
    """One line per registry: the channel, the provider kind, the step kind."""
    monkeypatch.setitem(CHANNELS, "sms", SmsChannel)
    monkeypatch.setitem(PROVIDER_KINDS, "test_sms", TestSmsGateway())
    monkeypatch.setitem(STEP_KINDS, "send_sms", SendSms())


@pytest.fixture
def gateway(settings):
    """The SMS gateway's API on a local port (the outbound checks let 127.0.0.1 through for it)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    yield server
    server.clear()
    server.stop()
