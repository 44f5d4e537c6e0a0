"""`manage.py scheduler`: RQ's scheduler as its own process (queues jobs scheduled for a time: short
waits, retry delays, deferred batches).

Run it instead of `rqworker --with-scheduler`, which forks a scheduler child from every worker: a
SIGKILLed worker left that child running with parent pid 1. Here the scheduler is a process of its own
(one Procfile type; several are harmless, RQ's per-queue locks let one of them work at a time) and
writes a heartbeat like every other Rowbell process.
"""

from __future__ import annotations

import django_rq
from django.core.management.base import BaseCommand
from rq.scheduler import RQScheduler

from runs.engine.liveness import Heartbeat


class Command(BaseCommand):
    help = "Run RQ's scheduler for the given queues (default: default, low) in this process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("queues", nargs="*", default=["default", "low"])
        parser.add_argument("--interval", type=int, default=1, help="Whole seconds between checks.")

    def handle(self, *args, queues: list[str], interval: int, **options) -> None:
        connection = django_rq.get_connection(queues[0])
        scheduler = RQScheduler(queues, connection=connection, interval=interval)
        heartbeat = Heartbeat("scheduler").start()
        try:
            scheduler.acquire_locks()
            scheduler.work()  # until SIGTERM / SIGINT, which RQ's handlers turn into a clean stop
        finally:
            heartbeat.stop()
