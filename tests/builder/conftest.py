"""Builder test helpers: a real SMTP sink, a customer database with a `users` table, a browser page."""

from __future__ import annotations

import os
import threading
from email import message_from_bytes

import psycopg
import pytest
from aiosmtpd.controller import Controller
from django.db import connections
from playwright.sync_api import Page, expect, sync_playwright

from integrations.models import DataSource
from tests.support import free_port, launch_chromium

CUSTOMER_SCHEMA = """
CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, name text, plan text DEFAULT 'free',
                    created_at timestamptz DEFAULT now());
CREATE TABLE teams (id bigserial PRIMARY KEY, owner_id bigint, name text);
"""


class Mailbox:
    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"

    def body(self, index: int = -1) -> str:
        message = self.messages[index]
        part = (
            message.get_payload(decode=True)
            if not message.is_multipart()
            else message.get_payload(0).get_payload(decode=True)
        )
        return part.decode()


@pytest.fixture
def mailbox(settings):
    """A real SMTP server (aiosmtpd) that Django's SMTP backend delivers to."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS, settings.EMAIL_HOST_USER = False, ""
    yield box
    controller.stop()


@pytest.fixture
def customer_db(tenant_database) -> str:
    with psycopg.connect(tenant_database, autocommit=True) as conn:
        conn.execute(CUSTOMER_SCHEMA)
    return tenant_database


@pytest.fixture
def datasource(tenant_a, customer_db) -> DataSource:
    return DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=customer_db)


@pytest.fixture
def page(live_server, monkeypatch, redis_conn):
    # Playwright's sync API runs an event loop in this thread; the ORM calls made meanwhile block normally.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Live-server threads must not keep connections open, or dropping the test database blocks.
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(
            viewport={
                "width": int(os.environ.get("VIEW_W", 1440)),
                "height": int(os.environ.get("VIEW_H", 900)),
            }
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        # The ORM calls the test made inside Playwright's event loop use context-local connections: close
        # them here, inside it, or they outlive the test and block dropping the test database.
        connections.close_all()
    connections.close_all()


def htmx_idle(page: Page) -> None:
    """Wait until htmx has swapped and settled every response (and wired up the step form)."""
    # A locator, not wait_for_function: the pages' Content-Security-Policy forbids the eval that needs.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    expect(page.locator("#step-form[data-ready]")).to_have_count(1)


def saved(page: Page, action) -> None:
    """Do something in the step form and wait until the builder has saved it."""
    htmx_idle(page)
    with page.expect_response(lambda r: r.url.endswith("/save/") and r.status == 200):
        action()
    htmx_idle(page)


def preview_finished(page: Page) -> None:
    """With the publish dialog open: run the preview job it queued (as a worker would) and wait until the
    dialog shows the result and enables Publish (it needs the preview's token)."""
    import time

    from tests.engine.conftest import work
    from workflows.models import PublishPreview

    deadline = time.monotonic() + 20
    while not PublishPreview.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    work()
    expect(page.locator("#confirm-publish")).to_be_enabled(timeout=30_000)
