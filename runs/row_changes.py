"""What the listener does with a watched row's change (workflows/row_watches.py): wake the waits on that row
whose condition it meets, and cancel by key the runs whose workflow cancels from the row's state.

Waking (workflows/steps/row_wait.py): the open `RowWait`s on the changed rows are found by (watch, key)
through a partial index; each condition is evaluated on the captured row (the row right after that change,
so no re-read and no polling); a met condition or a delete decides the wait (`UPDATE … WHERE outcome =
''`: the timeout may have decided first, then nothing happens) and makes its execution due now, in the
same transaction as the log rows' claim. A batch job is queued after the commit.

An execution that is `running` when its wait is decided (its first check, reading the row just as it
changed) re-reads the outcome before it waits again; the instant between that read and its settle is
covered by `rewake`: the listener keeps those execution ids and makes them due on its next passes.

Cancelling: a published database trigger on the table whose `cancel_when_*` settings match the change
(the column became the value, or the row was deleted) cancels its workflow's runs with the key its
`cancel_key` template gives for that row (`CancelTombstone` with source `row`).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from integrations import clock
from integrations.templating import TemplateError
from runs.engine.cancel_keys import BadCancelKey, cancel_by_key, render_cancel_key
from runs.engine.enqueue import enqueue_batch
from runs.models import CancelTombstone
from workflows.database_triggers import published_triggers
from workflows.models import RowWait, RowWatch
from workflows.steps.database_trigger import cancels_on
from workflows.steps.row_wait import DELETED, MET, condition_holds

log = logging.getLogger(__name__)

Change = tuple[str, dict[str, Any], dict[str, Any] | None]  # (op, new_row, old_row) as the log holds them

DECIDE_SQL = """
UPDATE workflows_rowwait w SET outcome = v.outcome, row = v.row::jsonb, decided_at = %s
FROM (VALUES {values}) AS v(id, outcome, row)
WHERE w.id = v.id AND w.outcome = ''
RETURNING w.execution_id
"""
WAKE_SQL = """
UPDATE runs_stepexecution SET next_attempt_at = %(now)s
WHERE id = ANY(%(ids)s) AND status = 'pending' AND next_attempt_at > %(now)s
RETURNING id, run_id, step_id, attempts
"""
RUNNING_SQL = "SELECT id FROM runs_stepexecution WHERE id = ANY(%s) AND status = 'running'"


def handle(datasource_id: int, rows: Iterable[tuple]) -> tuple[list[int], list[int]]:
    """Handle claimed log rows of watches (id, trigger id, op, new_row, old_row), in one transaction.

    Returns (log ids that may be deleted, execution ids decided while running: see `rewake`)."""
    watches = {watch.trigger_id: watch for watch in RowWatch.objects.filter(datasource_id=datasource_id)}
    changes: dict[int, list[Change]] = defaultdict(list)
    done = []
    for event_id, trigger_id, op, new_row, old_row in rows:
        done.append(event_id)  # a watch removed since: nobody listens to its rows any more
        if trigger_id in watches:
            changes[trigger_id].append((op, new_row, old_row))
    now = clock.now()
    woken: list[tuple] = []
    running: list[int] = []
    with transaction.atomic():
        for trigger_id, watch_changes in changes.items():
            decided = decide_waits(watches[trigger_id], watch_changes, now)
            rows_woken, still_running = wake(decided, now)
            woken += rows_woken
            running += still_running
            cancel_from_row(watches[trigger_id], watch_changes)
        transaction.on_commit(lambda: queue_batches(woken))
    return done, running


def decide_waits(watch: RowWatch, changes: list[Change], now: datetime) -> list[int]:
    """Decide the open waits these changes meet; the ids of their executions."""
    column = watch.key_column
    keys = {_key(new_row, column) for _op, new_row, _old in changes}
    by_key: dict[str, list[RowWait]] = defaultdict(list)
    for wait in RowWait.objects.filter(watch=watch, outcome="", row_key__in=keys).only(
        "pk", "row_key", "condition"
    ):
        by_key[wait.row_key].append(wait)
    if not by_key:
        return []
    verdicts: dict[int, tuple[str, dict[str, Any] | None]] = {}
    for op, new_row, _old in changes:  # in the order they were committed: the first that meets decides
        for wait in by_key.get(_key(new_row, column), []):
            if wait.pk in verdicts:
                continue
            if op == "DELETE":
                verdicts[wait.pk] = (DELETED, None)
            elif _met(wait, new_row):
                verdicts[wait.pk] = (MET, new_row)
    if not verdicts:
        return []
    values = ", ".join(["(%s::bigint, %s, %s)"] * len(verdicts))
    params: list[Any] = [now]
    for pk, (outcome, row) in verdicts.items():
        params += [pk, outcome, json.dumps(row) if row is not None else None]
    with connection.cursor() as cur:
        cur.execute(DECIDE_SQL.format(values=values), params)
        return [row[0] for row in cur.fetchall()]


def wake(execution_ids: list[int], now: datetime) -> tuple[list[tuple], list[int]]:
    """Make these executions due now: (the rows made due, the ids still running)."""
    if not execution_ids:
        return [], []
    with connection.cursor() as cur:
        cur.execute(WAKE_SQL, {"now": now, "ids": execution_ids})
        woken = cur.fetchall()
        cur.execute(RUNNING_SQL, [execution_ids])
        running = [row[0] for row in cur.fetchall()]
    return woken, running


def rewake(execution_ids: list[int]) -> list[int]:
    """Wake again the executions that were running when their wait was decided; those still running."""
    woken, running = wake(execution_ids, clock.now())
    queue_batches(woken)
    return running


def queue_batches(woken: list[tuple]) -> None:
    """One batch job per (run, step) with executions made due."""
    first: dict[tuple[int, int], tuple[int, int]] = {}
    for execution_id, run_id, step_id, attempts in woken:
        first.setdefault((run_id, step_id), (execution_id, attempts))
    for (run_id, step_id), (execution_id, attempts) in first.items():
        enqueue_batch(run_id, step_id, execution_id=execution_id, attempt=attempts + 1)


def cancel_from_row(watch: RowWatch, changes: list[Change]) -> int:
    """Cancel by key the runs of the workflows whose trigger cancels on these changes; how many cancels."""
    rules = [
        step
        for step in published_triggers(watch.datasource_id)
        if (step.config.get("schema") or "public", step.config.get("table")) == (watch.schema, watch.table)
        and step.config.get("cancel_key")
        and (step.config.get("cancel_when_column") or step.config.get("cancel_when_deleted"))
    ]
    cancels = 0
    for step in rules:
        for op, new_row, old_row in changes:
            if not cancels_on(step.config, op, new_row, old_row):
                continue
            key = render_cancel_key(step.config["cancel_key"], _item(op, new_row, old_row))
            if not key:
                continue
            try:
                cancel_by_key(
                    step.version.workflow,
                    key,
                    source=CancelTombstone.Source.ROW,
                    by=_why(watch, op, step),
                )
            except BadCancelKey:
                continue
            cancels += 1
    return cancels


def _why(watch: RowWatch, op: str, step) -> str:
    """Who cancelled, in the run page's words: "a change of orders (status → cancelled)"."""
    if op == "DELETE":
        return f"a delete in {watch.table}"
    column, value = step.config["cancel_when_column"], step.config.get("cancel_when_value", "")
    return f"a change of {watch.table} ({column} → {value})"


def _item(op: str, new_row: dict[str, Any], old_row: dict[str, Any] | None) -> dict[str, Any]:
    from runs.listener import event_item

    return event_item(op, new_row, old_row)


def _met(wait: RowWait, row: dict[str, Any]) -> bool:
    try:
        return condition_holds(wait.condition, row)
    except TemplateError:
        return False  # the execution reports the error when it runs (at its timeout at the latest)


def _key(row: dict[str, Any], column: str) -> str:
    return str(row.get(column)) if isinstance(row, dict) else ""
