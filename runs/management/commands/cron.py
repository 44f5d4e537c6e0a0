"""`manage.py cron config/cron.py`: django-rq's `rqcron`, plus a heartbeat operators can see."""

from __future__ import annotations

from django_rq.management.commands.rqcron import Command as RQCronCommand

from runs.engine.liveness import Heartbeat


class Command(RQCronCommand):
    help = "Start RQ's cron scheduler (config/cron.py) and report a heartbeat."

    def handle(self, *args, **options) -> None:
        heartbeat = Heartbeat("cron").start()
        try:
            super().handle(*args, **options)
        finally:
            heartbeat.stop()
