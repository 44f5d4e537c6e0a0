"""The recovery sweeper: PostgreSQL is the source of truth, RQ only a way to get work done sooner.

Every SWEEPER_INTERVAL seconds (`manage.py sweeper`, or `runs.jobs.sweep` from RQ's cron) it:
1. returns executions `running` for longer than ENGINE_EXECUTION_TIMEOUT (their worker died) to
   `pending`, due now; a send among them finds its Delivery `sending` and reports it uncertain;
2. cancels what is still pending in cancelled runs;
3. queues one batch job per (run, step) that has executions due for longer than SWEEPER_GRACE (their
   job was lost with Redis, or the wait was too long for RQ's scheduler), touching `next_attempt_at`
   so that the next sweep leaves them alone for another grace period;
4. closes runs that have nothing open left (e.g. after a cancel).
Each part is one statement, so two sweepers running at once do no harm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection

from runs.engine import clock
from runs.engine.completion import close_run_if_done
from runs.engine.enqueue import enqueue_batch

RECLAIM_SQL = """
UPDATE runs_stepexecution SET status = 'pending', next_attempt_at = %(due_before)s,
    error = 'The worker running this stopped; trying again.'
WHERE status = 'running' AND started_at < %(stale)s
RETURNING run_id
"""

CANCEL_SQL = """
UPDATE runs_stepexecution e SET status = 'cancelled', finished_at = %(now)s
FROM runs_run r WHERE r.id = e.run_id AND r.status = 'cancelled' AND e.status = 'pending'
"""

# One row per (run, step): its first due execution. Touching next_attempt_at marks them as re-queued.
REQUEUE_SQL = """
WITH due AS MATERIALIZED (
    SELECT e.id FROM runs_stepexecution e JOIN runs_run r ON r.id = e.run_id
    WHERE e.status = 'pending' AND e.next_attempt_at <= %(due_before)s AND r.status IN ('pending', 'running')
    ORDER BY e.next_attempt_at LIMIT %(limit)s FOR UPDATE OF e SKIP LOCKED
), touched AS (
    UPDATE runs_stepexecution e SET next_attempt_at = %(now)s FROM due WHERE e.id = due.id
    RETURNING e.id, e.run_id, e.step_id, e.attempts
)
SELECT DISTINCT ON (run_id, step_id) id, run_id, step_id, attempts, count(*) OVER (PARTITION BY run_id, step_id)
FROM touched ORDER BY run_id, step_id, id
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
    runs_closed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def sweep(limit: int = 100_000) -> SweepReport:
    report = SweepReport()
    now = clock.now()
    with connection.cursor() as cur:
        due_before = now - timedelta(seconds=settings.SWEEPER_GRACE)
        stale = now - timedelta(seconds=settings.ENGINE_EXECUTION_TIMEOUT)
        # Reclaimed executions count as long overdue, so step 3 of this same sweep re-queues them.
        cur.execute(RECLAIM_SQL, {"due_before": due_before, "stale": stale})
        report.reclaimed = cur.rowcount
        cur.execute(CANCEL_SQL, {"now": now})
        report.cancelled = cur.rowcount
        cur.execute(
            REQUEUE_SQL,
            {"now": now, "due_before": due_before, "limit": limit},
        )
        groups = cur.fetchall()
        cur.execute(ORPHAN_RUNS_SQL)
        idle_runs = [row[0] for row in cur.fetchall()]
    for execution_id, run_id, step_id, attempts, count in groups:
        report.requeued_executions += count
        queue = "low" if count > settings.ENGINE_FANOUT_LOW_QUEUE_AT else "default"
        lanes = 1 if count <= settings.ENGINE_BATCH_SIZE else settings.ENGINE_FANOUT_PARALLELISM
        for lane in range(lanes):
            report.jobs_queued += enqueue_batch(
                run_id, step_id, execution_id=execution_id, attempt=attempts + 1, lane=lane, queue=queue
            )
    for run_id in idle_runs:
        report.runs_closed += close_run_if_done(run_id) is not None
    return report
