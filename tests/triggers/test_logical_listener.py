"""The listener in logical decoding mode, against a PostgreSQL started with wal_level=logical: runs start
exactly once per change with the trigger capture's item shape; the slot moves only after the runs are
committed; switching between modes under a stream of writes starts every run once; the slot guard acts
before the customer's disk fills."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from integrations.datasources import DataSourceUnavailable, logical
from integrations.models import DataSource
from runs.listener import Listener, start_runs_for_changes
from runs.models import Run
from tests.support import customer_execute
from tests.triggers.conftest import CUSTOMER_SCHEMA, db_trigger_workflow
from tests.triggers.test_listener import wait_for
from workflows.database_triggers import switch_capture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def logical_db(logical_server):
    url = logical_server.create_database(f"logical_{uuid.uuid4().hex[:12]}")
    customer_execute(url, CUSTOMER_SCHEMA)
    return url


@pytest.fixture
def logical_source(tenant_a, logical_db) -> DataSource:
    return DataSource.objects.create(
        tenant=tenant_a, name="Shop", connection_url=logical_db, capture_mode=DataSource.CaptureMode.LOGICAL
    )


def drain() -> int:
    return Listener().run(until_idle=True)


def payloads(workflow) -> list[dict]:
    return [run.payload for run in Run.objects.filter(workflow=workflow).order_by("id")]


def test_inserts_updates_and_deletes_start_one_run_each_with_the_trigger_items_shape(
    logical_source, logical_db
):
    workflow = db_trigger_workflow(logical_source, operations=("insert", "update", "delete"))
    assert customer_execute(logical_db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rowbell%'") == [
        (0,)
    ]
    customer_execute(logical_db, "INSERT INTO orders (email, amount) VALUES ('a@x.org', 12.5)")
    customer_execute(logical_db, "UPDATE orders SET status = 'paid'")
    customer_execute(logical_db, "DELETE FROM orders")
    assert drain() == 3
    insert, update, delete = payloads(workflow)
    assert insert == {"id": 1, "email": "a@x.org", "status": "new", "note": None, "amount": 12.5}
    assert update["status"] == "paid" and "_old" not in update  # replica identity default: no old row
    assert delete == {"id": 1, "_old": {"id": 1}, "_deleted": True}
    assert drain() == 0  # read again: nothing new, nothing twice


def test_a_full_replica_identity_gives_updates_their_old_row_and_watched_columns_filter(
    logical_source, logical_db
):
    customer_execute(logical_db, "ALTER TABLE orders REPLICA IDENTITY FULL")
    workflow = db_trigger_workflow(logical_source, operations=("update",), watch=("status",))
    customer_execute(logical_db, "INSERT INTO orders (email) VALUES ('a@x.org')")
    customer_execute(logical_db, "UPDATE orders SET note = 'only the note'")
    customer_execute(logical_db, "UPDATE orders SET status = 'paid'")
    drain()
    (run,) = payloads(workflow)
    assert run["status"] == "paid" and run["_old"]["status"] == "new"


def test_a_listener_that_dies_after_starting_runs_but_before_advancing_starts_nothing_twice(
    logical_source, logical_db
):
    workflow = db_trigger_workflow(logical_source)
    customer_execute(
        logical_db, "INSERT INTO orders (email) SELECT 'u' || g || '@x.org' FROM generate_series(1, 50) g"
    )
    # What a listener does up to the moment it is killed: read, commit the runs, and not advance.
    with psycopg.connect(logical_db, autocommit=True) as conn:
        batch = logical.read_changes(conn, logical_source.pk, 500)
        logical.typed_rows(conn, batch.changes)
        assert start_runs_for_changes(logical_source, batch.changes) == 50
    # Killed even earlier, after reading only: the rows are still in the slot as well.
    customer_execute(
        logical_db, "INSERT INTO orders (email) SELECT 'v' || g || '@x.org' FROM generate_series(1, 50) g"
    )
    with psycopg.connect(logical_db, autocommit=True) as conn:
        assert len(logical.read_changes(conn, logical_source.pk, 500).changes) == 100
    drain()
    assert sorted(p["id"] for p in payloads(workflow)) == list(range(1, 101))
    with psycopg.connect(logical_db, autocommit=True) as conn:
        assert logical.read_changes(conn, logical_source.pk, 500).changes == []  # advanced past them


class Writer(threading.Thread):
    """Inserts one row at a time, as fast as it can, until stopped."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stopping, self.written = url, threading.Event(), 0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.is_set():
                conn.execute("INSERT INTO orders (email) VALUES ('w@x.org')")
                self.written += 1


