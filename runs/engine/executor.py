"""Running one batch: claim due executions of a run's step, run them, write children, settle them.

The steps, in SQL terms (a batch of B executions costs a handful of statements, plus what the step
itself needs, e.g. two per email: the Delivery written before the send and marked after):
1. claim: one UPDATE from a MATERIALIZED CTE (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED), which moves
   due `pending` executions to `running` and counts the attempt; a job that claims nothing does nothing;
2. run each execution's step (sends go through runs/engine/delivery_protocol.py and its Delivery protocol);
3. children: bulk inserts ignoring conflicts (runs/engine/spawn.py), written before the parent is
   marked done so that the run never looks finished in between;
4. settle: one UPDATE ... FROM (VALUES ...) marks every execution succeeded, failed, or pending again
   with its backoff in `next_attempt_at`, only where it is still `running` (a cancel wins);
5. queue the next batch of this step (the lane chains itself) and close the run if nothing is open;
6. a batch that produced few items (ENGINE_FOLLOW_MAX_ITEMS) runs its child steps next in the same job
   (`_follow`), so a small run costs one RQ job rather than one per step.

Claims carry the worker's name (`claimed_by`, runs/engine/liveness.py) and the attempt they count;
settle touches only rows this worker still holds under that attempt, so a batch the sweeper handed to
another worker is never settled twice, nor by a worker that wakes after losing it. Each settle appends
the attempt (time, duration, outcome, error) to `attempt_log` in the same statement.

An interrupted batch (RQ's job timeout, a lost lease or claim, a database error from Django or from
psycopg itself) is not a failure of its items: the connection is reset if a statement was left in
flight, the items that finished keep their outcome, the one in flight counts a failed attempt, the rest
go back to `pending`, due now, for another job (`_release_interrupted`, retried until the database takes
it), and the exception goes on to RQ (a lost lease or claim ends the job quietly: logged, not failed).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from common import logs as logcontext
from integrations import clock
from runs.engine import cancel_keys, connections, fairness, ledger, liveness, outages
from runs.engine.completion import close_run_if_done
from runs.engine.concurrent import send_concurrently
from runs.engine.context import BatchResources, StepContext
from runs.engine.delivery_protocol import send_serially
from runs.engine.enqueue import defer_batch, schedule_next
from runs.engine.outcome import (
    ClaimLost,
    LeaseLost,
    Outcome,
    append_attempt,
    apply,
    failure,
    interrupts_batch,
)
from runs.engine.spawn import Spawner
from runs.models import Delivery, Run, StepExecution
from workflows.models import Step
from workflows.steps import ConfigError, get_kind, send_window
from workflows.steps.send_kind import SendKind

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A live cancel-by-key tombstone of the run's key turns the claim into a cancel (runs/engine/cancel_keys.py).
CLAIM_SQL = f"""
WITH claimable AS MATERIALIZED (
    SELECT id FROM runs_stepexecution
    WHERE run_id = %(run)s AND step_id = %(step)s AND status = 'pending' AND next_attempt_at <= %(now)s
    ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), tombstone AS MATERIALIZED ({cancel_keys.TOMBSTONE_OF_RUN}), claims AS (
    SELECT claimable.id, tombstone.id AS tombstone_id, {cancel_keys.CANCELS_AT_CLAIM} AS cancels
    FROM claimable JOIN runs_stepexecution e ON e.id = claimable.id LEFT JOIN tombstone ON true
)
UPDATE runs_stepexecution e SET
    status = CASE WHEN claims.cancels THEN 'cancelled' ELSE 'running' END,
    attempts = CASE WHEN claims.cancels THEN e.attempts ELSE e.attempts + 1 END,
    started_at = CASE WHEN claims.cancels THEN e.started_at ELSE %(now)s END,
    finished_at = CASE WHEN claims.cancels THEN %(now)s ELSE e.finished_at END,
    error = CASE WHEN claims.cancels THEN 'Cancelled by key when claimed' ELSE e.error END,
    claimed_by = CASE WHEN claims.cancels THEN e.claimed_by ELSE %(worker)s END
