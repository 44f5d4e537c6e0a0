"""Housekeeping of the pacing counters: throttle slots and frequency-budget counts that no window can
read any more. Both tables get one row per counted message, so without this they grow for ever.

- A throttle slot counts only inside its window (`window_end`); a day after that it is deleted. A slot
  from before `window_end` existed is deleted once even the longest window (400 days) surely ended.
- A budget count counts for `frequency_budget_hours` (the tenant's, else the setting); a day after that
  it is deleted (an operator who lengthens the window within the day loses nothing).

Deletes go in chunks (PRUNE_CHUNK rows a statement) within a time budget, so the hourly job never
holds long locks; what is left goes next hour. Called by runs/jobs.py `prune`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection

from tenants.limits import overrides
from workflows.steps.throttle import MAX_WINDOW_SECONDS

PRUNE_CHUNK = 10_000
MARGIN = timedelta(days=1)

SLOTS = (
    "DELETE FROM workflows_throttleslot WHERE id IN (SELECT id FROM workflows_throttleslot"
    " WHERE window_end < %s OR (window_end IS NULL AND window_start < %s) LIMIT %s)"
)
COUNTS = (
    "DELETE FROM workflows_budgetcount WHERE id IN (SELECT id FROM workflows_budgetcount"
    " WHERE counted_at < %s AND {tenants} LIMIT %s)"
)


def prune_pacing_counters(now: datetime, budget: float = 20.0) -> dict[str, int]:
    """Delete dead throttle slots and budget counts; how many of each."""
    deadline = time.monotonic() + budget
    slots = _chunked(SLOTS, [now - MARGIN, now - timedelta(seconds=MAX_WINDOW_SECONDS) - MARGIN], deadline)
    counts = 0
    own = overrides("frequency_budget_hours")
    default_cutoff = now - timedelta(hours=max(1, settings.FREQUENCY_BUDGET_HOURS)) - MARGIN
    if own:
        counts += _chunked(
            COUNTS.format(tenants="NOT (tenant_id = ANY(%s))"), [default_cutoff, list(own)], deadline
        )
    else:
        counts += _chunked(COUNTS.format(tenants="true"), [default_cutoff], deadline)
    by_hours: dict[int, list[int]] = {}
    for tenant_id, hours in own.items():
        by_hours.setdefault(int(hours), []).append(tenant_id)
    for hours, tenants in sorted(by_hours.items()):
        cutoff = now - timedelta(hours=max(1, hours)) - MARGIN
        counts += _chunked(COUNTS.format(tenants="tenant_id = ANY(%s)"), [cutoff, tenants], deadline)
    return {"throttle_slots": slots, "budget_counts": counts}


def _chunked(sql: str, params: list[Any], deadline: float) -> int:
    deleted = 0
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, PRUNE_CHUNK])
            deleted += cursor.rowcount
        if cursor.rowcount < PRUNE_CHUNK:
            break
    return deleted
