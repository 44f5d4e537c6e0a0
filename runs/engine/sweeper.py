"""The recovery sweeper: PostgreSQL is the source of truth, RQ only a way to get work done sooner.

Every SWEEPER_INTERVAL seconds (`manage.py sweeper`, or `runs.jobs.sweep` from RQ's cron) it:
1. returns to `pending`, due now, the executions `running` under a worker that is gone (its heartbeat
   is older than WORKER_LEASE_SECONDS, or it stopped: runs/engine/liveness.py), and, as the backstop
   for a worker that is alive but stuck, any `running` longer than ENGINE_EXECUTION_TIMEOUT; a send
   among them finds its Delivery `sending` and reports it uncertain;
2. cancels what is still pending in cancelled runs;
3. queues one batch job per (run, step) that has executions due for longer than SWEEPER_GRACE (their
   job was lost with Redis, could not be queued while Redis was away, waits in RQ's scheduled registry
   behind a dead scheduler, or the wait was too long for RQ's scheduler; enqueue.py moves a due job
   that exists under the same id to the queue), and touches `next_attempt_at` of those it queued, so
   that the next sweep leaves them alone for another grace period (and tries the others again);
4. moves jobs overdue by more than a few seconds in RQ's scheduled registries to their queues (a
   scheduler that died holding its lock, or none running: enqueue.py `move_overdue_scheduled_jobs`);
5. closes runs that have nothing open left (e.g. after a cancel).
Each part is idempotent, so two sweepers running at once do no harm. Reclaims are counted in Redis
for /metrics (runs/engine/metrics.py), by reason: `worker_gone` or `timeout`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection

from integrations import clock
from runs.engine import metrics
from runs.engine.completion import close_run_if_done
from runs.engine.enqueue import enqueue_batch, lanes_for, move_overdue_scheduled_jobs
from runs.engine.outcome import append_attempt

# A claim is lost when its worker's heartbeat is older than the lease (or the worker stopped, or never
# beat), or, whatever the worker, when it has run past ENGINE_EXECUTION_TIMEOUT. Claims younger than the
# lease are left alone: their worker may have started after the sweep read the heartbeats.
RECLAIM_SQL = """
WITH lost AS MATERIALIZED (
    SELECT e.id, CASE WHEN e.started_at < %(stale)s THEN 'timeout' ELSE 'worker_gone' END AS reason
    FROM runs_stepexecution e
    WHERE e.status = 'running' AND (
        e.started_at < %(stale)s
        OR (e.claimed_by <> '' AND e.started_at < %(lease)s AND NOT EXISTS (
            SELECT 1 FROM runs_processheartbeat h
            WHERE h.name = e.claimed_by AND h.beat_at >= %(lease)s AND h.stopped_at IS NULL))
    )
    FOR UPDATE OF e SKIP LOCKED
)
UPDATE runs_stepexecution e SET status = 'pending', next_attempt_at = %(due_before)s, claimed_by = '',
    error = CASE WHEN lost.reason = 'timeout'
        THEN 'Still running after ENGINE_EXECUTION_TIMEOUT; trying again.'
        ELSE 'The worker running this (' || e.claimed_by || ') stopped; trying again.' END,
    attempt_log = {append}
