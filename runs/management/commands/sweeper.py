"""`manage.py sweeper`: the engine's recovery sweep in a loop (or `--once`). See runs/engine/sweeper.py.

An alternative to registering `runs.jobs.sweep` in config/cron.py; running both is harmless.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from runs.bulk import resume_stalled
from runs.engine import outages
from runs.engine.liveness import Heartbeat
from runs.engine.sweeper import sweep


class Command(BaseCommand):
    help = "Re-queue due or orphaned executions and reclaim those stuck in `running` (every few seconds)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Sweep once and exit.")
        parser.add_argument("--interval", type=float, default=None, help="Seconds between sweeps.")

    def handle(self, *args, once: bool = False, interval: float | None = None, **options):
        interval = interval or settings.SWEEPER_INTERVAL
        heartbeat = None if once else Heartbeat("sweeper").start()
        try:
            self.sweep_forever(once, interval)
        finally:
            if heartbeat is not None:
                heartbeat.stop()

    def sweep_forever(self, once: bool, interval: float) -> None:
        while True:
            close_old_connections()
            report = outages.retry_database(sweep)  # waits for PostgreSQL if it is away
            if report is None:
                return
            outages.retry_database(resume_stalled)  # bulk operations whose job was lost
            if once or any(report.as_dict().values()):
                self.stdout.write(" ".join(f"{k}={v}" for k, v in report.as_dict().items()))
            if once:
                return
            time.sleep(interval)
