"""One execution's outcome: what running its step on its item (or sending its message) came to.

Both paths that run executions build outcomes here: the executor's, item by item (runs/engine/executor.py),
and the sends' (runs/engine/delivery_protocol.py, one message at a time; runs/engine/concurrent.py, several
in flight). `apply` runs a step for one execution; `guarded` turns a Failure (or an unexpected error) into
the outcome it means, letting the errors that stop a whole batch through; `spawned` hands the step's
result to the child steps (runs/engine/spawn.py) and says how the execution ended; `failure` decides
between failing for good and retrying with backoff (runs/engine/retry.py).

An outcome's status is the one its execution is settled with: StepExecution.Status SUCCEEDED, FILTERED,
SKIPPED, FAILED, or PENDING (a retry, due at `next_attempt_at`).
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from rq.timeouts import JobTimeoutException

from common import logs as logcontext
from integrations.failures import Failure
from runs.engine import connections, liveness, outages
from runs.engine.context import StepContext
from runs.engine.retry import backoff, max_attempts
from runs.engine.spawn import Spawner
from runs.models import StepExecution
from workflows.steps.results import Deferred, FanOut, Filtered, Routed, Skipped

logger = logging.getLogger(__name__)

Status = StepExecution.Status


@dataclass
class Outcome:
    status: Status
    output: Any = None
    error: str = ""
    next_attempt_at: datetime | None = None
    took: float = 0.0  # seconds this attempt ran
    # The provider throttled this attempt: settled without counting it (integrations/failures.py).
    refund_attempt: bool = False
    # A message held for its send window (not a failure; the attempt log says so).
    held_for_window: bool = False
    # The step deferred the item (a `Deferred` result): this claim is counted in `deferrals`, not a try.
    deferred: bool = False


class LeaseLost(Exception):
    """This worker was frozen past its lease: the sweeper may have given its claims to another worker."""


class ClaimLost(LeaseLost):
    """A guarded write found that this worker no longer holds the execution it was made for (the
    sweeper reclaimed it, and another worker may have run it): the batch stops and writes nothing more."""


def interrupts_batch(exc: BaseException) -> bool:
    """Errors that stop the whole batch rather than fail one item (a database error among them: the
    database went away under the batch, runs/engine/outages.py)."""
    return (
        not isinstance(exc, Exception)
        or isinstance(exc, (JobTimeoutException, LeaseLost, *outages.DATABASE_ERRORS))
        or connections.is_busy()
    )


def apply(
    ctx: StepContext, execution: StepExecution, spawner: Spawner, produce: Callable[[], Any]
) -> Outcome:
    """Run `produce()` for one execution, write its children, and turn errors into an outcome."""
    started = time.monotonic()
    with logcontext.bound(execution_id=execution.pk):
        outcome, failed = guarded(ctx, execution, lambda: spawned(execution, spawner, produce()))
    result = failed or outcome
    result.took = time.monotonic() - started
    return result


def guarded(
    ctx: StepContext, execution: StepExecution, fn: Callable[[], Any], check_lease: bool = True
) -> tuple[Any, Outcome | None]:
    """(fn(), None), or (None, the outcome its error means); errors that stop the batch propagate."""
    try:
        if check_lease and liveness.lease_lost():
            raise LeaseLost(f"worker {liveness.worker_name} missed its heartbeat lease")
        return fn(), None
    except Failure as exc:
        if exc.throttled and not throttled_too_long(ctx, execution):
            return None, throttled(ctx, exc.message, exc.retry_after)
        return None, failure(ctx, execution, exc.message, permanent=exc.permanent, limit=exc.max_attempts)
    except Exception as exc:
        if interrupts_batch(exc):
            raise
        logger.exception("Execution %s failed unexpectedly", execution.pk)
        message = f"Unexpected error: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        return None, failure(ctx, execution, message, permanent=False)


def spawned(execution: StepExecution, spawner: Spawner, result: Any) -> Outcome:
    """The step's result (items, a fan-out, a routed or skipped result) handed to the children; the
    execution's outcome."""
    if isinstance(result, Deferred):
        # Held, not retried (no error, no backoff): no child is written and the same execution runs
        # again at `until` (a throttle's next slot, a wait whose time moved).
        return Outcome(Status.PENDING, output=result.summary, next_attempt_at=result.until, deferred=True)
    if isinstance(result, FanOut):
        count = spawner.add(execution, result.pairs)
        status = Status.SUCCEEDED if count else Status.FILTERED  # a query with no rows ends the path
        return Outcome(status, output={**result.summary, "items": count})
    if isinstance(result, Filtered):
        return Outcome(Status.FILTERED, output=result.summary)
    status, path, summary = Status.SUCCEEDED, None, None
    if isinstance(result, Routed):
        path, summary, result = result.path, result.summary, result.items
    elif isinstance(result, Skipped):
        status, summary, result = Status.SKIPPED, result.summary, result.items
    items = list(result)
    if not items:
        # Nothing goes on: a false condition, an empty query, a branch with no matching path (a
        # skipped step whose path ends, e.g. an email to an unsubscribed recipient, stays skipped).
        ended = Status.SKIPPED if status == Status.SKIPPED else Status.FILTERED
        return Outcome(ended, output=summary or {"items": 0})
    pairs: list[tuple[str | None, Any]] = (
        [(None, items[0])] if len(items) == 1 else [(str(i), item) for i, item in enumerate(items)]
    )
    spawner.add(execution, pairs, path=path)
    output = summary or (items[0] if len(items) == 1 else {"items": len(items)})
    return Outcome(status, output=output)