FROM lost WHERE e.id = lost.id AND e.status = 'running'
RETURNING lost.reason
"""

PRUNE_HEARTBEATS_SQL = "DELETE FROM runs_processheartbeat WHERE beat_at < %(old)s"

CANCEL_SQL = """
UPDATE runs_stepexecution e SET status = 'cancelled', finished_at = %(now)s
FROM runs_run r WHERE r.id = e.run_id AND r.status = 'cancelled' AND e.status = 'pending'
"""

# One row per (run, step): its first due execution, and how many are due.
DUE_SQL = """
SELECT DISTINCT ON (run_id, step_id) id, run_id, step_id, attempts, count(*) OVER (PARTITION BY run_id, step_id)
FROM (
    SELECT e.id, e.run_id, e.step_id, e.attempts FROM runs_stepexecution e JOIN runs_run r ON r.id = e.run_id
    WHERE e.status = 'pending' AND e.next_attempt_at <= %(due_before)s AND r.status IN ('pending', 'running')
    ORDER BY e.next_attempt_at LIMIT %(limit)s
) due
ORDER BY run_id, step_id, id
"""

# Touching next_attempt_at marks the due executions of the (run, step)s whose job is queued, so that the
# next sweeps leave them alone for another grace period. Only those: a job that could not be queued
# (Redis away) must be tried again by the next sweep.
TOUCH_SQL = """
UPDATE runs_stepexecution e SET next_attempt_at = %(now)s
FROM unnest(%(runs)s::bigint[], %(steps)s::bigint[]) AS queued(run_id, step_id)
WHERE e.run_id = queued.run_id AND e.step_id = queued.step_id
AND e.status = 'pending' AND e.next_attempt_at <= %(due_before)s
"""

ORPHAN_RUNS_SQL = """
SELECT r.id FROM runs_run r WHERE r.status IN ('pending', 'running')
AND NOT EXISTS (SELECT 1 FROM runs_stepexecution e WHERE e.run_id = r.id AND e.status IN ('pending', 'running'))
LIMIT 1000
"""


@dataclass
class SweepReport:
    reclaimed: int = 0
    cancelled: int = 0
    requeued_executions: int = 0
    jobs_queued: int = 0
    scheduled_jobs_moved: int = 0
    runs_closed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(limit: int = 100_000) -> SweepReport:
    report = SweepReport()
    now = clock.now()
    with connection.cursor() as cur:
        due_before = now - timedelta(seconds=settings.SWEEPER_GRACE)
        stale = now - timedelta(seconds=settings.ENGINE_EXECUTION_TIMEOUT)
        lease = now - timedelta(seconds=settings.WORKER_LEASE_SECONDS)
        # Reclaimed executions count as long overdue, so step 3 of this same sweep re-queues them.
        cur.execute(reclaim_sql(), {"due_before": due_before, "stale": stale, "lease": lease, "now": now})
        reasons = Counter(row[0] for row in cur.fetchall())
        report.reclaimed = sum(reasons.values())
        cur.execute(PRUNE_HEARTBEATS_SQL, {"old": now - timedelta(days=1)})
        cur.execute(CANCEL_SQL, {"now": now})
        report.cancelled = cur.rowcount
        cur.execute(DUE_SQL, {"due_before": due_before, "limit": limit})
        groups = cur.fetchall()
        cur.execute(ORPHAN_RUNS_SQL)
        idle_runs = [row[0] for row in cur.fetchall()]
    report.scheduled_jobs_moved = move_overdue_scheduled_jobs(now)
    queued = []
    for execution_id, run_id, step_id, attempts, count in groups:
        queue, lanes = lanes_for(count)
        jobs = sum(
            enqueue_batch(
                run_id, step_id, execution_id=execution_id, attempt=attempts + 1, lane=lane, queue=queue
            )
            for lane in range(lanes)
        )
        if jobs:
            queued.append((run_id, step_id))
            report.requeued_executions += count
            report.jobs_queued += jobs
    if queued:
        with connection.cursor() as cur:
            runs = [run_id for run_id, _ in queued]
            steps = [step_id for _, step_id in queued]
            cur.execute(TOUCH_SQL, {"now": now, "due_before": due_before, "runs": runs, "steps": steps})
    for run_id in idle_runs:
        report.runs_closed += close_run_if_done(run_id) is not None
    for reason, n in reasons.items():
        metrics.count_reclaims(n, reason)
    return report


def reclaim_sql() -> str:
    entry = (
        "jsonb_build_object('at', e.started_at, 'took', round(extract(epoch FROM %(now)s - e.started_at)::numeric, 3),"
        " 'outcome', 'reclaimed', 'error', CASE WHEN lost.reason = 'timeout'"
        " THEN 'still running after ENGINE_EXECUTION_TIMEOUT'"
        " ELSE 'worker ' || e.claimed_by || ' stopped (no heartbeat)' END)"
    )
    return RECLAIM_SQL.replace("{append}", append_attempt("e.attempt_log", entry))
