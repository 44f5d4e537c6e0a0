"""Which processes are alive: heartbeats in PostgreSQL, and the lease a worker holds on what it claimed.

Every Procfile process (worker, scheduler, cron, listener) runs a `Heartbeat`: a daemon thread that
upserts its `ProcessHeartbeat` row every HEARTBEAT_INTERVAL seconds. A worker's claims carry its name
(`StepExecution.claimed_by`); once its row is older than WORKER_LEASE_SECONDS the worker is gone
(SIGKILL, OOM, a lost machine, a frozen process) and the sweeper returns its `running` executions to
`pending` within a sweep, instead of waiting for ENGINE_EXECUTION_TIMEOUT (which stays only as the
backstop for a worker that beats but whose job is stuck).

A worker that was frozen past its lease (SIGSTOP, a paused VM) and wakes up must not go on with a
batch the sweeper may have handed to another worker: `lease_lost()` is checked before each item and
aborts the batch (runs/engine/outcome.py `guarded`). That check alone cannot be enough (the worker may
beat again before it looks, or freeze right after): every settle and Delivery write is also fenced, in
its own statement, by the claim it was made under, `claimed_by` = this worker and `attempts` = the
attempt it claimed (runs/engine/ledger.py, executor.py `settle`), so a late write changes 0 rows.

Why PostgreSQL and not Redis keys with a TTL: a Redis FLUSHALL would then look like every worker dying,
and their live batches would be reclaimed under them. PostgreSQL is already the source of truth.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import connection

from integrations import clock
from runs.engine import outages

logger = logging.getLogger(__name__)

# The name this process's claims carry; empty outside a worker that beats (in-process test workers).
worker_name = ""
_last_beat = 0.0  # time.monotonic() of this process's last successful beat

UPSERT_SQL = """
INSERT INTO runs_processheartbeat (name, kind, host, pid, started_at, beat_at, stopped_at)
VALUES (%(name)s, %(kind)s, %(host)s, %(pid)s, %(now)s, %(now)s, NULL)
ON CONFLICT (name) DO UPDATE SET beat_at = EXCLUDED.beat_at, pid = EXCLUDED.pid, stopped_at = NULL
"""


def lease_lost() -> bool:
    """True in a beating worker whose last beat is older than its lease (it was frozen, or the
    database could not be reached): the sweeper may already have given its claims to another worker."""
    if not worker_name:
        return False
    return bool(time.monotonic() - _last_beat > settings.WORKER_LEASE_SECONDS)


class Heartbeat:
    """A daemon thread that keeps this process's `ProcessHeartbeat` row fresh."""

    def __init__(self, kind: str, name: str | None = None):
        self.kind = kind
        self.name = (name or f"{kind}-{socket.gethostname()}-{os.getpid()}")[:100]
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, *, claims: bool = False) -> Heartbeat:
        """Beat once now (so a worker holds a lease before its first claim), then in a thread. A process
        started while PostgreSQL is away waits here for it, instead of exiting."""
        global worker_name
        outages.retry_database(self.beat)
        if claims:
            worker_name = self.name
        self.thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.kind}", daemon=True)
        self.thread.start()
        return self

    def beat(self) -> None:
        global _last_beat
        started = time.monotonic()
        with connection.cursor() as cur:
            cur.execute(
                UPSERT_SQL,
                {
                    "name": self.name,
                    "kind": self.kind,
                    "host": socket.gethostname()[:255],
                    "pid": os.getpid(),
                    "now": clock.now(),
                },
            )
        _last_beat = started

    def _loop(self) -> None:
        # Django's connections are per thread: this thread has its own, closed when it ends.
        try:
            while not self.stopping.wait(settings.HEARTBEAT_INTERVAL):
                try:
                    self.beat()
                    outages.DATABASE.up()
                except Exception as error:
                    if outages.is_database_outage(error):
                        outages.DATABASE.down(error)  # logged once per outage, not once a beat
                    else:
                        logger.warning("Heartbeat of %s failed; retrying", self.name, exc_info=True)
                    connection.close()
        finally:
            connection.close()

    def stop(self) -> None:
        """A clean stop: the row says so, and the sweeper reclaims anything left at once."""
        global worker_name
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        try:
            with connection.cursor() as cur:
                cur.execute(
                    "UPDATE runs_processheartbeat SET stopped_at = %s WHERE name = %s",
                    [clock.now(), self.name],
                )
        except Exception:
            logger.warning("Could not record that %s stopped", self.name, exc_info=True)
        if worker_name == self.name:
            worker_name = ""
