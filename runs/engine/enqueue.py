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
from typing import Any

import django_rq
from django.conf import settings
from django.db import connection
from redis import Redis
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue

from integrations import clock
from runs.engine.outages import REDIS_ERRORS

logger = logging.getLogger(__name__)
# Seconds a job may stay overdue in RQ's scheduled registry before the sweeper moves it itself.
SCHEDULED_JOB_GRACE = 5
JOB = "runs.jobs.run_batch"


@functools.cache
def _queue(name: str) -> Queue:
    # django_rq.get_queue() builds a new Redis client, hence a new TCP connection, on every call (5 ms
    # of a 6 ms enqueue when the listener starts hundreds of runs a second): keep one per process.
    # redis-py's pool notices a fork and reconnects in the child.
    return django_rq.get_queue(name)


def redis_connection() -> Redis:
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
    func: str, *args: Any, ident: str, queue: str, at: datetime | None, job_timeout: int, description: str
) -> bool:
    """Queue `func(*args)` as job `ident`, or schedule it for `at`; True when this call did, False when
    that job was already queued (or running, or scheduled) or Redis is unreachable.

    A due job that already exists under that id but is not queued (waiting in RQ's scheduled registry
    behind a dead scheduler's lock, failed during an outage, started by a worker that is gone) is moved
    to the queue: its id must not keep due work from running. Redis being unreachable is not an error
    here: the work is in PostgreSQL, and the sweeper queues it once Redis answers.

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
            return True
        try:
            q.enqueue(func, *args, unique=True, **kwargs)
            return True
        except DuplicateJobError:
            existing = _existing_job(q, ident)
        if existing != "move":
            return False
        q.enqueue(func, *args, unique=True, **kwargs)
        return True
    except DuplicateJobError:  # queued by another path between our delete and enqueue
        return False
    except REDIS_ERRORS as error:
        logger.warning("Could not queue %s (Redis: %s); the sweeper will", ident, error)
        return False


def _existing_job(q: Queue, ident: str) -> str:
    """What to do about job `ident`, which exists: "queued" (nothing), "running" (a live worker has
    it: nothing), or "move" (deleted here, to be queued again)."""
    try:
        job = Job.fetch(ident, connection=q.connection)
    except NoSuchJobError:
        return "move"  # it ran (result_ttl=0) or was deleted since
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:
        return "queued"
    if status == JobStatus.STARTED and job.worker_name and _worker_alive(job.worker_name):
        return "running"
    logger.info("Job %s was %s, not queued; moving it to queue %s", ident, status, q.name)
    job.delete()
    return "move"


def _worker_alive(name: str) -> bool:
    lease = clock.now() - timedelta(seconds=settings.WORKER_LEASE_SECONDS)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT 1 FROM runs_processheartbeat WHERE name = %s AND beat_at >= %s AND stopped_at IS NULL",
            [name, lease],
        )
        return cur.fetchone() is not None


def move_overdue_scheduled_jobs(now: datetime) -> int:
    """Move to their queues the jobs in RQ's scheduled registries that are overdue by more than
    SCHEDULED_JOB_GRACE (a live scheduler moves them within a second): the backstop for a scheduler that
    died holding its lock, or for no scheduler at all. How many were moved.

    RQ's registry `requeue` removes the entry first and refuses if it is gone, so a scheduler moving the
    same job at the same moment does not queue it twice (and a duplicate would claim nothing anyway).
    """
    cutoff = int((now - timedelta(seconds=SCHEDULED_JOB_GRACE)).timestamp())
    moved = 0
    try:
        for name in settings.RQ_QUEUES:
            registry = _queue(name).scheduled_job_registry
            for ident in registry.get_jobs_to_schedule(cutoff):
                try:
                    registry.requeue(ident)
                    moved += 1
                except NoSuchJobError:
                    registry.remove(ident)  # the job's data is gone: nothing to run
                except InvalidJobOperation:
                    pass  # the scheduler moved it meanwhile
    except REDIS_ERRORS as error:
        logger.warning("Could not look at the scheduled jobs (Redis: %s); the next sweep will", error)
    if moved:
        logger.warning("Moved %d overdue scheduled job(s) to their queues: is the scheduler running?", moved)
    return moved


def defer_batch(run_id: int, step_id: int, *, lane: int, queue: str) -> None:
    """Run this batch again in a second, behind the jobs queued meanwhile (its tenant is at its
    concurrency limit). Not unique: the job that defers is still running under the id it would take.
    With Redis unreachable its executions stay pending, and the sweeper queues them."""
    try:
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
    except REDIS_ERRORS as error:
        logger.warning("Could not defer run %s step %s (Redis: %s); the sweeper will", run_id, step_id, error)


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
