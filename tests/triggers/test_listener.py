"""The listener as a real loop: in threads racing each other, across a customer database outage, and as
the `manage.py listen` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from integrations.models import DataSource
from runs.listener import Listener
from runs.models import Run
from tests.support import subprocess_database_url
from tests.triggers.conftest import customer_execute, db_trigger_workflow
from workflows.database_triggers import reinstall_triggers

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def shows_reconnecting(source: DataSource) -> bool:
    """The listener reports the data source as reconnecting within 10 s."""
    return wait_for(
        lambda: DataSource.objects.get(pk=source.pk).listener_status == "reconnecting", timeout=10
    )


class ListenerThread(threading.Thread):
    def __init__(self, **run_options):
        super().__init__(daemon=True)
        self.listener = Listener()
        self.run_options = run_options
        self.handled = 0

    def run(self) -> None:
        try:
            self.handled = self.listener.run(**self.run_options)
        finally:
            connection.close()  # this thread's connection to Rowbell's test database

    def stop(self) -> None:
        self.listener.stop.set()
        self.join(timeout=10)


def test_two_listeners_at_once_start_each_run_exactly_once(datasource, customer_db, fast_listener):
    fast_listener.LISTENER_BATCH_SIZE = 25  # many small claims, so the two really interleave
    workflow = db_trigger_workflow(datasource)
    customer_execute(
        customer_db, "INSERT INTO orders (email) SELECT 'u' || n || '@x.org' FROM generate_series(1, 500) n"
    )

    listeners = [ListenerThread(until_idle=True), ListenerThread(until_idle=True)]
    for listener in listeners:
        listener.start()
    for listener in listeners:
        listener.join(timeout=60)
    Listener().run(until_idle=True)  # anything a listener left when it saw an idle pass

    runs = Run.objects.filter(workflow=workflow)
    assert runs.count() == 500
    assert sorted(run.payload["id"] for run in runs) == list(range(1, 501))
    assert sum(listener.handled for listener in listeners) == 500
    assert all(listener.handled > 0 for listener in listeners)
    assert customer_execute(customer_db, "SELECT count(*) FROM rowbell.event_log") == [(0,)]


def test_customer_database_outage_loses_no_event(datasource, customer_db, pg_admin_url, fast_listener):
    workflow = db_trigger_workflow(datasource)
    database = customer_db.rsplit("/", 1)[1]
    listener = ListenerThread()
    listener.start()
    writer = psycopg.connect(customer_db, autocommit=True)  # opened before the outage, kept through it
    try:
        for n in range(20):
            writer.execute("INSERT INTO orders (email) VALUES (%s)", (f"before{n}@x.org",))
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 20)

        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = 'rowbell-listener'",
                (database,),
            )
            for n in range(30):
                writer.execute("INSERT INTO orders (email) VALUES (%s)", (f"during{n}@x.org",))
            assert shows_reconnecting(datasource)
            assert "connect" in DataSource.objects.get(pk=datasource.pk).listener_error.lower()
            admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')

        for n in range(10):
            writer.execute("INSERT INTO orders (email) VALUES (%s)", (f"after{n}@x.org",))
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 60)
    finally:
        writer.close()
        listener.stop()

    assert sorted(run.payload["id"] for run in Run.objects.filter(workflow=workflow)) == list(range(1, 61))
    assert DataSource.objects.get(pk=datasource.pk).listener_status == "listening"


@pytest.mark.slow
def test_manage_py_listen_runs_as_a_process_and_stops_on_sigterm(datasource, customer_db):
    workflow = db_trigger_workflow(datasource)
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "DB_CONN_MAX_AGE": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "listen"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for n in range(5):
            customer_execute(customer_db, "INSERT INTO orders (email) VALUES (%s)", (f"u{n}@x.org",))
            time.sleep(0.05)
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 5, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)

    assert process.returncode == 0, output
    assert "Handled 5 event(s)" in output
    assert [run.payload["id"] for run in Run.objects.filter(workflow=workflow).order_by("id")] == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_notify_option_wakes_the_listener_without_waiting_for_the_poll(
    datasource, customer_db, fast_listener
):
    workflow = db_trigger_workflow(datasource)
    trigger_function = "SELECT tgfoid::regproc::text FROM pg_trigger WHERE tgname LIKE 'rowbell%%'"
    assert customer_execute(customer_db, trigger_function) == [("rowbell.capture_row",)]
    DataSource.objects.filter(pk=datasource.pk).update(notify_enabled=True)
    assert reinstall_triggers(DataSource.objects.get(pk=datasource.pk)) == 1
    assert customer_execute(customer_db, trigger_function) == [("rowbell.capture_row_notify",)]

    # Idle polls every 60 s: only the NOTIFY can make the listener notice rows within the test.
    fast_listener.LISTENER_POLL_INTERVAL = 60
    fast_listener.LISTENER_BUSY_WINDOW = 0
    listener = ListenerThread()
    listener.start()
    try:
        assert wait_for(lambda: DataSource.objects.get(pk=datasource.pk).listener_status == "listening")
        time.sleep(0.3)  # the listener is now waiting on its socket
        started = time.monotonic()
        customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).exists(), timeout=10)
        assert time.monotonic() - started < 10
    finally:
        listener.stop()


# -- isolation: one tenant's database that hangs must not delay another tenant's events ----------------


class SilentServer:
    """A TCP server that accepts connections and never says a word: a host whose PostgreSQL hangs before
    answering the startup packet (or a proxy in front of a dead one). Accepted sockets stay open."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)  # so that the accept loop notices close()
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"postgresql://rowbell@127.0.0.1:{self.port}/shop"

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self.closed.set()
        self.thread.join(timeout=5)
        self.sock.close()
        for conn in self.accepted:
            conn.close()  # a connection attempt still waiting now fails at once


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