FROM claims WHERE e.id = claims.id
RETURNING e.id, claims.cancels, claims.tombstone_id
"""


def run_batch(run_id: int, step_id: int, lane: int = 0, queue: str = "default") -> int:
    """Claim and run up to ENGINE_BATCH_SIZE due executions of one run's step; returns how many ran."""
    run = Run.objects.select_related("version").filter(pk=run_id).first()
    if run is None or run.status in Run.FINISHED:
        if run is not None and run.status == Run.Status.CANCELLED:
            cancel_open_executions(run_id)
        return 0
    slot = fairness.acquire(run.tenant_id)
    if slot is None:
        # The tenant is at its concurrency limit: try again in a second, behind other tenants' jobs.
        defer_batch(run_id, step_id, lane=lane, queue=queue)
        return 0
    try:
        with logcontext.bound(tenant_id=run.tenant_id, run_id=run_id):
            ran, follow_ups = _run_claimed(run, step_id, lane, queue)
            _follow(run, follow_ups, queue)
        return ran
    finally:
        fairness.release(run.tenant_id, slot)


def _follow(run: Run, follow_ups: list[int], queue: str) -> None:
    """Run the child steps of a small batch in this job, instead of one queued job per step.

    A run with a few items (a trigger, a condition, a send per event) then costs one RQ job, not one
    per step. Bounded by ENGINE_FOLLOW_MAX_STEPS and ENGINE_FOLLOW_MAX_SECONDS, after which the rest
    is queued as usual; a step with nothing due yet (a wait) is scheduled as usual. If the worker dies
    in between, the children are `pending` rows in PostgreSQL and the sweeper queues them.
    """
    started = time.monotonic()
    steps = 0
    waiting = list(follow_ups)
    while waiting:
        step_id = waiting.pop(0)
        elapsed = time.monotonic() - started
        if steps >= settings.ENGINE_FOLLOW_MAX_STEPS or elapsed >= settings.ENGINE_FOLLOW_MAX_SECONDS:
            schedule_next(run.pk, step_id, queue=queue)
            continue
        steps += 1
        ran, more = _run_claimed(run, step_id, 0, queue)
        if not ran:
            schedule_next(run.pk, step_id, queue=queue)
        waiting.extend(more)


def _run_claimed(run: Run, step_id: int, lane: int, queue: str) -> tuple[int, list[int]]:
    """(how many executions ran, the child steps this job should run next: see _follow)."""
    with logcontext.bound(step_id=step_id):
        return _run_claimed_step(run, step_id, lane, queue)


def _run_claimed_step(run: Run, step_id: int, lane: int, queue: str) -> tuple[int, list[int]]:
    run_id = run.pk
    now = clock.now()
    ids = claim(run_id, step_id, now, settings.ENGINE_BATCH_SIZE)
    if not ids:
        return 0, []
    try:
        if run.status == Run.Status.PENDING:
            Run.objects.filter(pk=run_id, status=Run.Status.PENDING).update(status=Run.Status.RUNNING)
            run.status = Run.Status.RUNNING
        step = Step.objects.get(pk=step_id)
        executions = list(StepExecution.objects.filter(pk__in=ids).order_by("next_attempt_at", "id"))
        children = list(Step.objects.filter(parent_id=step_id).order_by("position", "id"))
    except BaseException:
        _release_claims(run_id, ids, now)
        raise
    spawner = Spawner(run, children, now, may_follow=lane == 0)
    resources = BatchResources()
    ctx = StepContext(run=run, step=step, now=now, resources=resources)
    outcomes: dict[int, Outcome] = {}
    follow_ups: list[int] = []
    try:
        _run_step(ctx, executions, spawner, outcomes)
        follow_ups = spawner.finish()
    except BaseException as exc:
        if interrupts_batch(exc):
            _release_interrupted(ctx, executions, outcomes, spawner, exc, queue)
            if isinstance(exc, LeaseLost):
                return len(ids), []  # expected of a worker that was frozen: logged, not a failed job
            raise
        # A failure of the batch itself (not of one item): settle every execution as failed or retried
        # now, rather than leaving them `running` until the sweeper's timeout.
        logger.exception("Batch of run %s step %s failed", run_id, step_id)
        permanent = isinstance(exc, ConfigError)
        message = f"{'Step configuration' if permanent else 'Unexpected error'}: {exc}"
        outcomes = {e.pk: failure(ctx, e, message, permanent=permanent) for e in executions}
    finally:
        resources.close()
    until_written(lambda: settle(executions, outcomes, now), f"the outcomes of run {run_id}")
    _chain(run_id, step_id, lane, queue, full=len(ids) >= settings.ENGINE_BATCH_SIZE)
    close_run_if_done(run_id)
    return len(ids), follow_ups


