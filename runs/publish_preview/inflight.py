"""Runs in flight when a draft is published: how many wait at each live step, and what to do with them.

Per live step the person chooses: `keep` (finish on the old version: the default, and what publishing
always did), `move` (continue on the new version at the step with the same key, when the draft has one
of the same kind), or `cancel`.

Moving is exactly-once and never leaves a run on two versions. In one transaction:
1. lock every open execution of the candidate runs (FOR UPDATE: a claim in progress commits first; later
   claims skip them, as their SELECT … FOR UPDATE SKIP LOCKED does);
2. keep the runs whose open executions are all `pending` at steps being moved (a run with anything
   `running`, or waiting at a step kept, stays whole on the old version);
3. one UPDATE moves those runs' version, one moves their executions' step, each guarded by the state
   just locked (`version = old`, `status = 'pending'`).
A worker killed at any point either committed its claim first (the run is not moved, and the sweeper
gives its claim back on the old version) or never took the locked rows. A moved execution keeps its id,
so a message an earlier attempt wrote (its Delivery row is keyed by the execution) is resumed, never
sent again; RQ jobs queued for the old step claim nothing, and the moved ones are queued again.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from rq.job import Job

from runs.engine import cancel_run
from runs.engine.enqueue import job_id, redis_connection, schedule_next
from runs.engine.outages import REDIS_ERRORS
from runs.models import Run, StepExecution
from tenants.audit import record_for
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import publish

logger = logging.getLogger(__name__)

KEEP, MOVE, CANCEL = "keep", "move", "cancel"
CHOICES = (KEEP, MOVE, CANCEL)


@dataclass
class Waiting:
    step: Step  # the live step
    runs: int  # runs with an open execution there
    target: Step | None  # the draft's step with the same key and kind, when there is one

    @property
    def key(self) -> str:
        return str(self.step.key)


def waiting_runs(live: WorkflowVersion | None, draft: WorkflowVersion) -> list[Waiting]:
    """Per live step with open executions of real runs: how many runs wait there (tree order)."""
    if live is None:
        return []
    counts = dict(_counts(live))
    if not counts:
        return []
    targets = {(str(s.key), s.kind): s for s in draft.steps.all()}
    steps = Step.objects.filter(pk__in=counts).order_by("position", "id")
    return [Waiting(step, counts[step.pk], targets.get((str(step.key), step.kind))) for step in steps]


def _counts(live: WorkflowVersion) -> list[tuple[int, int]]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT e.step_id, count(DISTINCT e.run_id) FROM runs_stepexecution e"
            " JOIN runs_run r ON r.id = e.run_id"
            " WHERE r.version_id = %s AND NOT r.is_test AND e.status IN ('pending', 'running')"
            " GROUP BY e.step_id",
            [live.pk],
        )
        return cur.fetchall()


LOCK_SQL = """
SELECT e.id, e.run_id, e.step_id, e.status FROM runs_stepexecution e
WHERE e.run_id IN (
    SELECT DISTINCT o.run_id FROM runs_stepexecution o JOIN runs_run r ON r.id = o.run_id
    WHERE r.version_id = %(old)s AND NOT r.is_test AND o.status = 'pending' AND o.step_id = ANY(%(steps)s)
) AND e.status IN ('pending', 'running')
ORDER BY e.id
FOR UPDATE OF e
"""

MOVE_RUNS_SQL = """
UPDATE runs_run SET version_id = %(new)s
WHERE id = ANY(%(runs)s) AND version_id = %(old)s AND status IN ('pending', 'running')
RETURNING id
"""

MOVE_EXECUTIONS_SQL = """
UPDATE runs_stepexecution e SET step_id = m.new_step
FROM (SELECT unnest(%(olds)s::bigint[]) AS old_step, unnest(%(news)s::bigint[]) AS new_step) m
WHERE e.run_id = ANY(%(runs)s) AND e.status = 'pending' AND e.step_id = m.old_step
RETURNING e.id, e.run_id, e.step_id, e.attempts
"""


def move_runs(old: WorkflowVersion, new: WorkflowVersion, steps: list[Step]) -> dict[int, int]:
    """Move the runs waiting at `steps` (live steps) to `new` at the steps with the same keys; {live
    step id: runs moved from it}. Runs that cannot move whole stay on `old`."""
    targets = {(str(s.key), s.kind): s.pk for s in new.steps.all()}
    mapping = {s.pk: targets[(str(s.key), s.kind)] for s in steps if (str(s.key), s.kind) in targets}
    if not mapping:
        return {}
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(LOCK_SQL, {"old": old.pk, "steps": list(mapping)})
        by_run: dict[int, list[tuple[int, str]]] = {}
        for _id, run_id, step_id, status in cur.fetchall():
            by_run.setdefault(run_id, []).append((step_id, status))
        whole = [
            run_id
            for run_id, open_rows in by_run.items()
            if all(status == "pending" and step_id in mapping for step_id, status in open_rows)
        ]
        if not whole:
            return {}
        cur.execute(MOVE_RUNS_SQL, {"new": new.pk, "old": old.pk, "runs": whole})
        moved_runs = [row[0] for row in cur.fetchall()]
        cur.execute(
            MOVE_EXECUTIONS_SQL,
            {"olds": list(mapping), "news": list(mapping.values()), "runs": moved_runs},
        )
        moved = cur.fetchall()
        transaction.on_commit(lambda: _requeue(moved))
    back = {new_step: old_step for old_step, new_step in mapping.items()}
    per_step: dict[int, set[int]] = {}
    for _id, run_id, step_id, _attempts in moved:
        per_step.setdefault(back[step_id], set()).add(run_id)
    return {step_id: len(runs) for step_id, runs in per_step.items()}


def _requeue(moved: list[tuple[int, int, int, int]]) -> None:
    """Drop the jobs queued for the old steps (they would claim nothing and hold the job id) and queue
    the moved executions at their new step; with Redis away the sweeper queues them."""
    try:
        conn = redis_connection()
        for execution_id, _run, _step, attempts in moved:
            with contextlib.suppress(Exception):
                Job.fetch(job_id(execution_id, attempts + 1), connection=conn).delete()
        for run_id, step_id in {(run, step) for _e, run, step, _a in moved}:
            schedule_next(run_id, step_id)
    except REDIS_ERRORS as error:
        logger.warning("Could not queue the moved runs (Redis: %s); the sweeper will", error)


def cancel_waiting(old: WorkflowVersion, steps: list[Step]) -> int:
    """Cancel the real runs of `old` with an open execution at one of `steps`; how many were cancelled."""
    runs = Run.objects.filter(
        pk__in=StepExecution.objects.filter(
            step__in=steps, status__in=StepExecution.OPEN, run__is_test=False
        ).values("run_id"),
        version=old,
    ).exclude(status__in=Run.FINISHED)
    return sum(1 for run in runs if cancel_run(run))


def apply_choices(old: WorkflowVersion | None, new: WorkflowVersion, choices: dict[str, str]) -> list[dict]:
    """Apply {live step key: keep|move|cancel}; what was done, per step, for the audit log."""
    if old is None:
        return []
    steps = {str(s.key): s for s in old.steps.all()}
    chosen = {key: (steps[key], choice) for key, choice in choices.items() if key in steps and choice != KEEP}
    # Every step to move in one go: a run waiting at two moved steps moves whole.
    moved = move_runs(old, new, [step for step, choice in chosen.values() if choice == MOVE])
    done = []
    for key, (step, choice) in chosen.items():
        count = moved.get(step.pk, 0) if choice == MOVE else cancel_waiting(old, [step])
        done.append({"step": step.display_name, "key": key, "choice": choice, "runs": count})
    return done


def publish_previewed(
    request: Any,
    workflow: Workflow,
    *,
    token: str,
    sandbox: bool,
    choices: dict[str, str],
    user: Any = None,
) -> tuple[WorkflowVersion, list[dict]]:
    """Publish the draft a preview saw (its token), handle the runs in flight as chosen, and put both in
    the audit log: what the publish dialog and the REST API do alike. Raises StalePreview, PublishError."""
    previous = workflow.published_version
    version = publish(workflow, user=user, sandbox=sandbox, preview_token=token)
    in_flight = apply_choices(previous, version, choices)
    record_for(
        request,
        "workflow.published",
        workflow,
        version=version.number,
        sandbox=version.sandbox,
        preview_token=token[:12],
        in_flight=in_flight,
    )
    return version, in_flight