@pytest.fixture
def other_tenant_source(tenant_b, second_customer_db) -> DataSource:
    """Tenant B's data source with a published database trigger on its own database."""
    source = DataSource.objects.create(tenant=tenant_b, name="Globex DB", connection_url=second_customer_db)
    db_trigger_workflow(source, name="Globex order")
    return source


def point_at(source: DataSource, url: str) -> None:
    """Change the data source's URL, as its edit page does."""
    source.connection_url = url
    source.save(update_fields=["connection_url"])


def run_queued_jobs() -> None:
    import django_rq
    from rq import SimpleWorker

    queues = [django_rq.get_queue("default"), django_rq.get_queue("low")]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True)


def test_a_host_that_never_answers_does_not_delay_another_tenants_events(
    datasource, customer_db, other_tenant_source, silent_server, fast_listener, redis_conn
):
    fast_listener.DATASOURCE_CONNECT_TIMEOUT = 30
    fast_listener.LISTENER_SHUTDOWN_GRACE = 0.5
    point_at(other_tenant_source, silent_server.url)
    workflow = db_trigger_workflow(datasource)
    listener = ListenerThread()
    listener.start()
    try:
        assert wait_for(lambda: silent_server.accepted, timeout=10)  # the hanging attempt has begun
        started = time.monotonic()
        for n in range(5):
            customer_execute(customer_db, "INSERT INTO orders (email) VALUES (%s)", (f"u{n}@x.org",))

        # Far within the 30 s the other source's connection attempt may take.
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 5, timeout=10)
        assert time.monotonic() - started < 10
        assert len(silent_server.accepted) == 1  # still the first attempt: it has not timed out
        run_queued_jobs()
        assert set(Run.objects.filter(workflow=workflow).values_list("status", flat=True)) == {"succeeded"}
        assert wait_for(lambda: DataSource.objects.get(pk=datasource.pk).listener_status == "listening")

        # Stopping does not wait for the stuck attempt either.
        stop_started = time.monotonic()
        listener.stop()
        assert not listener.is_alive()
        assert time.monotonic() - stop_started < 5
        [stuck] = [t for t in threading.enumerate() if t.name == f"listener-source-{other_tenant_source.pk}"]
        assert stuck.is_alive()  # still inside its connection attempt
    finally:
        silent_server.close()  # a pending attempt fails now
        listener.stop()
    stuck.join(timeout=5)  # and the source's thread ends
    assert not stuck.is_alive()


