"""RQ's scheduler (`manage.py scheduler`) and cron (`manage.py cron`) made to ride out Redis outages,
and the scheduler to take over at once from a scheduler that died holding the locks.

Why the heartbeat table and not a shorter lock TTL: RQ writes its TTL (`interval + 60`) inside its lock
methods, so a shorter one means rewriting them; and a lock that lapses on a TTL also lapses under a live
scheduler that was only slow (a long Redis failover). The heartbeat table is already what says whether
a Rowbell process is alive, for the sweeper too. This scheduler's lock value is its heartbeat name, so
another scheduler can look the holder up; a holder with no heartbeat row (a scheduler this code did not
start, e.g. `rqworker --with-scheduler`) keeps RQ's own TTL. Whatever holds a due job, the sweeper is
the backstop (it moves a due job out of the scheduled registry, runs/engine/enqueue.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

import django_rq
from django.conf import settings
from django.db import DatabaseError, connection
from django_rq.cron import DjangoCronScheduler
from redis import Redis
from rq.scheduler import RQScheduler
from rq.scripts import release_lock

from integrations import clock
from runs.engine import outages

logger = logging.getLogger(__name__)


class EngineScheduler(RQScheduler):
    """RQ's scheduler with a Redis client that waits out outages, and prompt lock takeover."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redis_retry = outages.RideOutRetry()

    @property
    def connection(self) -> Redis:
        client: Redis | None = self._connection
        if client is None:
            client = super().connection
            client.set_retry(self.redis_retry)
            self._connection = client  # type: ignore[assignment]  # RQ declares it None until connected
        return client

    @property
    def should_reacquire_locks(self) -> bool:
        """Try for missing locks every HEARTBEAT_INTERVAL, not every 120 s (RQ's fallback period)."""
        if self._queue_names == self.acquired_locks:
            return False
        if not self.lock_acquisition_time:
            return True
        return (datetime.now() - self.lock_acquisition_time).total_seconds() >= settings.HEARTBEAT_INTERVAL

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        for name in sorted(self._queue_names - self._acquired_locks):
            self.take_over_from_dead_holder(name)
        locks: set[str] = super().acquire_locks(auto_start)
        return locks

    def take_over_from_dead_holder(self, queue_name: str) -> None:
        key = self.get_locking_key(queue_name)
        holder = self.connection.get(key)
        if holder is None:
            return
        holder = holder.decode() if isinstance(holder, bytes) else str(holder)
        if holder != self.name and holder_is_dead(holder) and release_lock(self.connection, key, holder):
            logger.warning(
                "Scheduler %s holding the lock of queue %s is gone; taking over", holder, queue_name
            )

    def request_stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        super().request_stop(signum, frame)
        self.redis_retry.stopping.set()  # a stop during an outage ends the waiting

    def work(self) -> None:
        try:
            super().work()
        except outages.REDIS_ERRORS as error:
            if not self._stop_requested:
                raise
            logger.warning("Redis unreachable while stopping (%s): the locks expire by themselves", error)

    def stop(self) -> None:
        self.redis_retry.stopping.set()
        super().stop()


def holder_is_dead(name: str) -> bool:
    """True when `name` is a Rowbell process whose heartbeat stopped or is older than the lease. Unknown
    names, and a database that does not answer, count as alive: RQ's lock TTL still ends those."""
    lease = clock.now() - timedelta(seconds=settings.WORKER_LEASE_SECONDS)
    try:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT stopped_at IS NOT NULL OR beat_at < %s FROM runs_processheartbeat WHERE name = %s",
                [lease, name],
            )
            row = cur.fetchone()
    except DatabaseError:
        connection.close()
        return False
    return bool(row and row[0])


class EngineCron(DjangoCronScheduler):
    """django-rq's cron scheduler (`manage.py cron`) on a Redis client that waits out outages: a cron job
    due during one is queued once Redis answers."""

    def __init__(self, logging_level: int = logging.INFO):
        self.redis_retry = outages.RideOutRetry()
        redis = django_rq.get_connection("default")
        redis.set_retry(self.redis_retry)
        super().__init__(connection=redis, logging_level=logging_level)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.redis_retry.stopping.set()  # a stop during an outage ends the waiting
        super()._request_stop(signum, frame)
