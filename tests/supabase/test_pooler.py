"""Rowbell behind a real PgBouncer in transaction mode with its default settings (tests/pooler.py),
as Supabase's pooler on port 6543 is: database trigger capture, data queries and their limits, the
connection check, and a listener that stays quiet."""

from __future__ import annotations

import logging
import threading
import time

import psycopg
import pytest

from integrations.datasources import list_columns, list_tables, test_connection
from integrations.datasources.connection import POOLED_NOTIFY_NOTE, check_role
from integrations.datasources.session import listener_transaction
from integrations.models import DataSource
from integrations.query import QueryError, fetch_rows
from runs.listener import Listener, SourcePoller
from runs.models import Run
from tests.engine.conftest import branch, build_workflow, email, on_path, query, settle, work
from tests.support import customer_execute
from tests.triggers.test_listener import ListenerThread, wait_for

USERS = """
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL, name text, onboarded_at timestamptz);
"""


@pytest.fixture
def customer(tenant_database) -> str:
    customer_execute(tenant_database, USERS)
    return tenant_database


@pytest.fixture
def pooled_source(tenant_a, customer, pooler) -> DataSource:
    """A data source whose URL goes through PgBouncer (a different port, the same database)."""
    return DataSource.objects.create(
        tenant=tenant_a, name="Supabase", connection_url=pooler.url_for(customer)
    )


def onboarding(tenant, source):
    """Database trigger on users → wait 3 days → read the row again → branch → one email per path."""
    refetch = query(
        source,
        "SELECT id, email, name, onboarded_at FROM users WHERE id = {{ item.id }}",
        mode="first",
        children=[
            branch(
                [{"id": "done", "label": "Onboarded", "expression": "item.onboarded_at is not none"}],
                otherwise=True,
                children=[
                    on_path("done", email(subject="Next steps, {{ item.name }}", text="Invite your team")),
                    on_path(
                        "otherwise", email(subject="Finish onboarding, {{ item.name }}", text="Two minutes")
                    ),
                ],
            )
        ],
    )
    trigger = {
        "kind": "database_trigger",
        "config": {"datasource": source.pk, "schema": "public", "table": "users", "operations": ["insert"]},
        "children": [
            {
                "kind": "wait",
                "config": {"mode": "duration", "amount": 3, "unit": "days"},
                "children": [refetch],
            }
        ],
    }
    return build_workflow(tenant, trigger, name="Onboarding")


def test_onboarding_runs_end_to_end_through_the_pooler(clock, smtp, tenant_a, customer, pooled_source):
    workflow = onboarding(tenant_a, pooled_source)  # publishing installs the trigger through the pooler
    customer_execute(customer, "INSERT INTO users (email, name) VALUES ('nia@example.com', 'Nia')")
    customer_execute(customer, "INSERT INTO users (email, name) VALUES ('oli@example.com', 'Oli')")
    assert Listener().run(until_idle=True) == 2  # the insert started a run, read through the pooler
    assert Run.objects.filter(workflow=workflow).count() == 2
    work(clock)
    assert smtp.messages == []  # waiting three days
    customer_execute(customer, "UPDATE users SET onboarded_at = now() WHERE name = 'Oli'")
    clock.travel(days=3, minutes=1)
    settle(clock)
    sent = sorted((m["To"], m["Subject"]) for m in smtp.messages)
    assert sent == [("nia@example.com", "Finish onboarding, Nia"), ("oli@example.com", "Next steps, Oli")]
    assert set(Run.objects.filter(workflow=workflow).values_list("status", flat=True)) == {"succeeded"}
    assert customer_execute(customer, "SELECT count(*) FROM rowbell.event_log") == [(0,)]


def test_a_query_sleeping_past_the_timeout_is_cancelled_through_the_pooler(pooled_source, settings):
    settings.DATA_QUERY_TIMEOUT_MS = 300
    started = time.monotonic()
    with pytest.raises(QueryError, match="longer than 300 ms"):
        fetch_rows(pooled_source.connection_url, "SELECT pg_sleep(30) AS slept", [])
    assert time.monotonic() - started < 10  # the server cancelled it, not the test's patience
    # The pooled server connection is healthy afterwards, and the limit did not outlive the transaction.
    settings.DATA_QUERY_TIMEOUT_MS = 5000
    assert fetch_rows(pooled_source.connection_url, "SELECT pg_sleep(0.5)::text AS slept", []) == [
        {"slept": ""}
    ]


