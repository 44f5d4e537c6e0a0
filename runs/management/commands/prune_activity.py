"""`manage.py prune_activity`: delete finished runs (and settled event deliveries) past retention now.

The cron does this hourly when ACTIVITY_RETENTION_DAYS is set; this command runs it at once, or with
`--days` for a one-off clean-up, and `--dry-run` only counts. See runs/retention.py for what is kept.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from runs.events.delivery import prune_finished_deliveries
from runs.retention import count_expired, prune_runs, retention_cutoff


class Command(BaseCommand):
    help = "Delete finished runs older than ACTIVITY_RETENTION_DAYS (or --days), with their executions and messages."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Override ACTIVITY_RETENTION_DAYS.")
        parser.add_argument("--dry-run", action="store_true", help="Count the expired runs, delete nothing.")

    def handle(self, *args, days: int | None = None, dry_run: bool = False, **options):
        cutoff = retention_cutoff(days=days)
        if cutoff is None:
            raise CommandError(
                "Retention is off (ACTIVITY_RETENTION_DAYS=0): set it, or pass --days N to delete runs that "
                "finished more than N days ago."
            )
        if dry_run:
            self.stdout.write(
                f"{count_expired(cutoff)} runs finished before {cutoff:%Y-%m-%d %H:%M} would go."
            )
            return
        report = prune_runs(cutoff, budget=float("inf"))
        events = prune_finished_deliveries(cutoff)
        self.stdout.write(
            f"Deleted {report.runs} runs finished before {cutoff:%Y-%m-%d %H:%M}, with {report.executions} "
            f"executions and {report.deliveries} messages, and {events} event deliveries."
        )
