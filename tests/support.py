"""Small helpers shared by test packages (fixtures live in the conftest files)."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.test import Client

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


# Browser tests save their screenshots here: into docs/screenshots/ (the pictures the README and the
# issues' notes show) only when ROWBELL_SCREENSHOTS=docs, else into a folder under the temp dir, so that an
# ordinary test run leaves the checkout clean and parallel branches do not conflict on PNGs.
SCREENSHOTS = (
    Path(__file__).resolve().parents[1] / "docs" / "screenshots"
    if os.environ.get("ROWBELL_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "rowbell-screenshots"
)
SCREENSHOTS.mkdir(parents=True, exist_ok=True)


PASSWORD = "correct-horse-battery-staple"


def make_user(username: str, tenant, role: str):
    """A user with `PASSWORD`, a member of `tenant` in `role`."""
    from django.contrib.auth import get_user_model

    from tenants.models import Membership

    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    Membership.objects.create(user=user, tenant=tenant, role=role)
    return user


def signed_in(client: Client, user) -> Client:
    """`client`, signed in as `user` (the owner/member/outsider client fixtures are made with it)."""
    client.force_login(user)
    return client


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)


def unreachable_redis(port: int | None = None, **options):
    """A Redis client for a port nobody listens on that gives up at once: redis-py's default retries
    (three, with backoff) would make every command take 4 s before it raises the ConnectionError."""
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Redis(host="127.0.0.1", port=port or free_port(), retry=Retry(NoBackoff(), 0), **options)


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
    """A new, empty PostgreSQL database standing in for a customer's; yields its URL, dropped after.

    Made ahead and dropped behind on a thread of their own (tests/customer_databases.py)."""

    from tests.customer_databases import DATABASES

    name = DATABASES.take(admin_url)
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        DATABASES.drop_later(admin_url, name)


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


APP_SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.users (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE app.orders (id bigserial PRIMARY KEY, user_id bigint, total numeric);
CREATE TABLE public.unrelated (id int);
"""


def role_url(database_url: str, role: str, password: str = "") -> str:
    """The database's URL for `role` (and password), percent-encoded as a person would write them."""
    from urllib.parse import quote

    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    auth = quote(role, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def unique_role(prefix: str = "rowbell_ux") -> str:
    """A role name no other test (or xdist worker, or test run on the same server) uses: roles are
    cluster-wide, so two tests creating `rowbell_ux` at once would break each other."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def run_with_psql(superuser_url: str, script: str) -> str:
    """Run a script as a person would paste it into psql, stopping at the first error; psql's notices."""
    import subprocess

    result = subprocess.run(
        ["psql", superuser_url, "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def drop_roles(database_url: str, roles: list[str]) -> None:
    """Drop test roles (cluster-wide) and what they own in the database."""
    from psycopg import sql

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)", (roles,)
        )
        for role in roles:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role)))
    with psycopg.connect(urlsplit(database_url)._replace(path="/postgres").geturl(), autocommit=True) as conn:
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


class _MessageKeys:
    """The execution id behind a message's opaque key (integrations/message_keys.py), for test providers
    that must tell messages apart: the keys of ids 1..N computed once, N grown as ids grow."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.known = 0
        self.lock = __import__("threading").Lock()

    def execution_id(self, key: str) -> int:
        from integrations.message_keys import message_key

        with self.lock:
            while key not in self.ids:
                if self.known > 20_000_000:
                    raise KeyError(key)
                upto = max(10_000, self.known * 2)
                self.ids.update({message_key(i): i for i in range(self.known + 1, upto + 1)})
                self.known = upto
            return self.ids[key]


MESSAGE_KEYS = _MessageKeys()


def execution_id_in(text: str) -> int:
    """The execution id of the first Rowbell message key in `text` (a body, headers)."""
    from integrations.message_keys import PATTERN

    found = PATTERN.search(text)
    if found is None:
        raise ValueError(f"No Rowbell message key in {text[:200]!r}")
    return MESSAGE_KEYS.execution_id(found.group(0))


def finished_preview_token(workflow) -> str:
    """Run a publish preview of the workflow's draft here (as its job would) and return its token: the
    publish dialog and the REST API publish only with one."""
    from runs.publish_preview.job import run_preview, start_preview
    from workflows.publishing import get_or_create_draft

    preview = start_preview(workflow, get_or_create_draft(workflow), by="test")
    run_preview(preview.pk)
    preview.refresh_from_db()
    assert preview.status == "done", preview.error
    return preview.token
