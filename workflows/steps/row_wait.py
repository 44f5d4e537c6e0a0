"""The wait's "until the row matches" mode: hold the item until a row of a watched table satisfies a
condition, at most a timeout, then send it down one of two paths, `met` or `timed_out`.

Which row: `key` (a template over the item, default `{{ item.id }}`) names it by the table's primary key.
The condition is an expression over `row`, the row as PostgreSQL's `to_jsonb` writes it (the same shape
whether the listener captured it or the execution read it), e.g. `row.status == 'paid'`.

How it is woken, without polling: publishing installs a capture of the table (workflows/row_watches.py).
The execution's first run registers a `RowWait` (the row's key, the condition, the timeout) and only then
reads the row: a condition already true ends the wait at once, a deleted row ends the path (filtered,
"row deleted"), anything else waits until the timeout. A change committed after that read reaches the
listener, which finds the open waits on that row (runs/row_changes.py), evaluates their conditions on the
captured row and, for those met (or deleted), decides and makes the execution due now.

Exactly one outcome: `RowWait.outcome` is written once, by `UPDATE … WHERE outcome = ''`, whoever comes
first (the listener with `met`/`deleted`, the execution with what it read, or `timed_out` at the
timeout); the other reads what was decided. A row that matches when the execution runs wins over a
timeout that passed meanwhile: the reminder is not sent to someone who already did the thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from integrations.failures import Failure
from integrations.query import QueryError, fetch_rows
from integrations.templating import TemplateError, evaluate, render
from workflows.steps.context import StepContext
from workflows.steps.results import Deferred, Filtered, Routed
from workflows.steps.row_reread import quoted

if TYPE_CHECKING:
    from workflows.models import RowWait, RowWatch

# RowWait.Outcome's values (workflows.models imports the step registry, so its models are imported late).
MET, TIMED_OUT, DELETED = "met", "timed_out", "deleted"
PATHS = [(MET, "Row matched"), (TIMED_OUT, "Timed out")]


def _waits() -> type[RowWait]:
    from workflows.models import RowWait

    return RowWait


def split_table(text: str) -> tuple[str, str]:
    """`public.orders` or `orders` as (schema, table)."""
    schema, _dot, table = (text or "").strip().rpartition(".")
    return (schema or "public"), table


def condition_holds(condition: str, row: dict[str, Any]) -> bool:
    """The condition over `row`; TemplateError when it cannot be evaluated on this row."""
    return bool(evaluate(condition, {"row": row}))


def decide(wait_id: int, outcome: str, row: dict[str, Any] | None, now: datetime) -> None:
    """Write the outcome unless one was written already (the caller then reads the one that stands)."""
    _waits().objects.filter(pk=wait_id, outcome="").update(outcome=outcome, row=row, decided_at=now)


def wait_for_row(
    ctx: StepContext, settings: Any, item: dict[str, Any], skipping: bool
) -> Filtered | Routed | Deferred:
    """The wait's execution in "row" mode (see the module's docstring)."""
    if ctx.execution is None:
        raise Failure("Wait: waiting for a row needs an execution to wake.", permanent=True)
    execution_id = ctx.execution.pk
    wait = _waits().objects.filter(execution_id=execution_id).select_related("watch").first()
    if wait is None:
        wait = _register(ctx, settings, item, execution_id)
    if wait.outcome == "":
        row = read_row(ctx, wait.watch, wait.row_key)
        if row is None:
            decide(wait.pk, DELETED, None, ctx.now)
        elif _holds(wait.condition, row):
            decide(wait.pk, MET, row, ctx.now)
        elif skipping or ctx.now >= wait.timeout_at:
            decide(wait.pk, TIMED_OUT, row, ctx.now)
        # Otherwise not yet: wait until the timeout, unless the listener decided while the row was read.
        wait.refresh_from_db(fields=["outcome", "row"])
        if wait.outcome == "":
            return _waiting(wait)
    return _result(wait, item)


def _register(ctx: StepContext, settings: Any, item: dict[str, Any], execution_id: int) -> RowWait:
    from workflows.models import RowWatch

    schema, table = split_table(settings.table)
    watch = RowWatch.objects.filter(
        tenant_id=ctx.run.tenant_id, datasource_id=settings.datasource, schema=schema, table=table
    ).first()
    if watch is None:
        raise Failure(
            f"Wait: {schema}.{table} is not watched yet, so no change of its rows can end the wait: "
            "publish the workflow (publishing installs the capture).",
            permanent=True,
        )
    try:
        key = render(settings.key, {"item": item, "run": ctx.run_context}).strip()
    except TemplateError as exc:
        raise Failure(f"Wait: the row's key: {exc}", permanent=True) from exc
    if not key or len(key) > 500:
        raise Failure(
            f"Wait: the row's key {settings.key!r} gave {key!r} for this item, which names no row.",
            permanent=True,
        )
    wait, _created = _waits().objects.get_or_create(
        execution_id=execution_id,
        defaults={
            "tenant_id": ctx.run.tenant_id,
            "watch": watch,
            "row_key": key,
            "condition": settings.condition,
            "timeout_at": ctx.now + settings.timeout(),
            "created_at": ctx.now,
        },
    )
    wait.watch = watch
    return wait


def read_row(ctx: StepContext, watch: RowWatch, key: str) -> dict[str, Any] | None:
    """The row as it is now, as `to_jsonb` writes it (the listener's shape); None when it is gone."""
    sql = (
        f"SELECT to_jsonb(t) AS row FROM {quoted(watch.schema)}.{quoted(watch.table)} t "
        f"WHERE {quoted(watch.key_column)} = %s LIMIT 1"  # an untyped parameter: the key's index is used
    )
    try:
        rows = fetch_rows(ctx.query_connection(watch.datasource_id), sql, [key], max_rows=1)
    except QueryError as exc:
        raise Failure(f"Wait: reading the row: {exc.message}", permanent=exc.permanent) from exc
    return rows[0]["row"] if rows else None


def _holds(condition: str, row: dict[str, Any]) -> bool:
    try:
        return condition_holds(condition, row)
    except TemplateError as exc:
        raise Failure(f"Wait: the condition on the row: {exc}", permanent=True) from exc


def _waiting(wait: RowWait) -> Deferred:
    return Deferred(
        wait.timeout_at,
        {"waiting_for": wait.condition, "row": wait.row_key, "until": wait.timeout_at.isoformat()},
    )


def _result(wait: RowWait, item: dict[str, Any]) -> Filtered | Routed:
    decided = {"row": wait.row_key, "condition": wait.condition}
    if wait.outcome == DELETED:
        return Filtered({"filtered": "row deleted", **decided})
    if wait.outcome == MET:
        return Routed(MET, [{**item, "_row": wait.row}], {"path": "Row matched", **decided})
    return Routed(TIMED_OUT, [item], {"path": "Timed out", **decided})
