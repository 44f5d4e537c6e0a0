"""Email provider test helpers: providers and senders of a tenant, a real SMTP server with AUTH (aiosmtpd),
and ESP API emulations on pytest-httpserver (the real anymail backends talk to them)."""

from __future__ import annotations

import threading
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from integrations.models import Provider, Sender
from tests.activity.conftest import add_delivery, add_execution, make_run, onboarding, steps_of  # noqa: F401
from tests.builder.conftest import page  # noqa: F401 (fixture)
from tests.engine.conftest import clock, smtp  # noqa: F401 (fixtures)
from tests.support import free_port

SMTP_USER, SMTP_PASSWORD = "mailer", "s3cret-pass"


def make_provider(tenant, kind: str, settings: dict | None = None, secrets: dict | None = None, name=None):
    provider = Provider(tenant=tenant, kind=kind, name=name or f"{kind} provider", settings=settings or {})
    provider.secret_values = secrets or {}
    provider.save()
    return provider


def make_sender(
    tenant, provider=None, *, name="Support", address="support@acme.example", default=True, **extra
):
    return Sender.objects.create(
        tenant=tenant,
        name=name,
        from_name=extra.pop("from_name", "Acme Support"),
        from_address=address,
        provider=provider,
        is_default=default,
        **extra,
    )


def esp_provider(tenant, kind: str, httpserver, **secrets):
    """A provider of `kind` whose API URL is the local server (SES: its endpoint URL)."""
    url = httpserver.url_for("/")
    if kind == "amazon_ses":
        return make_provider(
            tenant,
            kind,
            {"region": "us-east-1", "access_key_id": "AKIDEXAMPLE", "endpoint_url": url.rstrip("/")},
            {"secret_access_key": "wJalrXUtnFEMI", **secrets},
        )
    key = "server_token" if kind == "postmark" else "api_key"
    api_url = url + "v3" if kind == "mailgun" else url
    return make_provider(tenant, kind, {"api_url": api_url}, {key: "test-key-123", **secrets})


class AuthSink:
    """An SMTP server that wants AUTH (PLAIN/LOGIN) and records what it accepted."""

    def __init__(self):
        self.messages: list = []
        self.refuse_senders: set[str] = set()
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address in self.refuse_senders:
            return "550 5.7.1 Sender address rejected: not owned by user mailer"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@pytest.fixture
def auth_smtp(settings):
    """A real SMTP server on 127.0.0.1 requiring AUTH (over plain TCP: auth_require_tls=False)."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    handler = AuthSink()
    handler.port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=handler.port,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def sent_message(request):
    """A sent email of a live run of the onboarding workflow (its provider id set by each test)."""
    workflow = request.getfixturevalue("onboarding")
    run = make_run(workflow, "signup-1")
    execution = add_execution(run, steps_of(workflow)["Welcome"], "0")
    return add_delivery(execution, "ada@example.com")


def smtp_provider_for(tenant, port: int, *, password: str = SMTP_PASSWORD, name: str = "Own SMTP"):
    """An SMTP provider for the AUTH server on 127.0.0.1 (plain TCP)."""
    settings = {"host": "127.0.0.1", "port": port, "tls": "none", "username": SMTP_USER}
    return make_provider(tenant, "smtp", settings, {"password": password}, name=name)
