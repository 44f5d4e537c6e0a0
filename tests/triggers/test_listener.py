"""The listener as a real loop: in threads racing each other, across a customer database outage, and as
the `manage.py listen` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from integrations.listener import Listener
from integrations.models import DataSource
from runs.models import Run
from tests.support import subprocess_database_url
from tests.triggers.conftest import customer_execute, db_trigger_workflow

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


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
            assert wait_for(
                lambda: DataSource.objects.get(pk=datasource.pk).listener_status == "reconnecting", timeout=10
            )
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
    from integrations.datasources import reinstall_triggers

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