# Why a materialized CTE and not `WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`: the planner
# may run that subquery as the inner side of a nested-loop semi-join, once per outer row, and the
# batch then claims far more than n rows (seen in tests: 40 claimed with a limit of 10).
def claim(run_id: int, step_id: int, now: datetime, limit: int) -> list[int]:
    params: dict[str, Any] = {
        "run": run_id,
        "step": step_id,
        "now": now,
        "limit": limit,
        "worker": liveness.worker_name,
    }
    with connection.cursor() as cur:
        cur.execute(CLAIM_SQL, params)
        rows = cur.fetchall()
    cancelled = [tombstone for _id, cancels, tombstone in rows if cancels]
    if cancelled:
        cancel_keys.cancelled_at_claim(run_id, cancelled[0], len(cancelled), now)
    return [pk for pk, cancels, _tombstone in rows if not cancels]


def _run_step(
    ctx: StepContext, executions: list[StepExecution], spawner: Spawner, outcomes: dict[int, Outcome]
) -> None:
    """Fill `outcomes` item by item (an interrupted batch keeps what finished)."""
    kind = get_kind(ctx.step.kind)
    if isinstance(kind, SendKind):
        _send_batch(ctx, kind, executions, spawner, outcomes)
        return
    kind.prepare_batch(ctx, executions)
    for execution in executions:
        ctx.execution = execution
        outcomes[execution.pk] = apply(
            ctx, execution, spawner, functools.partial(kind.execute, ctx, execution.input)
        )


def _send_batch(
    ctx: StepContext,
    kind: SendKind,
    executions: list[StepExecution],
    spawner: Spawner,
    outcomes: dict[int, Outcome],
) -> None:
    """Send a batch through the Delivery protocol: one message at a time, or several in flight when the
    step allows it (`SendKind.messages_in_flight`, runs/engine/concurrent.py)."""
    existing = {d.step_execution_id: d for d in Delivery.objects.filter(step_execution__in=executions)}
    executions = _outside_window(ctx, executions, existing, outcomes)
    if not executions:
        return
    limit = kind.messages_in_flight(ctx)
    if limit > 1 and len(executions) > 1:
        send_concurrently(ctx, kind, executions, spawner, outcomes, existing, limit)
    else:
        send_serially(ctx, kind, executions, spawner, outcomes, existing)


def _outside_window(
    ctx: StepContext,
    executions: list[StepExecution],
    existing: dict[int, Delivery],
    outcomes: dict[int, Outcome],
) -> list[StepExecution]:
    """The executions that may send now; the others (a retry or a late claim that found the window
        closed) are held again until it opens. The claim counts as an attempt (its job id is keyed by the
        attempt, so giving it back would keep the next job from being queued); the attempt log says "held
        for send window". A message whose earlier try may have left (a Delivery sending, uncertain, sent...)
    is past this point and resumed as it is; one whose earlier try failed is sent anew, so it waits."""
    if ctx.run.is_test or (ctx.run.options or {}).get("skip_waits"):
        return executions
    ready = []
    for execution in executions:
        hold = None
        earlier = existing.get(execution.pk)
        if earlier is None or earlier.status == Delivery.Status.FAILED:
            identity = send_window.identity(ctx.run.pk, ctx.step.pk, execution.item_key)
            hold = send_window.hold_for(
                ctx.step.config or {}, execution.input, ctx.run.tenant, ctx.now, identity
            )
        if hold is None:
            ready.append(execution)
            continue
        outcomes[execution.pk] = Outcome(
            StepExecution.Status.PENDING,
            output=hold.as_output(),
            error="",
            next_attempt_at=hold.until,
            held_for_window=True,
        )
    return ready