def failure(
    ctx: StepContext, execution: StepExecution, message: str, permanent: bool, limit: int | None = None
) -> Outcome:
    """Failed for good (permanent, or out of attempts: the step's, or `limit` when lower), else retried."""
    limit = min(max_attempts(ctx.step.config), limit or max_attempts(ctx.step.config))
    tries = execution.tries  # claims that only deferred the item are no tries
    if permanent or tries >= limit:
        suffix = "" if permanent else f" (gave up after {tries} attempts)"
        return Outcome(Status.FAILED, error=message + suffix)
    delay = backoff(tries, ctx.step.config)
    return Outcome(Status.PENDING, error=message, next_attempt_at=ctx.now + delay)


# Without a Retry-After, a throttled message comes back after a random wait up to this many seconds.
THROTTLED_WAIT_SECONDS = 2.0


def throttled_too_long(ctx: StepContext, execution: StepExecution) -> bool:
    """Whether the provider's throttling has held this execution so long that its refusals now count as
    attempts (a provider that refuses forever must end in a failure, not a message waiting forever)."""
    age = (ctx.now - execution.created_at).total_seconds()
    return bool(age > settings.ENGINE_THROTTLED_GIVE_UP_SECONDS)


def throttled(ctx: StepContext, message: str, retry_after: float | None) -> Outcome:
    """The provider refused for its rate: try again after its Retry-After (else a short random wait),
    without using up an attempt."""
    wait = retry_after if retry_after is not None else random.uniform(0.5, THROTTLED_WAIT_SECONDS)
    return Outcome(
        Status.PENDING,
        error=f"Waiting for the provider's limit: {message}",
        next_attempt_at=ctx.now + timedelta(seconds=wait),
        refund_attempt=True,
    )


def append_attempt(column: str, entry: str) -> str:
    """SQL: `column` (a JSON array) with `entry` appended, keeping the last ENGINE_ATTEMPT_LOG_SIZE."""
    keep = max(1, int(settings.ENGINE_ATTEMPT_LOG_SIZE))
    return (
        f"(CASE WHEN jsonb_array_length({column}) >= {keep}"
        f" THEN {column} - 0 ELSE {column} END) || jsonb_build_array({entry})"
    )
