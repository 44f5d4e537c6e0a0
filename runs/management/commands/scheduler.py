"""`manage.py scheduler`: RQ's scheduler as its own process (queues jobs scheduled for a time: short
waits, retry delays, deferred batches).

Run it instead of `rqworker --with-scheduler`, which forks a scheduler child from every worker: a
SIGKILLed worker left that child running with parent pid 1. Here the scheduler is a process of its own
(one Procfile type; several are harmless, RQ's per-queue locks let one of them work at a time) and
writes a heartbeat like every other Rowbell process.

Two things RQ's scheduler does not do on its own (runs/engine/scheduling.py):
- ride out Redis outages: its client retries forever instead of raising out of `work()`;
- take over promptly from a scheduler that died holding the locks (SIGKILL, a lost machine). RQ's lock
  lives `interval + 60` s and a scheduler without it tries again only every 120 s, so a killed scheduler
  delayed every scheduled job by about two minutes. Here the lock holder is this process's heartbeat
  name, and a lock whose holder's heartbeat is older than WORKER_LEASE_SECONDS (or stopped) is taken over.
"""

from __future__ import annotations

import django_rq
from django.core.management.base import BaseCommand

from runs.engine.liveness import Heartbeat
from runs.engine.scheduling import EngineScheduler


class Command(BaseCommand):
    help = "Run RQ's scheduler for the given queues (default: default, low) in this process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("queues", nargs="*", default=["default", "low"])
        parser.add_argument("--interval", type=int, default=1, help="Whole seconds between checks.")

    def handle(self, *args, queues: list[str], interval: int, **options) -> None:
        heartbeat = Heartbeat("scheduler").start()  # waits for PostgreSQL if it is away
        connection = django_rq.get_connection(queues[0])
        scheduler = EngineScheduler(queues, connection=connection, interval=interval, name=heartbeat.name)
        try:
            scheduler.work()  # until SIGTERM / SIGINT, which RQ's handlers turn into a clean stop
        finally:
            heartbeat.stop()