def _release_interrupted(
    ctx: StepContext,
    executions: list[StepExecution],
    outcomes: dict[int, Outcome],
    spawner: Spawner,
    exc: BaseException,
    queue: str,
) -> None:
    """Settle what finished, count a failed attempt for the item in flight, put the rest back.

    The database may be what broke: the writes are retried with backoff until it takes them
    (`until_written`), so the claims go back to `pending` as soon as it returns, not after
    ENGINE_EXECUTION_TIMEOUT. First the answers the send paths had not written and the messages that
    never left (BatchResources.release_writes, unsent), then the children, then the outcomes: all
    fenced by this worker's claims, so a worker that lost them writes nothing.
    """
    reason = type(exc).__name__
    logger.warning(
        "Batch of run %s step %s interrupted (%s) after %d of %d items; the rest go back to pending",
        ctx.run.pk,
        ctx.step.pk,
        reason,
        len(outcomes),
        len(executions),
    )
    connections.reset_if_busy()
    in_flight = ctx.execution if isinstance(exc, Exception) and not isinstance(exc, LeaseLost) else None
    resources: BatchResources = ctx.resources

    def release() -> list[int]:
        for write in resources.release_writes:
            with contextlib.suppress(ClaimLost):  # refused and logged: the rest is refused too
                write()
        ledger.set_status(
            resources.unsent, Delivery.Status.FAILED, ledger.NOT_SENT, [Delivery.Status.SENDING]
        )
        spawner.keep_children_of(still_held(executions))
        finished = outcomes if _children_written(spawner) else {}
        return settle(executions, _released(ctx, executions, finished, in_flight, exc), ctx.now)

    try:
        settled = until_written(release, f"the interrupted batch of run {ctx.run.pk}")
    except Exception:
        logger.warning("Could not release the interrupted batch of run %s", ctx.run.pk, exc_info=True)
        return  # a bug, not an outage: the sweeper takes the claims back after ENGINE_EXECUTION_TIMEOUT
    if not settled:
        return  # given up (the sweeper takes it over), or nothing of it was this worker's any more
    try:
        schedule_next(ctx.run.pk, ctx.step.pk, queue=queue)
        # Concurrent sends may have finished every item while the interruption waited for their answers.
        close_run_if_done(ctx.run.pk)
    except Exception:
        # Redis is gone too: the sweeper queues the released executions (they are due now).
        logger.warning("Could not queue the rest of run %s", ctx.run.pk, exc_info=True)
        connections.reset_if_busy()


def still_held(executions: list[StepExecution]) -> set[int]:
    """The executions this worker still holds under the attempt it claimed (one statement, on the
    interruption path only): a worker that lost its claim must not write children for them either."""
    held = StepExecution.objects.filter(
        pk__in=[e.pk for e in executions],
        status=StepExecution.Status.RUNNING,
        claimed_by=liveness.worker_name,
    ).values_list("pk", "attempts")
    attempts = {e.pk: e.attempts for e in executions}
    return {pk for pk, attempt in held if attempts[pk] == attempt}


def _children_written(spawner: Spawner) -> bool:
    """Write the children of the items that finished (or say they could not be, and those items run
    again); a database error goes on to `until_written`, which retries."""
    try:
        spawner.finish()
        return True
    except Exception as exc:
        if outages.is_database_outage(exc) or connections.is_busy():
            raise
        logger.warning("Could not write the children of an interrupted batch", exc_info=True)
        return False


def _released(
    ctx: StepContext,
    executions: list[StepExecution],
    outcomes: dict[int, Outcome],
    in_flight: StepExecution | None,
    exc: BaseException,
) -> dict[int, Outcome]:
    reason = type(exc).__name__
    released = {}
    for execution in executions:
        if execution.pk in outcomes:
            released[execution.pk] = outcomes[execution.pk]
        elif execution is in_flight:
            message = f"Interrupted while this item ran ({reason}: {exc})"
            released[execution.pk] = failure(ctx, execution, message, permanent=False)
        else:
            message = f"The batch was interrupted ({reason}) before this item ran; another worker takes it."
            released[execution.pk] = Outcome(
                StepExecution.Status.PENDING, error=message, next_attempt_at=ctx.now
            )
    return released