def test_a_corrected_url_is_used_at_once_while_the_old_attempt_still_hangs(
    datasource, customer_db, silent_server, fast_listener
):
    fast_listener.DATASOURCE_CONNECT_TIMEOUT = 30
    workflow = db_trigger_workflow(datasource)
    point_at(datasource, silent_server.url)  # a typo in the host, say
    listener = ListenerThread()
    listener.start()
    try:
        assert wait_for(lambda: silent_server.accepted, timeout=10)
        point_at(datasource, customer_db)  # fixed on the data source's edit page
        customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 1, timeout=10)
        assert len(silent_server.accepted) == 1
    finally:
        silent_server.close()
        listener.stop()


def test_a_host_that_never_answers_is_shown_reconnecting_with_the_reason(
    datasource, customer_db, other_tenant_source, silent_server, fast_listener
):
    fast_listener.DATASOURCE_CONNECT_TIMEOUT = 2  # libpq's minimum
    point_at(other_tenant_source, silent_server.url)
    workflow = db_trigger_workflow(datasource)
    listener = ListenerThread()
    listener.start()
    try:
        assert shows_reconnecting(other_tenant_source)
        error = DataSource.objects.get(pk=other_tenant_source.pk).listener_error
        assert f"127.0.0.1:{silent_server.port} did not answer within 2 s" in error
        assert wait_for(lambda: len(silent_server.accepted) >= 2, timeout=10)  # it keeps trying

        customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 1, timeout=10)
        assert DataSource.objects.get(pk=datasource.pk).listener_status == "listening"
    finally:
        silent_server.close()
        listener.stop()


def locked_event_log(url: str) -> psycopg.Connection:
    """A session holding an exclusive lock on the event log: the listener's claim waits on the server."""
    locker = psycopg.connect(url)
    locker.execute("LOCK TABLE rowbell.event_log IN ACCESS EXCLUSIVE MODE")
    return locker


def listener_waits_on_a_lock(url: str) -> bool:
    database = url.rsplit("/", 1)[1]
    rows = customer_execute(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
        "AND application_name = 'rowbell-listener' AND wait_event_type = 'Lock'",
        (database,),
    )
    return rows == [(1,)]


def test_a_claim_that_hangs_on_the_server_does_not_delay_another_tenants_events(
    datasource, customer_db, other_tenant_source, second_customer_db, fast_listener
):
    fast_listener.LISTENER_STATEMENT_TIMEOUT = 60
    workflow = db_trigger_workflow(datasource)
    locker = locked_event_log(second_customer_db)
    listener = ListenerThread()
    listener.start()
    try:
        assert wait_for(lambda: listener_waits_on_a_lock(second_customer_db), timeout=10)
        for n in range(5):
            customer_execute(customer_db, "INSERT INTO orders (email) VALUES (%s)", (f"u{n}@x.org",))
        assert wait_for(lambda: Run.objects.filter(workflow=workflow).count() == 5, timeout=10)
        assert listener_waits_on_a_lock(second_customer_db)

        locker.rollback()  # the other database recovers; its own events flow again
        customer_execute(second_customer_db, "INSERT INTO orders (email) VALUES ('g@example.com')")
        assert wait_for(lambda: Run.objects.filter(workflow__tenant=other_tenant_source.tenant).count() == 1)
    finally:
        locker.close()
        listener.stop()


def test_a_claim_that_runs_past_the_statement_timeout_is_cancelled_and_retried(
    other_tenant_source, second_customer_db, fast_listener
):
    fast_listener.LISTENER_STATEMENT_TIMEOUT = 1
    customer_execute(second_customer_db, "INSERT INTO orders (email) VALUES ('g@example.com')")
    locker = locked_event_log(second_customer_db)
    listener = ListenerThread()
    listener.start()
    try:
        assert shows_reconnecting(other_tenant_source)
        assert "statement_timeout" in DataSource.objects.get(pk=other_tenant_source.pk).listener_error
        locker.rollback()
        assert wait_for(lambda: Run.objects.filter(workflow__tenant=other_tenant_source.tenant).count() == 1)
        assert wait_for(
            lambda: DataSource.objects.get(pk=other_tenant_source.pk).listener_status == "listening"
        )
    finally:
        locker.close()
        listener.stop()
