"""`manage.py prune_activity`: delete finished runs (and settled event deliveries) past retention now.

The cron does this hourly while any tenant's retention is on (its own, set by an operator in the admin, or
ACTIVITY_RETENTION_DAYS); this command runs it at once, or with `--days` for a one-off clean-up of every
tenant, and `--dry-run` only counts. See runs/retention.py for what is kept.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from runs.jobs import prune_by_plan
from runs.retention import EVERY_TENANT, RetentionGroup, count_expired, retention_cutoff, retention_plan


class Command(BaseCommand):
    help = "Delete finished runs older than each tenant's retention (or --days), with their executions and messages."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Every tenant, instead of its retention.")
        parser.add_argument("--dry-run", action="store_true", help="Count the expired runs, delete nothing.")

    def handle(self, *args, days: int | None = None, dry_run: bool = False, **options):
        if days is not None:
            cutoff = retention_cutoff(days=days)
            plan = [RetentionGroup(cutoff, EVERY_TENANT)] if cutoff is not None else []
        else:
            plan = retention_plan()
        if not plan:
            raise CommandError(
                "Retention is off (ACTIVITY_RETENTION_DAYS=0 and no tenant has its own): set it, or pass "
                "--days N to delete runs that finished more than N days ago."
            )
        if dry_run:
            for group in plan:
                self.stdout.write(
                    f"{count_expired(group.cutoff, group.tenants)} runs finished before "
                    f"{group.cutoff:%Y-%m-%d %H:%M} would go{_whose(group)}."
                )
            return
        report = prune_by_plan(plan, budget=float("inf"))
        cutoffs = ", ".join(f"{group.cutoff:%Y-%m-%d %H:%M}" for group in plan)
        self.stdout.write(
            f"Deleted {report['runs']} runs finished before {cutoffs}, with {report['executions']} "
            f"executions and {report['deliveries']} messages, and {report['event_deliveries']} event deliveries."
        )


def _whose(group: RetentionGroup) -> str:
    if group.tenants.only is not None:
        return f" (tenants {', '.join(map(str, group.tenants.only))}, their own retention)"
    if group.tenants.skip:
        return " (every other tenant)"
    return ""
