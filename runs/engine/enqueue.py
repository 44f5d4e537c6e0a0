"""Putting batch jobs on RQ. Jobs carry ids only; PostgreSQL decides what they do.

A job `runs.jobs.run_batch(run_id, step_id, lane)` claims the due executions of one run's step. Job
ids are `exec-<execution id>-<attempt>` (plus `-l<lane>` for the parallel lanes of a fan-out), where
the execution is the next one due: enqueued with `unique=True`, so two paths (a finished batch, the
sweeper, a retry) cannot queue the same attempt twice. Duplicates would be harmless anyway: a job
that finds nothing to claim does nothing. Jobs keep no result (`result_ttl=0`), so the same id can be
used again once the job has run.
"""

from __future__ import annotations

import functools
import logging
import math
from datetime import datetime, timedelta

import django_rq
from django.conf import settings
from django.db import connection
from rq.exceptions import DuplicateJobError
from rq.job import Job

from integrations import clock

logger = logging.getLogger(__name__)
JOB = "runs.jobs.run_batch"


@functools.cache
def _queue(name: str):
    # django_rq.get_queue() builds a new Redis client, hence a new TCP connection, on every call (5 ms
    # of a 6 ms enqueue when the listener starts hundreds of runs a second): keep one per process.
    # redis-py's pool notices a fork and reconnects in the child.
    return django_rq.get_queue(name)


def redis_connection():
    """The process's one Redis client (the default queue's), for the engine's own keys."""
    return _queue("default").connection


def job_id(execution_id: int, attempt: int, lane: int = 0) -> str:
    return f"exec-{execution_id}-{attempt}" + (f"-l{lane}" if lane else "")


def enqueue_batch(
    run_id: int,
    step_id: int,
    *,
    execution_id: int,
    attempt: int,
    lane: int = 0,
    queue: str = "default",
    at: datetime | None = None,
) -> bool:
    """Queue (or schedule, with `at`) a batch job; False when that attempt is already queued."""
    return enqueue_unique(
        JOB,
        run_id,
        step_id,
        lane,
        ident=job_id(execution_id, attempt, lane),
        queue=queue,
        at=at,
        job_timeout=settings.ENGINE_EXECUTION_TIMEOUT,
        description=f"run {run_id} step {step_id}",
    )


def enqueue_unique(
    func: str, *args, ident: str, queue: str, at: datetime | None, job_timeout: int, description: str
) -> bool:
    """Queue `func(*args)` as job `ident`, or schedule it for `at`; False when that id is already queued.

    Batch jobs and event deliveries (runs/events/delivery.py) both go through here.
    """
    q = _queue(queue)
    kwargs = {
        "job_id": ident,
        "result_ttl": 0,
        "failure_ttl": 7 * 86400,
        "job_timeout": job_timeout,
        "description": description,
    }
    try:
        if at is not None and at > clock.now():
            if Job.exists(ident, connection=q.connection):
                return False
            # RQ's scheduler keeps whole seconds, rounding down: round up, or the job runs before its
            # execution is due, claims nothing, and the work waits for the sweeper.
            at = at.replace(microsecond=0) + timedelta(seconds=1) if at.microsecond else at
            q.enqueue_at(at, func, *args, **kwargs)
        else:
            q.enqueue(func, *args, unique=True, **kwargs)
    except DuplicateJobError:
        return False
    return True


def defer_batch(run_id: int, step_id: int, *, lane: int, queue: str) -> None:
    """Run this batch again in a second, behind the jobs queued meanwhile (its tenant is at its
    concurrency limit). Not unique: the job that defers is still running under the id it would take."""
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


def lanes_for(items: int) -> tuple[str, int]:
    """(queue, lanes) for a step with `items` executions to run: one lane per ENGINE_BATCH_SIZE, at most
    ENGINE_FANOUT_PARALLELISM; more than ENGINE_FANOUT_LOW_QUEUE_AT items go to the `low` queue, so that
    a big fan-out never delays small runs. Used by new children (spawn.py) and the sweeper alike."""
    queue = "low" if items > settings.ENGINE_FANOUT_LOW_QUEUE_AT else "default"
    lanes = min(settings.ENGINE_FANOUT_PARALLELISM, math.ceil(items / settings.ENGINE_BATCH_SIZE))
    return queue, max(lanes, 1)


def schedule_next(run_id: int, step_id: int, *, lane: int = 0, queue: str = "default") -> bool:
    """Queue the next batch of this run's step if one is due, or schedule it if due soon.

    Due later than ENGINE_SCHEDULE_HORIZON is left to the sweeper (RQ is not the source of truth).
    """
    with connection.cursor() as cur:
        cur.execute(
            "SELECT id, attempts, next_attempt_at FROM runs_stepexecution"
            " WHERE run_id = %s AND step_id = %s AND status = 'pending'"
            " ORDER BY next_attempt_at, id LIMIT 1",
            [run_id, step_id],
        )
        row = cur.fetchone()
    if row is None:
        return False
    execution_id, attempts, due = row
    now = clock.now()
    if due is not None and (due - now).total_seconds() > settings.ENGINE_SCHEDULE_HORIZON:
        return False
    return enqueue_batch(
        run_id,
        step_id,
        execution_id=execution_id,
        attempt=attempts + 1,
        lane=lane,
        queue=queue,
        at=due if due is not None and due > now else None,
    )
