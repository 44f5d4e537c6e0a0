"""The System page: what `/metrics` knows, in words, for the people who run Rowbell.

Staff only (Django's `is_staff`, as for the admin and the RQ dashboard): processes, hosts, queues and
every tenant's data sources are the whole installation's, not one tenant's, so a tenant's admin on a
shared installation must not see them. Anyone else gets a 404, like /metrics.

It reads the same sources as config/metrics.py (the heartbeat rows, RQ's registries, the listener's lag in
Redis, the partial index of due executions), under the same statement timeout; a part that cannot be
read (Redis away) says so in its place instead of failing the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from rq import Queue

from config.metrics import OLDEST_DUE_SQL
from integrations import clock
from integrations.models import DataSource
from runs.engine import enqueue
from runs.engine import metrics as engine_metrics
from runs.models import ProcessHeartbeat

logger = logging.getLogger(__name__)

QUEUES = ("default", "low")
# What to run when no process of a kind reports (the Procfile's commands).
START_COMMANDS = {
    "worker": "manage.py rqworker default low --worker-class runs.worker.EngineWorker",
    "scheduler": "manage.py scheduler default low",
    "cron": "manage.py cron config/cron.py",
    "listener": "manage.py listen",
}
WHAT_IT_DOES = {
    "worker": "executes steps",
    "scheduler": "queues short waits and retries when due",
    "cron": "runs the recovery sweeper and due schedules",
    "listener": "turns database rows into runs",
    "sweeper": "re-queues due and orphaned work",
}
SHOWN_DATASOURCES = 200
# Processes that stopped cleanly stay listed this long, so a restart is visible.
STOPPED_SHOWN_SECONDS = 3600


def ago(seconds: float) -> str:
    """ "1 s ago", "4 min ago", "2 h ago", "3 days ago"."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def duration(seconds: float) -> str:
    return ago(seconds).removesuffix(" ago")


@dataclass
class Process:
    kind: str
    name: str
    host: str
    pid: int
    age: float
    stopped_age: float | None

    @property
    def state(self) -> str:
        if self.stopped_age is not None:
            return "stopped"
        return "alive" if self.age <= settings.WORKER_LEASE_SECONDS else "gone"

    @property
    def sentence(self) -> str:
        who = f"{self.kind} {self.name} on {self.host or 'an unknown host'} (pid {self.pid})"
        if self.state == "stopped":
            return f"{who}: stopped cleanly {ago(self.stopped_age or 0)}"
        if self.state == "gone":
            return f"{who}: no heartbeat for {duration(self.age)}; presumed gone"
        return f"{who}: heartbeat {ago(self.age)}"


@dataclass
class Source:
    source: DataSource
    seen_age: float | None
    lag: float | None

    @property
    def sentence(self) -> str:
        state = self.source.get_listener_status_display()
        polled = f"last polled {ago(self.seen_age)}" if self.seen_age is not None else "never polled yet"
        if self.lag is None:
            lag = "no recent lag measured"
        elif self.lag < 0.001:
            lag = "no event waiting"
        elif self.lag < 90:
            lag = f"the oldest waiting event is {self.lag:.1f} s old"
        else:
            lag = f"the oldest waiting event is {duration(self.lag)} old"
        return f"{state}; {polled}; {lag}"


@dataclass
class Snapshot:
    processes: list[Process] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    queues: list[dict] = field(default_factory=list)
    queue_error: str = ""
    oldest_due: float | None = None
    database_error: str = ""
    sources: list[Source] = field(default_factory=list)
    idle_sources: int = 0
    lag_error: str = ""
    reclaims: dict[str, int] = field(default_factory=dict)


def read_database(snapshot: Snapshot, now: datetime) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = %s", [int(settings.METRICS_QUERY_TIMEOUT_MS)])
            cur.execute(OLDEST_DUE_SQL)
            snapshot.oldest_due = float(cur.fetchone()[0])
            beats = list(ProcessHeartbeat.objects.order_by("kind", "name"))
            listened = DataSource.objects.exclude(listener_status=DataSource.ListenerStatus.IDLE)
            sources = list(
                listened.select_related("tenant").order_by("tenant__name", "name")[:SHOWN_DATASOURCES]
            )
            snapshot.idle_sources = DataSource.objects.filter(
                listener_status=DataSource.ListenerStatus.IDLE
            ).count()
    except Exception as exc:  # a slow or unreachable database: say so where the numbers would be
        logger.warning("System page: the database part failed", exc_info=True)
        snapshot.database_error = f"Could not read PostgreSQL: {exc}"
        return
    for beat in beats:
        stopped = (now - beat.stopped_at).total_seconds() if beat.stopped_at else None
        if stopped is not None and stopped > STOPPED_SHOWN_SECONDS:
            continue
        age = (now - beat.beat_at).total_seconds()
        snapshot.processes.append(Process(beat.kind, beat.name, beat.host, beat.pid, age, stopped))
    alive = {p.kind for p in snapshot.processes if p.state == "alive"}
    snapshot.missing = [
        {"kind": kind, "command": command, "does": WHAT_IT_DOES[kind]}
        for kind, command in START_COMMANDS.items()
        if kind not in alive
    ]
    snapshot.sources = [
        Source(s, (now - s.listener_seen_at).total_seconds() if s.listener_seen_at else None, None)
        for s in sources
    ]


def read_redis(snapshot: Snapshot) -> None:
    try:
        redis = enqueue.redis_connection()
        for name in QUEUES:
            queue = Queue(name, connection=redis)
            snapshot.queues.append(
                {
                    "name": name,
                    "queued": queue.count,
                    "scheduled": queue.scheduled_job_registry.count,
                    "started": queue.started_job_registry.count,
                    "failed": queue.failed_job_registry.count,
                }
            )
        lags = engine_metrics.read_listener_lags()
        snapshot.reclaims = engine_metrics.read_reclaims()
    except Exception as exc:
        logger.warning("System page: the Redis part failed", exc_info=True)
        snapshot.queues = []
        snapshot.queue_error = f"Could not read Redis: {exc}"
        return
    for source in snapshot.sources:
        source.lag = lags.get(source.source.pk)


@never_cache
@login_required
def system(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise Http404("Not found")
    now = clock.now()
    snapshot = Snapshot()
    read_database(snapshot, now)
    read_redis(snapshot)
    context = {
        "snapshot": snapshot,
        "lease": settings.WORKER_LEASE_SECONDS,
        "oldest_due_words": None if snapshot.oldest_due is None else duration(snapshot.oldest_due),
    }
    return render(request, "system/system.html", context)
