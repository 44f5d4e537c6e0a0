"""The schedules of published workflows: publishing a schedule trigger registers its rule and next firing,
unpublishing clears it. The job that starts the due ones is runs/schedules.py.

The step kinds sit below workflows.models (which imports their registry), so the model is looked up by
name through Django's app registry when a schedule is written, not imported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.apps import apps

from integrations import clock
from integrations.schedule_rules import next_firing


def _schedules() -> Any:
    return apps.get_model("workflows", "Schedule").objects


def register_schedule(step, rule: dict, now: datetime | None = None) -> Any:
    """Create or update the workflow's schedule; an unchanged rule keeps its pending firing."""
    now = now or clock.now()
    workflow_id = step.version.workflow_id
    existing = _schedules().filter(workflow_id=workflow_id).first()
    if existing is not None and existing.rule == rule:
        existing.step = step
        existing.save(update_fields=["step", "updated_at"])
        return existing
    schedule, _ = _schedules().update_or_create(
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
    _schedules().filter(workflow_id=workflow_id).delete()
