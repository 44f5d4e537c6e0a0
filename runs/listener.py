"""The listener: turns rows of each data source's `rowbell.event_log` into runs, exactly once.

One process (`manage.py listen`) serves every data source that has a published database trigger. For
each one it keeps a connection and, in a loop:

1. claims up to LISTENER_BATCH_SIZE log rows, oldest first, with `FOR UPDATE SKIP LOCKED` (a second
   listener skips them and takes the next ones);
2. starts one run per row in Rowbell's database, with the event key `db:<data source id>:<log id>`
   (unique per workflow, so a row processed twice never starts a second run), and commits that;
3. deletes the claimed rows and commits the customer-side transaction.

A crash between 2 and 3 leaves the rows in the log; the next claim finds that their runs exist. There is
no "last id seen" cursor: identity values commit out of order, and whatever is in the log is pending.

Isolation: one thread per data source. `Listener.run()` gives every source its own `SourcePoller` thread,
which connects, claims, waits and reconnects on its own; the main thread only follows publishing (starts a
thread for a source that gained a trigger, stops the thread of one that lost it) and writes each source's
`listener_status`. A customer host that never answers a connection attempt (a firewall dropping packets),
or a server that hangs mid-query, therefore holds up its own thread and nobody else's events. Bounds on
that one thread: the connect timeout (DATASOURCE_CONNECT_TIMEOUT), the server-side statement_timeout
(LISTENER_STATEMENT_TIMEOUT) and TCP keepalives (integrations/datasources/connection.py), after which the
source is "reconnecting" with the reason (only a frozen server process behind a live kernel escapes them,
and then only its own thread waits). One thread per source is cheap at the scale of one process:
threads spend their life in select/sleep, a few hundred of them cost a few MB of memory and no CPU, and
Rowbell's database sees one connection per source only while it has events (a source that goes idle
closes its connection). Several thousand sources would call for several listener processes instead.

Row watches (workflows/row_watches.py) log their tables' updates and deletes into the same event log, under
their `trigger_id` (above ROW_WATCH_BASE, never a workflow id): each source's claim takes them with its
workflows' rows, and `handle_events` hands them to runs/row_changes.py, which wakes the waits on those rows
and cancels from the row's state, in the same Rowbell transaction as the runs the other rows start.

`run_once()` and `run(until_idle=True)` are the draining modes of tests, scripts and `listen --once`:
passes over every source in the calling thread, in turn, until a pass finds nothing. They share the
claim/start/delete code with the threads but not the isolation: an unreachable source delays the pass.

Polling: every LISTENER_POLL_INTERVAL seconds when idle, every LISTENER_BUSY_POLL_INTERVAL for
LISTENER_BUSY_WINDOW seconds after an event (so a steady stream sees milliseconds of latency while an
idle database sees a few cheap queries a second). A data source with `notify_enabled` also wakes its
thread by NOTIFY. A database that goes away is retried with exponential backoff (up to
LISTENER_MAX_BACKOFF seconds), its `listener_status` shown as "reconnecting" with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.db import Error as RowbellDatabaseError
from django.db import connections, transaction
from django.utils import timezone

from integrations.datasources import (
    DataSourceUnavailable,
    TriggerSpec,
    connect_datasource,
    describe_error,
    logical,
)
from integrations.datasources.session import listener_transaction
from integrations.datasources.triggers import NOTIFY_CHANNEL
from integrations.models import DataSource
from runs import row_changes
from runs.engine import metrics, outages, start_runs
from runs.listener_leases import Leases, new_identity
from workflows import row_watches
from workflows.database_triggers import (
    SWITCHING,
    published_triggers,
    switch_capture,
    trigger_spec,
    watched_tables,
)
from workflows.models import ROW_WATCH_BASE

log = logging.getLogger(__name__)

# Only rows of workflows published on this data source: rows of any other workflow must not sit at the
# head of the queue (they are swept separately, after LISTENER_ORPHAN_GRACE).
# The listener's lag: how long the oldest row still in the log has waited (the id order is the insert order).
LAG_SQL = (
    "SELECT extract(epoch FROM clock_timestamp() - created_at) FROM rowbell.event_log ORDER BY id LIMIT 1"
)
LAG_SECONDS = 2.0

CLAIM_SQL = (
    "SELECT id, workflow_id, op, new_row, old_row FROM rowbell.event_log "
    "WHERE workflow_id = ANY(%s) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)
# Publishing installs the trigger before Rowbell's transaction commits, so a young row of an unknown
# workflow may belong to a publish in progress; an old one belongs to a trigger that is gone. They are
# deleted in slices, within ORPHAN_SWEEP_SECONDS per sweep: a big backlog (a trigger left behind while
# its database was unreachable) must neither exceed the statement timeout nor hold up the events.
ORPHAN_SQL = (
    "WITH doomed AS MATERIALIZED (SELECT id FROM rowbell.event_log WHERE NOT (workflow_id = ANY(%s)) "
    "AND created_at < now() - make_interval(secs => %s) ORDER BY id LIMIT %s) "
    "DELETE FROM rowbell.event_log e USING doomed WHERE e.id = doomed.id"
)
ORPHAN_SWEEP_SECONDS = 1.0
HEARTBEAT = timedelta(seconds=10)
SLOT_HEARTBEAT_BYTES = 16 * 1024 * 1024
# A stop request is noticed within this long by a thread waiting on its NOTIFY socket.
SELECT_SLICE_SECONDS = 0.5


def option(name: str, default: float) -> float:
    return getattr(settings, name, default)


def event_item(op: str, new_row: dict, old_row: dict | None) -> dict:
    """The run's item: the new row, plus `_old` (the previous row) for updates. A delete's item is the
    deleted row, with `_old` (the same row) and `_deleted: true`, so `item.id` works in both."""
    item = dict(new_row)
    if op == "DELETE":
        item["_old"] = old_row if old_row is not None else dict(new_row)
        item["_deleted"] = True
    elif op == "UPDATE" and old_row is not None:
        item["_old"] = old_row
    return item


def close_rowbell_connections() -> None:
    """Close this thread's connections to Rowbell's database (Django keeps one per thread)."""
    connections.close_all()


def guard_rowbell(func: Callable[[], int | None], pause: threading.Event) -> int:
    """Rowbell's own database or Redis going away must not kill a loop: retry on the next pass.

    The customer-side transaction has been rolled back by then, so the claimed rows are still in the
    log; the next claim finds the runs that did commit (event keys) and starts the others.
    """
    try:
        return func() or 0
    except RowbellDatabaseError as exc:
        if outages.is_database_outage(exc):
            outages.DATABASE.down(exc)  # one line per outage (the heartbeat logs its end), not one per pass
        else:
            log.error("Rowbell's database failed (%s); retrying", exc)
        close_rowbell_connections()
    except Exception:
        # e.g. Redis down while queueing the runs' first jobs (the sweeper re-queues them later).
        log.exception("Listener pass failed; retrying")
    pause.wait(1.0)
    return 0


class SourcePoller:
    """One data source: its connection, backoff and health, and the claim → start runs → delete cycle.

    Used by one thread at a time: its own (`serve`, started by `Listener.run()`), or the caller's in the
    draining modes. Other threads only read `health` and `handled` and set `stopping`.
    """

    def __init__(self, datasource: DataSource, workflow_ids: list[int] | None = None):
        self.datasource = datasource
        # The workflows whose log rows it claims, and its row watches' trigger ids (workflows/row_watches.py).
        self.workflow_ids: list[int] = workflow_ids or []
        # Executions decided by a row change while they were running (runs/row_changes.py).
        self.rewaking: list[int] = []
        self.conn: psycopg.Connection | None = None
        self.backoff = 0.0
        self.retry_at = 0.0
        self.last_event_at = 0.0
        self.orphans_swept_at = time.monotonic()
        self.handled = 0
        # (status, error, when) of the latest poll; the listener's thread copies it to the DataSource row.
        self.health: tuple[str, str, datetime] | None = None
        self.status_written: tuple[str, str] | None = None
        self.seen_written: datetime | None = None
        # Seconds the oldest row of the source's event log has waited (0: empty), measured at most every
        # LAG_SECONDS by this source's thread, and published for /metrics by the listener's thread.
        self.lag: float | None = None
        self.lag_measured_at = 0.0
        self.lag_published_at = 0.0
        # Logical decoding: whether the database still has a trigger log to drain (checked per connection),
        # when the slot was last given a heartbeat, and its last measured health.
        self.log_exists: bool | None = None
        self.heartbeat_at = 0.0
        self.slot: logical.SlotHealth | None = None
        # Set when the listener stops or drops this source; also what the thread sleeps on.
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    # -- the source's own thread ------------------------------------------------------------------------
    def start_thread(self) -> None:
        self.thread = threading.Thread(
            target=self.serve, name=f"listener-source-{self.datasource.pk}", daemon=True
        )
        self.thread.start()

    def serve(self) -> None:
        """Poll, wait, repeat, until the listener stops or drops this source."""
        try:
            while not self.stopping.is_set():
                if guard_rowbell(self.poll, self.stopping):
                    continue  # there may be more: claim again at once
                if not self.busy():
                    # An idle source gives its connection to Rowbell's database back, so that the
                    # process holds one per source with events, not one per source.
                    close_rowbell_connections()
                self.wait_for_events()
        finally:
            self.close()
            close_rowbell_connections()

    def wait_for_events(self) -> None:
        """Sleep until the next poll is due: the backoff, the busy or idle interval, or a NOTIFY."""
        now = time.monotonic()
        if self.retry_at > now:
            self.stopping.wait(self.retry_at - now)
            return
        interval = (
            option("LISTENER_BUSY_POLL_INTERVAL", 0.01)
            if self.busy()
            else option("LISTENER_POLL_INTERVAL", 0.25)
        )
        if not self.wants_notify():
            self.stopping.wait(interval)
            return
        if self.drain_notifications() or not self.wants_notify() or (conn := self.conn) is None:
            return
        deadline = now + interval
        while not self.stopping.is_set() and (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([conn.fileno()], [], [], min(remaining, SELECT_SLICE_SECONDS))
            if ready:
                self.drain_notifications()
                return

    def busy(self) -> bool:
        return time.monotonic() - self.last_event_at < option("LISTENER_BUSY_WINDOW", 2.0)

    # -- one poll ---------------------------------------------------------------------------------------
    def poll(self) -> int:
        """Process one batch; returns how many log rows were handled (0 when idle or unreachable)."""
        if time.monotonic() < self.retry_at:
            return 0
        try:
            conn = self._ensure_connected()
            if self.stopping.is_set():  # a slow connection attempt outlived the source
                return 0
            handled = self._process_batch(conn)
        except (psycopg.Error, DataSourceUnavailable) as exc:
            self._lost(exc)
            return 0
        self._healthy()
        if handled:
            self.last_event_at = time.monotonic()
            self.handled += handled
        return handled

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None

    def wants_notify(self) -> bool:
        return self.datasource.notify_enabled and self.conn is not None

    def drain_notifications(self) -> bool:
        """True when NOTIFY said something arrived (hint only: polling is what finds events)."""
        if not self.wants_notify() or (conn := self.conn) is None:
            return False
        try:
            # Consume them all: the generator holds the connection's lock until it is exhausted.
            return sum(1 for _ in conn.notifies(timeout=0)) > 0
        except psycopg.Error as exc:
            self._lost(exc)
            return False

    def _ensure_connected(self) -> psycopg.Connection:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        self.log_exists = None
        self.conn = conn = connect_datasource(self.datasource, application_name="rowbell-listener")
        if self.datasource.notify_enabled:
            # A hint only: through a transaction-mode pooler the LISTEN stays on a server connection this
            # client may not get again, and polling alone finds the rows (the connection check says so).
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            conn.commit()
        return conn

    def _process_batch(self, conn: psycopg.Connection) -> int:
        handled = self._process_log_batch(conn) if self._reads_log(conn) else 0
        if self._reads_slot():
            handled += self._process_slot_batch(conn)
        return handled

    def _reads_log(self, conn: psycopg.Connection) -> bool:
        """Trigger capture reads the log; logical decoding drains what the triggers logged before a switch."""
        if self.datasource.capture_mode != DataSource.CaptureMode.LOGICAL:
            return True
        if self.log_exists is None:
            with listener_transaction(conn):
                found = conn.execute("SELECT to_regclass('rowbell.event_log') IS NOT NULL").fetchone()
            self.log_exists = bool(found and found[0])
        return self.log_exists

    def _reads_slot(self) -> bool:
        """Logical decoding reads the slot; trigger capture too while a switch back leaves changes in it."""
        ds = self.datasource
        return ds.capture_mode == DataSource.CaptureMode.LOGICAL or bool(ds.slot_until_lsn)

    def _process_log_batch(self, conn: psycopg.Connection) -> int:
        batch = int(option("LISTENER_BATCH_SIZE", 500))
        grace = option("LISTENER_ORPHAN_GRACE", 60)
        if time.monotonic() - self.orphans_swept_at > grace:
            self._sweep_orphans(conn, grace)
        if time.monotonic() - self.lag_measured_at > LAG_SECONDS and not self._reads_slot():
            self.lag_measured_at = time.monotonic()
            with listener_transaction(conn):
                oldest = conn.execute(LAG_SQL).fetchone()
            self.lag = float(oldest[0]) if oldest else 0.0
        with listener_transaction(conn):
            if self.rewaking:
                self.rewaking = row_changes.rewake(self.rewaking)
            rows = conn.execute(CLAIM_SQL, (self.workflow_ids, batch)).fetchall()
            if not rows:
                return 0
            done, running = handle_events(self.datasource, rows)
            self.rewaking += running
            if done:
                conn.execute("DELETE FROM rowbell.event_log WHERE id = ANY(%s)", (done,))
        return len(done)

    def _process_slot_batch(self, conn: psycopg.Connection) -> int:
        """Read the slot, start the runs (committed in Rowbell's database), and only then advance it."""
        ds = self.datasource
        batch = logical.read_changes(conn, ds.pk, int(option("LISTENER_BATCH_SIZE", 500)))
        # Which part of the slot is ours is read after peeking, not from the last refresh: a switch back to
        # triggers recorded in between would otherwise let this batch take changes the log has too.
        ds.refresh_from_db(fields=["capture_mode", "slot_from_lsn", "slot_until_lsn"])
        if ds.slot_until_lsn == SWITCHING:
            return 0  # the triggers are being installed: read again once their boundary is known
        mine = [change for change in batch.changes if self._slot_owns(change)]
        logical.typed_rows(conn, mine)
        started = start_runs_for_changes(ds, mine)
        if batch.advance_to is not None:
            logical.advance(conn, ds.pk, batch.advance_to)
        elif self._heartbeat_due():
            # Nothing to advance to: give the slot a transaction of its own, so a quiet database's slot
            # does not hold the WAL other activity writes (and a switch back to triggers can finish).
            self.heartbeat_at = time.monotonic()
            logical.heartbeat(conn)
        self._measure_slot(conn, batch)
        until = ds.slot_until_lsn
        if until and batch.advance_to and logical.lsn_to_int(batch.advance_to) >= logical.lsn_to_int(until):
            self._finish_switch_to_triggers(conn)
        return started

    def _heartbeat_due(self) -> bool:
        """Every peek decodes again from the slot's position, so a slot that other databases' WAL has left
        far behind is moved on at once, not only every LISTENER_SLOT_HEARTBEAT seconds."""
        if self.datasource.capture_mode == DataSource.CaptureMode.TRIGGER:
            return True  # a switch back finishes once the slot is past its boundary
        behind = self.slot is not None and self.slot.lag_bytes > SLOT_HEARTBEAT_BYTES
        return behind or time.monotonic() - self.heartbeat_at > option("LISTENER_SLOT_HEARTBEAT", 10.0)

    def _slot_owns(self, change: logical.RowChange) -> bool:
        """Whether the slot, not the trigger log, delivers this change (see switch_capture)."""
        ds, commit = self.datasource, logical.lsn_to_int(change.commit_lsn)
        after_from = not ds.slot_from_lsn or commit >= logical.lsn_to_int(ds.slot_from_lsn)
        before_until = not ds.slot_until_lsn or commit < logical.lsn_to_int(ds.slot_until_lsn)
        return after_from and before_until

    def _measure_slot(self, conn: psycopg.Connection, batch: logical.ChangeBatch) -> None:
        if time.monotonic() - self.lag_measured_at <= LAG_SECONDS:
            return
        self.lag_measured_at = time.monotonic()
        oldest = batch.oldest_commit_at
        self.lag = (timezone.now() - oldest).total_seconds() if oldest and batch.changes else 0.0
        self.slot = logical.slot_health(conn, self.datasource.pk)
        limit = self.datasource.slot_max_retained_mb * 1024 * 1024
        if self.datasource.slot_until_lsn:
            limit *= 2  # a fallback's slot is being read to its end, which frees it: only a runaway is cut
        if self.slot.exists and self.slot.retained_bytes > limit:
            self._guard_slot(conn)

    def _guard_slot(self, conn: psycopg.Connection) -> None:
        """The slot holds more WAL than the tenant allows: act as the tenant chose, before the disk fills."""
        ds, held = self.datasource, self.slot.retained_bytes if self.slot else 0
        when = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
        if ds.slot_guard == DataSource.SlotGuard.DROP or ds.capture_mode == DataSource.CaptureMode.TRIGGER:
            logical.drop_capture(conn, ds.pk)
            if ds.capture_mode == DataSource.CaptureMode.LOGICAL:
                logical.ensure_capture(conn, ds.pk, watched_tables(ds))
            note = (
                f"{when}: the slot held {held // 2**20} MB; dropped it. Changes it still held were not read."
            )
            DataSource.objects.filter(pk=ds.pk).update(slot_until_lsn="", slot_guard_note=note)
            ds.slot_until_lsn = ""
        else:
            switch_capture(ds, DataSource.CaptureMode.TRIGGER)
            note = (
                f"{when}: the slot held {held // 2**20} MB; fell back to row triggers. The slot is read "
                "to its end, then dropped."
            )
            DataSource.objects.filter(pk=ds.pk).update(slot_guard_note=note)
        ds.slot_guard_note = note
        log.error("Data source %s: %s", ds.pk, note)

    def _finish_switch_to_triggers(self, conn: psycopg.Connection) -> None:
        logical.drop_capture(conn, self.datasource.pk)
        DataSource.objects.filter(pk=self.datasource.pk).update(slot_from_lsn="", slot_until_lsn="")
        self.datasource.slot_from_lsn = self.datasource.slot_until_lsn = ""
        self.slot = None
        log.info("Data source %s: back on row triggers; its replication slot is dropped", self.datasource.pk)

    def _sweep_orphans(self, conn: psycopg.Connection, grace: float) -> None:
        # Marked first: a sweep that fails must not run again before every claim and starve the events.
        self.orphans_swept_at = time.monotonic()
        active = list(published_triggers(self.datasource.pk).values_list("version__workflow_id", flat=True))
        batch = int(option("LISTENER_ORPHAN_BATCH", 10_000))
        dropped, started = 0, time.monotonic()
        try:
            while time.monotonic() - started < ORPHAN_SWEEP_SECONDS:
                with listener_transaction(conn):
                    deleted = conn.execute(ORPHAN_SQL, (active, grace, batch)).rowcount
                dropped += deleted
                if deleted < batch:
                    break
        except psycopg.errors.QueryCanceled as exc:
            log.warning(
                "Data source %s: sweeping old events timed out (%s); next sweep later",
                self.datasource.pk,
                exc,
            )
        if dropped:
            log.warning(
                "Data source %s: dropped %d event(s) of unpublished workflows", self.datasource.pk, dropped
            )

    def _lost(self, exc: BaseException) -> None:
        if isinstance(exc, DataSourceUnavailable):
            message = str(exc)
        else:
            message = describe_error(exc, self.datasource.connection_url or "")
        self.close()
        self.backoff = min(
            max(self.backoff * 2, option("LISTENER_MIN_BACKOFF", 0.2)), option("LISTENER_MAX_BACKOFF", 30)
        )
        self.retry_at = time.monotonic() + self.backoff
        log.warning(
            "Data source %s unreachable (retry in %.1fs): %s", self.datasource.pk, self.backoff, message
        )
        self.health = (DataSource.ListenerStatus.RECONNECTING, message, timezone.now())

    def _healthy(self) -> None:
        self.backoff = 0.0
        self.health = (DataSource.ListenerStatus.LISTENING, "", timezone.now())

    # -- the listener's thread --------------------------------------------------------------------------
    def write_status(self) -> None:
        """Copy the latest poll's outcome to the DataSource row: on change, and as a heartbeat.

        `listener_seen_at` is when the source was last polled, so it stops moving while the source's
        thread is stuck (in a connection attempt, say), whatever the status says.
        """
        if self.health is None:
            return
        self.publish_lag()
        status, error, polled_at = self.health
        if (
            self.status_written == (status, error)
            and self.seen_written is not None
            and polled_at - self.seen_written < HEARTBEAT
        ):
            return
        slot = self.slot if self.slot is not None and self.slot.exists else None
        DataSource.objects.filter(pk=self.datasource.pk).update(
            listener_status=status,
            listener_error=error,
            listener_seen_at=polled_at,
            slot_lag_bytes=slot.lag_bytes if slot else None,
            slot_retained_bytes=slot.retained_bytes if slot else None,
        )
        self.status_written = (status, error)
        self.seen_written = polled_at

    def publish_lag(self) -> None:
        """The lag of this source's event log, for /metrics (runs/engine/metrics.py), every LAG_SECONDS."""
        if self.lag is None or time.monotonic() - self.lag_published_at < LAG_SECONDS:
            return
        metrics.record_listener_lag(self.datasource.pk, self.lag)
        self.lag_published_at = time.monotonic()


def handle_events(datasource: DataSource, rows: list[tuple]) -> tuple[list[int], list[int]]:
    """Claimed log rows: row watches' changes wake waits and cancel (runs/row_changes.py), workflows'
    start runs. Returns (the ids that may be deleted, executions to wake again: `row_changes.rewake`)."""
    watched = [row for row in rows if row[1] >= ROW_WATCH_BASE]
    done, running = row_changes.handle(datasource.pk, watched) if watched else ([], [])
    starting = [row for row in rows if row[1] < ROW_WATCH_BASE]
    return done + (start_runs_for_events(datasource, starting) if starting else []), running


def start_runs_for_events(datasource: DataSource, rows: list[tuple]) -> list[int]:
    """Start the runs of claimed log rows in one Rowbell transaction; returns the ids that may be deleted.

    Rows of a workflow that stopped being published since the claim are left in the log (the orphan
    sweep removes them later).
    """
    versions = {step.version.workflow_id: step.version for step in published_triggers(datasource.pk)}
    by_workflow: dict[int, list[tuple[dict, str]]] = defaultdict(list)
    done = []
    for event_id, workflow_id, op, new_row, old_row in rows:
        if workflow_id in versions:
            by_workflow[workflow_id].append(
                (event_item(op, new_row, old_row), f"db:{datasource.pk}:{event_id}")
            )
            done.append(event_id)
    with transaction.atomic():
        for workflow_id, events in by_workflow.items():
            version = versions[workflow_id]
            start_runs(version.workflow, events, version=version)
    return done


def start_runs_for_changes(datasource: DataSource, changes: list[logical.RowChange]) -> int:
    """Start the runs of decoded changes in one Rowbell transaction; returns how many runs were asked for.

    A change goes to each published trigger that watches its table and operation (and, for an update with
    the whole old row, one of its columns); its event key is its transaction's commit position and its
    place in it, the same on every read, so a change read again starts nothing again.
    """
    watching = [
        (step.version, trigger_spec(step, datasource.notify_enabled))
        for step in published_triggers(datasource.pk)
    ]
    by_workflow: dict[int, list[tuple[dict, str]]] = defaultdict(list)
    versions = {}
    for change in changes:
        for version, spec in watching:
            if _spec_matches(spec, change):
                key = f"db:{datasource.pk}:wal:{change.event_key}"
                by_workflow[version.workflow_id].append(
                    (event_item(change.op, change.new_row, change.old_row), key)
                )
                versions[version.workflow_id] = version
    with transaction.atomic():
        for workflow_id, events in by_workflow.items():
            version = versions[workflow_id]
            start_runs(version.workflow, events, version=version)
    return sum(len(events) for events in by_workflow.values())


def _spec_matches(spec: TriggerSpec, change: logical.RowChange) -> bool:
    """What the trigger's table, operations and WHEN condition would have decided. Without the old row
    (a table whose replica identity is not FULL) an update cannot be compared, so it counts as a change."""
    if (spec.schema, spec.table) != (change.schema, change.table) or change.op.lower() not in spec.operations:
        return False
    if change.op != "UPDATE" or change.old_row is None or change.old_is_key:
        return True
    columns = spec.watch_columns or tuple(change.new_row)
    return any(change.old_row.get(column) != change.new_row.get(column) for column in columns)


def connection_changed(before: DataSource, after: DataSource) -> bool:
    return (before.connection_url, before.notify_enabled) != (after.connection_url, after.notify_enabled)


class Listener:
    """All active data sources. `run()` serves each in its own thread until stopped; `run_once()` and
    `run(until_idle=True)` poll them in turn in the calling thread."""

    def __init__(self, stop: threading.Event | None = None, identity: str | None = None):
        self.stop = stop or threading.Event()
        # Serving (`run()`), this listener reads only the sources it holds a lease on (runs/listener_leases.py);
        # the draining modes of tests and scripts read every source.
        self.leases = Leases(identity or new_identity())
        self.pollers: dict[int, SourcePoller] = {}
        # Pollers of dropped sources whose thread may still be finishing a batch (or a connect attempt).
        self.retiring: list[SourcePoller] = []
        self.retired_handled = 0
        self.threaded = False
        self.refreshed_at = 0.0

    def refresh_sources(self) -> None:
        """Follow publishing: serve data sources that gained a trigger, drop those that lost theirs."""
        workflows_by_source: dict[int, list[int]] = defaultdict(list)
        for datasource_id, workflow_id in published_triggers().values_list(
            "config__datasource", "version__workflow_id"
        ):
            workflows_by_source[int(datasource_id)].append(workflow_id)
        for datasource_id, trigger_ids in row_watches.watch_ids_by_source().items():
            workflows_by_source[datasource_id] += trigger_ids
        wanted = list(workflows_by_source)
        if self.threaded:
            wanted = self.leases.hold(wanted)
        current = {ds.pk: ds for ds in DataSource.objects.filter(pk__in=wanted)}
        for pk in list(self.pollers):
            if pk not in current:
                self._retire(self.pollers.pop(pk))
                if pk not in workflows_by_source:  # not given to another listener: nobody reads it now
                    DataSource.objects.filter(pk=pk).update(listener_status=DataSource.ListenerStatus.IDLE)
        for pk, datasource in current.items():
            workflow_ids = sorted(workflows_by_source[pk])
            poller = self.pollers.get(pk)
            if poller is not None and connection_changed(poller.datasource, datasource):
                # A new URL or NOTIFY option: a new connection (with or without LISTEN), a new thread.
                self._retire(self.pollers.pop(pk))
                poller = None
            if poller is None:
                poller = self.pollers[pk] = SourcePoller(datasource, workflow_ids)
                if self.threaded:
                    poller.start_thread()
            poller.datasource = datasource
            poller.workflow_ids = workflow_ids
        self._reap()
        self.refreshed_at = time.monotonic()

    def write_statuses(self) -> None:
        for poller in list(self.pollers.values()):
            poller.write_status()

    def run_once(self) -> int:
        """One pass over every data source, in the calling thread."""
        if time.monotonic() - self.refreshed_at >= option("LISTENER_REFRESH_INTERVAL", 2.0):
            guard_rowbell(self.refresh_sources, self.stop)
        handled = 0
        for poller in list(self.pollers.values()):
            handled += guard_rowbell(poller.poll, self.stop)
        guard_rowbell(self.write_statuses, self.stop)
        return handled

    def run(self, until_idle: bool = False, max_seconds: float | None = None) -> int:
        """Serve until stopped (or max_seconds pass); returns how many events this call handled.

        until_idle=True drains instead: passes in the calling thread until one finds nothing.
        """
        deadline = time.monotonic() + max_seconds if max_seconds else None
        handled_before = self.handled_total()
        try:
            if until_idle:
                self._drain(deadline)
            else:
                self._serve(deadline)
        finally:
            self.close()
        return self.handled_total() - handled_before

    def close(self) -> None:
        """Stop the sources' threads, close the connections and record the sources' last outcomes.

        Waits LISTENER_SHUTDOWN_GRACE seconds at most: a thread inside a connection attempt to a host that
        does not answer cannot be interrupted. It is a daemon thread, so the process exits without it; it
        holds no transaction then (and one stuck mid-claim has its transaction rolled back by the server).
        A later `run()` starts new threads.
        """
        serving = [(p, p.thread) for p in [*self.pollers.values(), *self.retiring] if p.thread is not None]
        for poller, _thread in serving:
            poller.stopping.set()
        deadline = time.monotonic() + option("LISTENER_SHUTDOWN_GRACE", 5.0)
        for _poller, thread in serving:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for poller in self.pollers.values():
            if poller.thread is None:
                poller.close()
        guard_rowbell(self.write_statuses, self.stop)
        if self.threaded:
            guard_rowbell(self.leases.release, self.stop)
        self.pollers = {pk: p for pk, p in self.pollers.items() if p.thread is None}
        self.retiring = [poller for poller, _thread in serving]
        self._reap()
        self.threaded = False
        if self.retiring:
            log.warning(
                "Data source(s) %s still busy (in a connection attempt?); not waiting for them",
                [p.datasource.pk for p in self.retiring],
            )

    def handled_total(self) -> int:
        """Events handled so far, by every poller this listener has had."""
        return self.retired_handled + sum(p.handled for p in [*self.pollers.values(), *self.retiring])

    def _drain(self, deadline: float | None) -> None:
        while not self.stop.is_set():
            if self.run_once() == 0 or (deadline and time.monotonic() >= deadline):
                break

    def _serve(self, deadline: float | None) -> None:
        self.threaded = True
        for poller in self.pollers.values():  # sources known from an earlier run_once()
            if poller.thread is None:
                poller.start_thread()
        while not self.stop.is_set():
            guard_rowbell(self.refresh_sources, self.stop)
            guard_rowbell(self.write_statuses, self.stop)
            pause = option("LISTENER_REFRESH_INTERVAL", 2.0)
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
                if pause <= 0:
                    break
            self.stop.wait(pause)

    def _retire(self, poller: SourcePoller) -> None:
        poller.stopping.set()
        if poller.thread is None:
            poller.close()
            self.retired_handled += poller.handled
        else:
            self.retiring.append(poller)  # its thread closes the connection on its way out

    def _reap(self) -> None:
        for poller in [p for p in self.retiring if p.thread is None or not p.thread.is_alive()]:
            self.retiring.remove(poller)
            self.retired_handled += poller.handled