def test_switching_modes_back_and_forth_under_a_stream_of_writes_starts_every_run_once(
    fast_listener, logical_server, tenant_a
):
    source = DataSource.objects.create(
        tenant=tenant_a,
        name="Switching",
        connection_url=logical_server.create_database(f"sw_{uuid.uuid4().hex[:8]}"),
    )
    customer_execute(source.connection_url, CUSTOMER_SCHEMA)
    workflow = db_trigger_workflow(source)
    writer = Writer(source.connection_url)
    writer.start()
    listener = Listener()
    serving = threading.Thread(target=listener.run, daemon=True)
    serving.start()
    try:
        time.sleep(1.0)
        switch_capture(source, DataSource.CaptureMode.LOGICAL)
        time.sleep(1.5)
        switch_capture(source, DataSource.CaptureMode.TRIGGER)
        time.sleep(0.2)
        with pytest.raises(DataSourceUnavailable, match="still reading the slot"):
            switch_capture(source, DataSource.CaptureMode.LOGICAL)
        assert wait_for(lambda: not DataSource.objects.get(pk=source.pk).slot_until_lsn, timeout=60)
        source.refresh_from_db()
        switch_capture(source, DataSource.CaptureMode.LOGICAL)
        time.sleep(1.0)
    finally:
        writer.stopping.set()
        writer.join(10)
        time.sleep(1.0)
        listener.stop.set()
        serving.join(20)
    drain()
    ids = [p["id"] for p in payloads(workflow)]
    assert writer.written > 100
    assert sorted(ids) == list(range(1, writer.written + 1)), (len(ids), writer.written)
    assert customer_execute(source.connection_url, "SELECT count(*) FROM rowbell.event_log") == [(0,)]


def test_switching_back_to_triggers_drops_the_slot_once_it_is_read(logical_source, logical_db, fast_listener):
    workflow = db_trigger_workflow(logical_source)
    customer_execute(logical_db, "INSERT INTO orders (email) VALUES ('in-slot@x.org')")
    switch_capture(logical_source, DataSource.CaptureMode.TRIGGER)
    customer_execute(logical_db, "INSERT INTO orders (email) VALUES ('in-log@x.org')")
    drain()
    drain()  # the heartbeat that carries the slot past the boundary is read on the next pass
    assert sorted(p["email"] for p in payloads(workflow)) == ["in-log@x.org", "in-slot@x.org"]
    source = DataSource.objects.get(pk=logical_source.pk)
    assert (source.slot_from_lsn, source.slot_until_lsn) == ("", "")
    slots = customer_execute(
        logical_db, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
    )
    assert slots == [(0,)]


@pytest.mark.parametrize("guard", ["fallback", "drop"])
def test_the_slot_guard_acts_when_the_slot_holds_more_than_the_tenant_allows(
    logical_source, logical_db, logical_server, fast_listener, guard
):
    workflow = db_trigger_workflow(logical_source)
    DataSource.objects.filter(pk=logical_source.pk).update(slot_guard=guard, slot_max_retained_mb=1)
    # A neighbour's writes grow the WAL the slot holds while this source is not read.
    neighbour = logical_server.create_database(f"busy_{uuid.uuid4().hex[:8]}")
    customer_execute(logical_db, "INSERT INTO orders (email) VALUES ('before@x.org')")
    customer_execute(
        neighbour, "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 30000) g"
    )
    drain()
    source = DataSource.objects.get(pk=logical_source.pk)
    if guard == "fallback":
        assert "fell back to row triggers" in source.slot_guard_note
        assert source.capture_mode == DataSource.CaptureMode.TRIGGER
        assert [p["email"] for p in payloads(workflow)] == ["before@x.org"]  # read before the slot went
    else:
        assert "dropped it" in source.slot_guard_note
        assert source.capture_mode == DataSource.CaptureMode.LOGICAL
    customer_execute(logical_db, "INSERT INTO orders (email) VALUES ('after@x.org')")
    drain()
    drain()
    assert "after@x.org" in [p["email"] for p in payloads(workflow)]
    retained = customer_execute(
        logical_db,
        "SELECT coalesce(max(pg_current_wal_lsn() - restart_lsn), 0) FROM pg_replication_slots "
        "WHERE database = current_database()",
    )[0][0]
    assert retained < 1024 * 1024
