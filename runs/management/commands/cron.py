"""`manage.py cron config/cron.py`: django-rq's `rqcron`, plus a heartbeat operators can see, riding out
Redis outages (runs/engine/scheduling.py `EngineCron`) and waiting for PostgreSQL at start."""

from __future__ import annotations

import logging

from django_rq.management.commands.rqcron import Command as RQCronCommand

from runs.engine import outages
from runs.engine.liveness import Heartbeat
from runs.engine.scheduling import EngineCron

logger = logging.getLogger(__name__)


class Command(RQCronCommand):
    help = "Start RQ's cron scheduler (config/cron.py) and report a heartbeat."

    def handle(self, *args, config_path: str, logging_level: str = "INFO", **options) -> None:
        heartbeat = Heartbeat("cron").start()
        scheduler = EngineCron(logging_level=getattr(logging, logging_level))
        try:
            scheduler.load_config_from_file(config_path)
            self.stdout.write(f"Starting cron scheduler with {len(scheduler.get_jobs())} jobs")
            scheduler.start()  # until SIGTERM / SIGINT
        except outages.REDIS_ERRORS as error:
            logger.warning("Redis unreachable while stopping (%s)", error)
        finally:
            heartbeat.stop()
