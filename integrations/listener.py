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

Polling: every LISTENER_POLL_INTERVAL seconds when idle, every LISTENER_BUSY_POLL_INTERVAL for
LISTENER_BUSY_WINDOW seconds after an event (so a steady stream sees milliseconds of latency while an
idle database sees a few cheap queries a second). A data source with `notify_enabled` also wakes the
listener by NOTIFY. A database that goes away is retried with exponential backoff (up to
LISTENER_MAX_BACKOFF seconds), its `listener_status` shown as "reconnecting" with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections import defaultdict

import psycopg
from django.conf import settings
from django.db import Error as RowbellDatabaseError
from django.db import close_old_connections, transaction
from django.db import connection as rowbell_db
from django.utils import timezone

from integrations.datasources import DataSourceUnavailable, connect, describe_error
from integrations.datasources.triggers import NOTIFY_CHANNEL
from integrations.models import DataSource

log = logging.getLogger(__name__)

# Only rows of workflows published on this data source: rows of any other workflow must not sit at the
# head of the queue (they are swept separately, after LISTENER_ORPHAN_GRACE).
CLAIM_SQL = (
    "SELECT id, workflow_id, op, new_row, old_row FROM rowbell.event_log "
    "WHERE workflow_id = ANY(%s) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)
# Publishing installs the trigger before Rowbell's transaction commits, so a young row of an unknown
# workflow may belong to a publish in progress; an old one belongs to a trigger that is gone.
ORPHAN_SQL = (
    "DELETE FROM rowbell.event_log WHERE NOT (workflow_id = ANY(%s)) "
    "AND created_at < now() - make_interval(secs => %s)"
)
HEARTBEAT_SECONDS = 10


def option(name: str, default: float) -> float:
    return getattr(settings, name, default)


def event_item(op: str, new_row: dict, old_row: dict | None) -> dict:
    """The run's item: the new row, plus `_old` (the previous row) for updates."""
    item = dict(new_row)
    if op == "UPDATE" and old_row is not None:
        item["_old"] = old_row
    return item


class SourcePoller:
    """One data source: its connection, its backoff, and the claim → start runs → delete cycle."""

    def __init__(self, datasource: DataSource):
        self.datasource = datasource
        self.conn: psycopg.Connection | None = None
        self.backoff = 0.0
        self.retry_at = 0.0
        self.last_event_at = 0.0
        self.status_written: tuple[str, str] | None = None
        self.heartbeat_at = 0.0
        self.workflow_ids: list[int] = []
        self.orphans_swept_at = time.monotonic()

    def poll(self) -> int:
        """Process one batch; returns how many log rows were handled (0 when idle or unreachable)."""
        if time.monotonic() < self.retry_at:
            return 0
        try:
            self._ensure_connected()
            handled = self._process_batch()
        except (psycopg.Error, DataSourceUnavailable) as exc:
            self._lost(exc)
            return 0
        self._healthy()
        if handled:
            self.last_event_at = time.monotonic()
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
        if not self.wants_notify():
            return False
        try:
            # Consume them all: the generator holds the connection's lock until it is exhausted.
            return sum(1 for _ in self.conn.notifies(timeout=0)) > 0
        except psycopg.Error as exc:
            self._lost(exc)
            return False

    def _ensure_connected(self) -> None:
        if self.conn is not None and not self.conn.closed:
            return
        self.conn = connect(self.datasource, application_name="rowbell-listener")
        if self.datasource.notify_enabled:
            self.conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.conn.commit()

    def _process_batch(self) -> int:
        batch = int(option("LISTENER_BATCH_SIZE", 500))
        grace = option("LISTENER_ORPHAN_GRACE", 60)
        if time.monotonic() - self.orphans_swept_at > grace:
            self._sweep_orphans(grace)
        with self.conn.transaction():
            rows = self.conn.execute(CLAIM_SQL, (self.workflow_ids, batch)).fetchall()
            if not rows:
                return 0
            done = start_runs_for_events(self.datasource, rows)
            if done:
                self.conn.execute("DELETE FROM rowbell.event_log WHERE id = ANY(%s)", (done,))
        return len(done)

    def _sweep_orphans(self, grace: float) -> None:
        from workflows.steps.database_trigger import published_triggers

        active = list(published_triggers(self.datasource.pk).values_list("version__workflow_id", flat=True))
        with self.conn.transaction():
            dropped = self.conn.execute(ORPHAN_SQL, (active, grace)).rowcount
        if dropped:
            log.warning(
                "Data source %s: dropped %d event(s) of unpublished workflows", self.datasource.pk, dropped
            )
        self.orphans_swept_at = time.monotonic()

    def _lost(self, exc: BaseException) -> None:
        message = str(exc) if isinstance(exc, DataSourceUnavailable) else describe_error(exc)
        self.close()
        self.backoff = min(
            max(self.backoff * 2, option("LISTENER_MIN_BACKOFF", 0.2)), option("LISTENER_MAX_BACKOFF", 30)
        )
        self.retry_at = time.monotonic() + self.backoff
        log.warning(
            "Data source %s unreachable (retry in %.1fs): %s", self.datasource.pk, self.backoff, message
        )
        self._write_status(DataSource.ListenerStatus.RECONNECTING, message)

    def _healthy(self) -> None:
        self.backoff = 0.0
        self._write_status(DataSource.ListenerStatus.LISTENING, "")

    def _write_status(self, status: str, error: str) -> None:
        # Only on change, plus a heartbeat: a busy listener must not write a row per poll.
        now = time.monotonic()
        if self.status_written == (status, error) and now - self.heartbeat_at < HEARTBEAT_SECONDS:
            return
        DataSource.objects.filter(pk=self.datasource.pk).update(
            listener_status=status, listener_error=error, listener_seen_at=timezone.now()
        )
        self.status_written = (status, error)
        self.heartbeat_at = now


def start_runs_for_events(datasource: DataSource, rows: list[tuple]) -> list[int]:
    """Start the runs of claimed log rows in one Rowbell transaction; returns the ids that may be deleted.

    Rows of a workflow that stopped being published since the claim are left in the log (the orphan
    sweep removes them later).
    """
    from workflows.steps.database_trigger import published_triggers

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
            _start(version.workflow, version, events)
    return done


def _start(workflow, version, events: list[tuple[dict, str]]) -> None:
    from runs.engine import start_runs

    start_runs(workflow, events, version=version)


class Listener:
    """The loop over all active data sources. `run_once()` is one pass; `run()` loops until stopped."""

    def __init__(self, stop: threading.Event | None = None):
        self.stop = stop or threading.Event()
        self.pollers: dict[int, SourcePoller] = {}
        self.refreshed_at = 0.0

    def refresh_sources(self) -> None:
        """Follow publishing: poll data sources that gained a trigger, drop those that lost theirs."""
        from workflows.steps.database_trigger import published_triggers

        workflows_by_source: dict[int, list[int]] = defaultdict(list)
        for datasource_id, workflow_id in published_triggers().values_list(
            "config__datasource", "version__workflow_id"
        ):
            workflows_by_source[int(datasource_id)].append(workflow_id)
        current = {ds.pk: ds for ds in DataSource.objects.filter(pk__in=list(workflows_by_source))}
        for pk in list(self.pollers):
            if pk not in current:
                self.pollers.pop(pk).close()
                DataSource.objects.filter(pk=pk).update(listener_status=DataSource.ListenerStatus.IDLE)
        for pk, datasource in current.items():
            poller = self.pollers.get(pk)
            if poller is None:
                poller = self.pollers[pk] = SourcePoller(datasource)
            else:
                before = poller.datasource
                if (before.connection_url, before.notify_enabled) != (
                    datasource.connection_url,
                    datasource.notify_enabled,
                ):
                    poller.close()  # reconnects to the new URL, with (or without) LISTEN
                poller.datasource = datasource
            poller.workflow_ids = sorted(workflows_by_source[pk])
        self.refreshed_at = time.monotonic()

    def run_once(self) -> int:
        if time.monotonic() - self.refreshed_at >= option("LISTENER_REFRESH_INTERVAL", 2.0):
            self._guard_rowbell(self.refresh_sources)
        handled = 0
        for poller in list(self.pollers.values()):
            handled += self._guard_rowbell(poller.poll) or 0
        return handled

    def run(self, until_idle: bool = False, max_seconds: float | None = None) -> int:
        """Loop until stopped (or, for tests, until a pass finds nothing, or max_seconds pass)."""
        deadline = time.monotonic() + max_seconds if max_seconds else None
        total = 0
        while not self.stop.is_set():
            handled = self.run_once()
            total += handled
            if until_idle and handled == 0:
                break
            if deadline and time.monotonic() >= deadline:
                break
            if handled == 0:
                self._wait()
        for poller in self.pollers.values():
            poller.close()
        return total

    def _wait(self) -> None:
        now = time.monotonic()
        busy = any(now - p.last_event_at < option("LISTENER_BUSY_WINDOW", 2.0) for p in self.pollers.values())
        interval = (
            option("LISTENER_BUSY_POLL_INTERVAL", 0.01) if busy else option("LISTENER_POLL_INTERVAL", 0.25)
        )
        notifying = [p for p in self.pollers.values() if p.wants_notify()]
        if any(p.drain_notifications() for p in notifying):
            return
        if not notifying:
            self.stop.wait(interval)
            return
        deadline = now + interval
        sockets = [p.conn.fileno() for p in notifying]
        # In slices, so that a stop request is seen within half a second.
        while not self.stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(sockets, [], [], min(remaining, 0.5))
            if ready:
                for poller in notifying:
                    poller.drain_notifications()
                return

    def _guard_rowbell(self, func):
        """Rowbell's own database or Redis going away must not kill the loop: retry on the next pass.

        The customer-side transaction has been rolled back by then, so the claimed rows are still in the
        log; the next claim finds the runs that did commit (event keys) and starts the others.
        """
        try:
            return func()
        except RowbellDatabaseError as exc:
            log.error("Rowbell's database failed (%s); retrying", exc)
            rowbell_db.close()
            close_old_connections()
        except Exception:
            # e.g. Redis down while queueing the runs' first jobs (the sweeper re-queues them later).
            log.exception("Listener pass failed; retrying")
        self.stop.wait(1.0)
        return 0
