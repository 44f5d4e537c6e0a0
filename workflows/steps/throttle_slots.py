"""A throttle's counters: slot rows in PostgreSQL (workflows.ThrottleSlot), taken with INSERT … ON CONFLICT.

Taking a slot is one statement: the lowest free slot number of (step, key, window) is inserted, and the
unique constraints decide races (two workers picking the same number: one row wins, the other tries the
next number) and retries (the execution already holds a slot: it keeps that one, counting nothing twice).
Raw SQL by table name, because workflows.models imports the step registry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

TABLE = "workflows_throttleslot"

TAKE = f"""
INSERT INTO {TABLE} (tenant_id, step_key, key, window_start, window_end, slot, execution_id, taken_at)
SELECT %(tenant)s, %(step)s, %(key)s, %(window)s, %(end)s, s, %(execution)s, %(now)s
FROM generate_series(1, %(limit)s) AS s
WHERE NOT EXISTS (
    SELECT 1 FROM {TABLE} t WHERE t.tenant_id = %(tenant)s AND t.step_key = %(step)s AND t.key = %(key)s
    AND t.window_start = %(window)s AND t.slot = s
)
ORDER BY s LIMIT 1
ON CONFLICT DO NOTHING
RETURNING slot
"""
HELD = f"SELECT slot FROM {TABLE} WHERE execution_id = %s"
USED = (
    f"SELECT count(*) FROM {TABLE} WHERE tenant_id = %s AND step_key = %s AND key = %s AND window_start = %s"
    " AND slot <= %s"
)


@dataclass(frozen=True)
class Window:
    tenant_id: int
    step_key: uuid.UUID
    key: str
    start: datetime
    limit: int
    end: datetime | None = None


def held_slot(execution_id: int) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(HELD, [execution_id])
        row = cursor.fetchone()
    return row[0] if row else None


def take(window: Window, execution_id: int, now: datetime) -> int | None:
    """The slot this execution holds in the window (taking the lowest free one), or None when all are taken."""
    held = held_slot(execution_id)
    if held is not None:
        return held
    params: dict[str, Any] = {
        "tenant": window.tenant_id,
        "step": window.step_key,
        "key": window.key,
        "window": window.start,
        "end": window.end,
        "execution": execution_id,
        "now": now,
        "limit": window.limit,
    }
    # Each lost race means another execution took a slot, so at most `limit` tries can lose.
    for _ in range(window.limit + 1):
        with connection.cursor() as cursor:
            cursor.execute(TAKE, params)
            row = cursor.fetchone()
        if row:
            return int(row[0])
        held = held_slot(execution_id)  # a conflict on execution_id: a concurrent retry of ourselves
        if held is not None:
            return held
        if used(window) >= window.limit:
            return None
    return None


def used(window: Window) -> int:
    with connection.cursor() as cursor:
        cursor.execute(USED, [window.tenant_id, window.step_key, window.key, window.start, window.limit])
        return int(cursor.fetchone()[0])
