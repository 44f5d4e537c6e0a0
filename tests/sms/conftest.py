import pytest
from pytest_httpserver import HTTPServer

from tests.engine.conftest import clock  # noqa: F401 (fixture)
from tests.sms.registration import register


@pytest.fixture
def sms(monkeypatch):
    """One line per registry: the channel, the provider kind, the step kind."""
    register(monkeypatch)


@pytest.fixture
def gateway(settings):
    """The SMS gateway's API on a local port (the outbound checks let 127.0.0.1 through for it)."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    yield server
    server.clear()
    server.stop()
