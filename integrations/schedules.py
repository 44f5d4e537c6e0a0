"""The schedules of published workflows: publishing a schedule trigger registers its rule and next firing,
unpublishing clears it. The job that starts the due ones is runs/schedules.py.
"""

from __future__ import annotations

from datetime import datetime

from integrations import clock
from integrations.models import Schedule
from integrations.schedule_rules import next_firing


def register_schedule(step, rule: dict, now: datetime | None = None) -> Schedule:
    """Create or update the workflow's schedule; an unchanged rule keeps its pending firing."""
    now = now or clock.now()
    workflow_id = step.version.workflow_id
    existing = Schedule.objects.filter(workflow_id=workflow_id).first()
    if existing is not None and existing.rule == rule:
        existing.step = step
        existing.save(update_fields=["step", "updated_at"])
        return existing
    schedule, _ = Schedule.objects.update_or_create(
        workflow_id=workflow_id,
        defaults={
            "tenant_id": step.tenant_id,
            "step": step,
            "rule": rule,
            "next_fire_at": next_firing(rule, now),
        },
    )
    return schedule


def clear_schedule(workflow_id: int) -> None:
    Schedule.objects.filter(workflow_id=workflow_id).delete()