def _release_claims(run_id: int, ids: list[int], now: datetime) -> None:
    """Claims taken just before the batch could start (the database went away in between): back to
    `pending` as soon as it returns, fenced by this worker's claim, not after ENGINE_EXECUTION_TIMEOUT."""
    connections.reset_if_busy()
    claimed = StepExecution.objects.filter(
        pk__in=ids, status=StepExecution.Status.RUNNING, claimed_by=liveness.worker_name
    )
    until_written(
        lambda: claimed.update(status=StepExecution.Status.PENDING, claimed_by="", next_attempt_at=now),
        f"the claims of run {run_id}",
    )


def until_written(write: Callable[[], T], what: str) -> T | None:
    """`write()` retried until the database takes it (runs/engine/outages.py), for up to
    ENGINE_EXECUTION_TIMEOUT, after which the sweeper's backstop takes the claims anyway (None)."""
    return outages.retry_database(write, what=what, give_up_after=settings.ENGINE_EXECUTION_TIMEOUT)


def attempt_entry(execution: StepExecution, outcome: Outcome) -> str:
    started = execution.started_at
    return json.dumps(
        {
            "at": started.isoformat() if started else None,
            "took": round(outcome.took, 3),
            "outcome": _attempt_outcome(outcome),
            "error": outcome.error[:500],
        }
    )


def _attempt_outcome(outcome: Outcome) -> str:
    if outcome.held_for_window:
        return "held for send window"
    if outcome.refund_attempt:
        return "throttled"  # not counted: the provider refused for its rate
    return "retry" if outcome.status == StepExecution.Status.PENDING else outcome.status


def settle(executions: list[StepExecution], outcomes: dict[int, Outcome], now: datetime) -> list[int]:
    """Mark every outcome with one UPDATE; only executions still `running`, still claimed by this worker
    under the attempt it claimed (a cancel wins, and so does the sweeper having reclaimed them, whoever
    ran them since). What was refused is one log line."""
    values: list[str] = []
    params: list[Any] = []
    for execution in executions:
        outcome = outcomes[execution.pk]
        values.append(
            "(%s::bigint, %s::integer, %s::varchar, %s::jsonb, %s::text, %s::timestamptz,"
            " %s::timestamptz, %s::jsonb, %s::integer, %s::integer)"
        )
        params += [
            execution.pk,
            execution.attempts,
            outcome.status,
            json.dumps(outcome.output, cls=DjangoJSONEncoder) if outcome.output is not None else None,
            outcome.error,
            outcome.next_attempt_at,
            now if outcome.status != StepExecution.Status.PENDING else None,
            attempt_entry(execution, outcome),
            1 if outcome.refund_attempt else 0,
            1 if outcome.deferred else 0,
        ]
    params.append(liveness.worker_name)
    sql = (
        "UPDATE runs_stepexecution e SET status = v.status, output = v.output, error = v.error,"
        " next_attempt_at = COALESCE(v.next_attempt_at, e.next_attempt_at), finished_at = v.finished_at,"
        " attempts = e.attempts - v.refund, deferrals = e.deferrals + v.deferred,"
        f" claimed_by = '', attempt_log = {append_attempt('e.attempt_log', 'v.attempt')}"
        f" FROM (VALUES {', '.join(values)})"
        " AS v(id, attempts, status, output, error, next_attempt_at, finished_at, attempt, refund, deferred)"
        " WHERE e.id = v.id AND e.status = 'running' AND e.claimed_by = %s AND e.attempts = v.attempts"
        " RETURNING e.id"
    )
    with connection.cursor() as cur:
        cur.execute(sql, params)
        settled = [row[0] for row in cur.fetchall()]
    if len(settled) < len(executions):
        logger.info(
            "Settled %d of %d executions: worker %r no longer holds the others (reclaimed, or cancelled); "
            "their outcomes here were not written",
            len(settled),
            len(executions),
            liveness.worker_name,
        )
    return settled


def _chain(run_id: int, step_id: int, lane: int, queue: str, full: bool) -> None:
    """Keep this lane going while work is due; lane 0 also schedules retries and waits that are due soon."""
    if lane == 0 or full:
        schedule_next(run_id, step_id, lane=lane, queue=queue)


def cancel_open_executions(run_id: int) -> int:
    return StepExecution.objects.filter(run_id=run_id, status=StepExecution.Status.PENDING).update(
        status=StepExecution.Status.CANCELLED, finished_at=clock.now()
    )