def test_the_listeners_statement_timeout_holds_through_the_pooler(pooled_source, settings):
    settings.LISTENER_STATEMENT_TIMEOUT = 0.3
    poller = SourcePoller(pooled_source)
    poller._ensure_connected()
    try:
        with listener_transaction(poller.conn):
            shown = poller.conn.execute("SHOW statement_timeout").fetchone()[0]
        assert shown == "300ms"
        with pytest.raises(Exception, match="statement timeout"), listener_transaction(poller.conn):
            poller.conn.execute("SELECT pg_sleep(30)")
    finally:
        poller.close()


class OtherClients(threading.Thread):
    """Two other clients of the pooler with short transactions, as Rowbell's previews, queries and other
    sources' listeners are: the listener's transactions then land on whichever server connection is
    free, so a statement prepared on one is missing (or already exists) on the next."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stopping = threading.Event()
        self.transactions = 0

    def run(self) -> None:
        with (
            psycopg.connect(self.url, autocommit=True, prepare_threshold=None) as first,
            psycopg.connect(self.url, autocommit=True, prepare_threshold=None) as second,
        ):
            while not self.stopping.is_set():
                with first.transaction():
                    first.execute("SELECT pg_sleep(0.005)")
                    with second.transaction():
                        second.execute("SELECT 1")
                self.transactions += 1

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_no_listener_warning_in_a_quiet_period_and_an_insert_starts_a_run(
    tenant_a,
    customer,
    pooled_source,
    fast_listener,
    caplog,
):
    """Many polls through the pooler (every 20 ms): prepared statements would collide on the pooled
    server connections ("prepared statement "_pg3_0" already exists") and each collision is a warning."""
    pooled_source.notify_enabled = True  # LISTEN through the pooler: a hint that never arrives, harmless
    pooled_source.save()
    workflow = build_workflow(
        tenant_a,
        {
            "kind": "database_trigger",
            "config": {
                "datasource": pooled_source.pk,
                "schema": "public",
                "table": "users",
                "operations": ["insert"],
            },
            "children": [],
        },
    )
    caplog.set_level(logging.WARNING, logger="runs.listener")
    other_clients = OtherClients(pooled_source.connection_url)
    other_clients.start()
    listener = ListenerThread()
    listener.start()
    try:
        time.sleep(20)
        quiet = [record.getMessage() for record in caplog.records if record.name == "runs.listener"]
        assert quiet == []
        customer_execute(customer, "INSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada')")
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 1, timeout=10)
    finally:
        listener.stop()
        other_clients.stop()
    assert other_clients.transactions > 100
    assert DataSource.objects.get(pk=pooled_source.pk).listener_status == "listening"
    assert [r.getMessage() for r in caplog.records if r.name == "runs.listener"] == []


@pytest.mark.django_db
def test_the_connection_check_runs_the_listeners_transaction_and_says_notify_does_not_arrive(
    pooled_source, customer, tenant_a
):
    check = test_connection(pooled_source)
    assert check.ok, check.message
    assert check.pooler_notes == []  # NOTIFY is off: nothing to say
    # Table browsing and the role check run through the pooler too (read-only transactions).
    assert [t.qualified_name for t in list_tables(pooled_source)] == ["public.users"]
    assert [c.name for c in list_columns(pooled_source, "public", "users")][:2] == ["id", "email"]
    assert check_role(pooled_source) is not None
    pooled_source.notify_enabled = True
    check = test_connection(pooled_source)
    assert check.ok and check.pooler_notes == [POOLED_NOTIFY_NOTE]
    direct = DataSource.objects.create(
        tenant=tenant_a, name="Direct", connection_url=customer, notify_enabled=True
    )
    check = test_connection(direct)
    assert check.ok and check.pooler_notes == []  # the direct connection delivers NOTIFY


@pytest.mark.django_db
def test_the_data_source_page_says_what_the_pooler_changes(owner_client, pooled_source):
    pooled_source.notify_enabled = True
    pooled_source.save()
    page = owner_client.post(
        f"/datasources/{pooled_source.pk}/test/", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Connected to PostgreSQL" in page
    assert "NOTIFY wake-ups do not arrive through this connection" in page
    assert "direct connection" in page


@pytest.mark.django_db
def test_a_supabase_pooler_url_gets_the_pooler_note_on_its_page(owner_client, tenant_a):
    pooled = DataSource.objects.create(
        tenant=tenant_a,
        name="Pooled",
        connection_url="postgresql://u:p@aws-0-eu.pooler.supabase.com:6543/postgres",
    )
    direct = DataSource.objects.create(
        tenant=tenant_a, name="Direct", connection_url="postgresql://u:p@db.ref.supabase.co:5432/postgres"
    )
    assert (
        "Through a transaction-mode pooler" in owner_client.get(f"/datasources/{pooled.pk}/").content.decode()
    )
    assert (
        "Through a transaction-mode pooler"
        not in owner_client.get(f"/datasources/{direct.pk}/").content.decode()
    )
