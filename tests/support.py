"""Small helpers shared by test packages (fixtures live in the conftest files)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg

# Debian's Chromium, headless, as root, on a machine with no network but loopback.
CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)


def free_port() -> int:
    """A TCP port nobody listens on right now, for a server the test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_database_url() -> str:
    """DATABASE_URL for a process the test starts (a worker, the listener), pointing at the test database.

    A unix-socket directory (the embedded server) goes percent-encoded in the host's place.
    """
    from urllib.parse import quote

    from django.conf import settings

    db = settings.DATABASES["default"]
    host = db["HOST"] or "127.0.0.1"
    host = quote(host, safe="") if host.startswith("/") else host
    auth = db["USER"] or "postgres"
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database standing in for a customer's; yields its URL, dropped after."""
    name = f"rowbell_customer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def customer_execute(url: str, statement: str, params=None) -> list[tuple]:
    """Run SQL in a test's customer database as its owner (not through Rowbell); rows, if any."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def publish_query_workflow(source, name: str = "Digest"):
    """A published webhook workflow with a data query on the source (its id written as a string, as an
    imported workflow may have it); publishing it installs nothing in the customer's database."""
    from workflows.models import Step, Workflow
    from workflows.publishing import get_or_create_draft, publish

    workflow = Workflow.objects.create(tenant=source.tenant, name=name)
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=source.tenant, version=draft, kind="webhook_trigger", config={})
    Step.objects.create(
        tenant=source.tenant,
        version=draft,
        parent=root,
        kind="data_query",
        config={"datasource": str(source.pk), "sql": "SELECT id, email FROM users", "mode": "fanout"},
    )
    publish(workflow)
    return workflow
