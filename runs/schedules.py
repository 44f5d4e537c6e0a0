"""The periodic job that starts the runs of due schedules (registered at publish: workflows/schedules.py).

`fire_due_schedules` runs every few seconds on RQ's cron (config/cron.py). For each schedule whose
`next_fire_at` has passed it starts ONE run, for the latest firing at or before now, and moves
`next_fire_at` past now. Missed-firing policy: after downtime, the firings that were missed are not
replayed one by one; only the most recent one runs, once. The event key is the scheduled instant, so
the same firing delivered twice (two cron processes, a retried job) never starts a second run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.db import transaction

from integrations import clock
from integrations.schedule_rules import next_firing, previous_firing
from runs.engine import start_run
from workflows.models import Schedule

log = logging.getLogger(__name__)
BATCH = 200


def event_key(instant: datetime) -> str:
    return "schedule:" + instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fire_due_schedules(now: datetime | None = None) -> int:
    """Start a run for every due schedule; returns how many runs were started (or found started)."""
    now = now or clock.now()
    fired = 0
    with transaction.atomic():
        # SKIP LOCKED: two cron processes split the due schedules instead of queueing behind each other.
        due = list(
            Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(next_fire_at__lte=now, workflow__published_version__isnull=False)
            .select_related("workflow")
            .order_by("next_fire_at")[:BATCH]
        )
        for schedule in due:
            try:
                with transaction.atomic():  # one broken schedule must not hold back the others
                    _fire(schedule, now)
                fired += 1
            except Exception:
                log.exception(
                    "Schedule of workflow %s could not fire; retrying on the next tick", schedule.workflow_id
                )
    if fired:
        log.info("Started %d scheduled run(s)", fired)
    return fired


def _fire(schedule: Schedule, now: datetime) -> None:
    # The latest firing at or before now: missed earlier ones are skipped, not replayed.
    instant = max(previous_firing(schedule.rule, now) or schedule.next_fire_at, schedule.next_fire_at)
    start_run(schedule.workflow, _item(schedule.rule, instant), event_key(instant))
    schedule.last_fired_at = instant
    schedule.next_fire_at = next_firing(schedule.rule, now)
    schedule.save(update_fields=["last_fired_at", "next_fire_at", "updated_at"])


def _item(rule: dict, instant: datetime) -> dict:
    return {
        "scheduled_at": instant.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "local_time": instant.astimezone(ZoneInfo(rule["timezone"])).isoformat(),
        "timezone": rule["timezone"],
    }
