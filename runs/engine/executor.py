"""Running one batch: claim due executions of a run's step, run them, write children, settle them.

The steps, in SQL terms (a batch of B executions costs a handful of statements, plus what the step
itself needs, e.g. two per email: the Delivery written before the send and marked after):
1. claim: one UPDATE from a MATERIALIZED CTE (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED), which moves
   due `pending` executions to `running` and counts the attempt; a job that claims nothing does nothing;
2. run each execution's step (sends go through runs/engine/sending.py and its Delivery protocol);
3. children: bulk inserts ignoring conflicts (runs/engine/spawn.py), written before the parent is
   marked done so that the run never looks finished in between;
4. settle: one UPDATE ... FROM (VALUES ...) marks every execution succeeded, failed, or pending again
   with its backoff in `next_attempt_at`, only where it is still `running` (a cancel wins);
5. queue the next batch of this step (the lane chains itself) and close the run if nothing is open;
6. a batch that produced few items (ENGINE_FOLLOW_MAX_ITEMS) runs its child steps next in the same job
   (`_follow`), so a small run costs one RQ job rather than one per step.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from runs.engine import clock, fairness
from runs.engine.completion import close_run_if_done
from runs.engine.context import BatchResources, StepContext
from runs.engine.enqueue import schedule_next
from runs.engine.retry import backoff, max_attempts
from runs.engine.spawn import Spawner
from runs.models import Run, StepExecution
from workflows.models import Step
from workflows.steps import ConfigError, get_kind
from workflows.steps.results import FanOut, Routed, Skipped, StepFailed
from workflows.steps.sending import SendKind

logger = logging.getLogger(__name__)

CLAIM_SQL = """
WITH claimable AS MATERIALIZED (
    SELECT id FROM runs_stepexecution
    WHERE run_id = %(run)s AND step_id = %(step)s AND status = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
UPDATE runs_stepexecution e SET status = 'running', attempts = e.attempts + 1, started_at = %(now)s
FROM claimable WHERE e.id = claimable.id
RETURNING e.id
"""


@dataclass
class Outcome:
    status: str
    output: Any = None
    error: str = ""
    next_attempt_at: datetime | None = None
    items: int = field(default=0)


def run_batch(run_id: int, step_id: int, lane: int = 0, queue: str = "default") -> int:
    """Claim and run up to ENGINE_BATCH_SIZE due executions of one run's step; returns how many ran."""
    run = Run.objects.select_related("version").filter(pk=run_id).first()
    if run is None or run.status in Run.FINISHED:
        if run is not None and run.status == Run.Status.CANCELLED:
            cancel_open_executions(run_id)
        return 0
    slot = fairness.acquire(run.tenant_id)
    if slot is None:
        defer(run_id, step_id, lane, queue)
        return 0
    follow: list[int] = []
    try:
        ran = _run_claimed(run, step_id, lane, queue, follow)
        _follow(run, follow, queue)
        return ran
    finally:
        fairness.release(run.tenant_id, slot)


def _follow(run: Run, follow: list[int], queue: str) -> None:
    """Run the child steps of a small batch in this job, instead of one queued job per step.

    A run with a few items (a trigger, a condition, a send per event) then costs one RQ job, not one
    per step. Bounded by ENGINE_FOLLOW_MAX_STEPS and ENGINE_FOLLOW_MAX_SECONDS, after which the rest
    is queued as usual; a step with nothing due yet (a wait) is scheduled as usual. If the worker dies
    in between, the children are `pending` rows in PostgreSQL and the sweeper queues them.
    """
    started = time.monotonic()
    steps = 0
    while follow:
        step_id = follow.pop(0)
        elapsed = time.monotonic() - started
        if steps >= settings.ENGINE_FOLLOW_MAX_STEPS or elapsed >= settings.ENGINE_FOLLOW_MAX_SECONDS:
            schedule_next(run.pk, step_id, queue=queue)
            continue
        steps += 1
        if not _run_claimed(run, step_id, 0, queue, follow):
            schedule_next(run.pk, step_id, queue=queue)


def _run_claimed(run: Run, step_id: int, lane: int, queue: str, follow: list[int] | None = None) -> int:
    run_id = run.pk
    now = clock.now()
    ids = claim(run_id, step_id, now, settings.ENGINE_BATCH_SIZE)
    if not ids:
        return 0
    if run.status == Run.Status.PENDING:
        Run.objects.filter(pk=run_id, status=Run.Status.PENDING).update(status=Run.Status.RUNNING)
        run.status = Run.Status.RUNNING
    step = Step.objects.get(pk=step_id)
    executions = list(StepExecution.objects.filter(pk__in=ids).order_by("next_attempt_at", "id"))
    children = list(Step.objects.filter(parent_id=step_id).order_by("position", "id"))
    spawner = Spawner(run, children, now, follow=follow if lane == 0 else None)
    resources = BatchResources()
    try:
        outcomes = _run_step(run, step, executions, spawner, resources, now)
        spawner.finish()
    except Exception as exc:
        # A failure of the batch itself (not of one item): settle every execution as failed or retried
        # now, rather than leaving them `running` until the sweeper's timeout.
        logger.exception("Batch of run %s step %s failed", run_id, step_id)
        ctx = StepContext(run=run, step=step, now=now, resources=resources)
        permanent = isinstance(exc, ConfigError)
        message = f"{'Step configuration' if permanent else 'Unexpected error'}: {exc}"
        outcomes = {e.pk: failure(ctx, e, message, permanent=permanent) for e in executions}
    finally:
        resources.close()
    settle(executions, outcomes, now)
    _chain(run_id, step_id, lane, queue, full=len(ids) >= settings.ENGINE_BATCH_SIZE)
    close_run_if_done(run_id)
    return len(ids)


# Why a materialized CTE and not `WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`: the planner
# may run that subquery as the inner side of a nested-loop semi-join, once per outer row, and the
# batch then claims far more than n rows (seen in tests: 40 claimed with a limit of 10).
def claim(run_id: int, step_id: int, now: datetime, limit: int) -> list[int]:
    with connection.cursor() as cur:
        cur.execute(CLAIM_SQL, {"run": run_id, "step": step_id, "now": now, "limit": limit})
        return [row[0] for row in cur.fetchall()]


def _run_step(run, step, executions, spawner, resources, now) -> dict[int, Outcome]:
    kind = get_kind(step.kind)
    ctx = StepContext(run=run, step=step, now=now, resources=resources)
    if isinstance(kind, SendKind):
        from runs.engine.sending import send_batch

        return send_batch(ctx, kind, executions, spawner)
    outcomes = {}
    for execution in executions:
        ctx.execution = execution
        outcomes[execution.pk] = apply(
            ctx, execution, spawner, lambda e=execution: kind.execute(ctx, e.input)
        )
    return outcomes


def apply(ctx: StepContext, execution: StepExecution, spawner: Spawner, produce) -> Outcome:
    """Run `produce()` for one execution, write its children, and turn errors into an outcome."""
    try:
        result = produce()
        if isinstance(result, FanOut):
            count = spawner.add(execution, result.pairs)
            status = "succeeded" if count else "filtered"  # a query with no rows ends the path
            return Outcome(status, output={**result.summary, "items": count}, items=count)
        status, path, summary = "succeeded", None, None
        if isinstance(result, Routed):
            path, summary, result = result.path, result.summary, result.items
        elif isinstance(result, Skipped):
            status, summary, result = "skipped", result.summary, result.items
        items = list(result)
        if not items:
            # Nothing goes on: a false condition, an empty query, a branch with no matching path.
            return Outcome("filtered", output=summary or {"items": 0})
        pairs = [(None, items[0])] if len(items) == 1 else [(str(i), item) for i, item in enumerate(items)]
        spawner.add(execution, pairs, path=path)
        output = summary or (items[0] if len(items) == 1 else {"items": len(items)})
        return Outcome(status, output=output, items=len(items))
    except StepFailed as exc:
        return failure(ctx, execution, exc.message, permanent=exc.permanent)
    except Exception as exc:
        logger.exception("Execution %s failed unexpectedly", execution.pk)
        message = f"Unexpected error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        return failure(ctx, execution, message, permanent=False)


def failure(ctx: StepContext, execution: StepExecution, message: str, permanent: bool) -> Outcome:
    limit = max_attempts(ctx.step.config)
    if permanent or execution.attempts >= limit:
        suffix = "" if permanent else f" (gave up after {execution.attempts} attempts)"
        return Outcome("failed", error=message + suffix)
    delay = backoff(execution.attempts, ctx.step.config)
    return Outcome("pending", error=message, next_attempt_at=ctx.now + delay)


def settle(executions: list[StepExecution], outcomes: dict[int, Outcome], now: datetime) -> list[int]:
    """Mark every outcome with one UPDATE; only executions still `running` change (cancel wins)."""
    values, params = [], []
    for execution in executions:
        outcome = outcomes[execution.pk]
        values.append("(%s::bigint, %s::varchar, %s::jsonb, %s::text, %s::timestamptz, %s::timestamptz)")
        params += [
            execution.pk,
            outcome.status,
            json.dumps(outcome.output, cls=DjangoJSONEncoder) if outcome.output is not None else None,
            outcome.error,
            outcome.next_attempt_at,
            now if outcome.status != "pending" else None,
        ]
    sql = (
        "UPDATE runs_stepexecution e SET status = v.status, output = v.output, error = v.error,"
        " next_attempt_at = COALESCE(v.next_attempt_at, e.next_attempt_at), finished_at = v.finished_at"
        f" FROM (VALUES {', '.join(values)}) AS v(id, status, output, error, next_attempt_at, finished_at)"
        " WHERE e.id = v.id AND e.status = 'running' RETURNING e.id"
    )
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [row[0] for row in cur.fetchall()]


def _chain(run_id: int, step_id: int, lane: int, queue: str, full: bool) -> None:
    """Keep this lane going while work is due; lane 0 also schedules retries and waits that are due soon."""
    if lane == 0 or full:
        schedule_next(run_id, step_id, lane=lane, queue=queue)


def defer(run_id: int, step_id: int, lane: int, queue: str) -> None:
    """The tenant is at its concurrency limit: try again in a second, behind other tenants' jobs."""
    from runs.engine.enqueue import JOB, _queue

    _queue(queue).enqueue_at(
        clock.now() + timedelta(seconds=1),
        JOB,
        run_id,
        step_id,
        lane,
        result_ttl=0,
        job_timeout=settings.ENGINE_EXECUTION_TIMEOUT,
        description=f"run {run_id} step {step_id} (deferred)",
    )


def cancel_open_executions(run_id: int) -> int:
    return StepExecution.objects.filter(run_id=run_id, status=StepExecution.Status.PENDING).update(
        status=StepExecution.Status.CANCELLED, finished_at=clock.now()
    )
