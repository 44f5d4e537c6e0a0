"""RQ jobs. They carry ids only; what they do is decided by rows in PostgreSQL (see runs/engine/)."""

from __future__ import annotations

from rq import get_current_job

from integrations import clock
from runs.bulk import resume_stalled
from runs.bulk import run_batch as bulk_run_batch
from runs.engine.executor import run_batch as execute
from runs.engine.sweeper import sweep as do_sweep
from runs.events.delivery import prune_finished_deliveries
from runs.retention import PruneReport, RetentionGroup, prune_runs, retention_plan
from workflows.steps.pacing_housekeeping import prune_pacing_counters


def run_batch(run_id: int, step_id: int, lane: int = 0) -> int:
    """Claim and run the due executions of one run's step (a duplicate job finds nothing and returns 0)."""
    job = get_current_job()
    queue = job.origin if job is not None else "default"
    return execute(run_id, step_id, lane=lane, queue=queue)


def sweep() -> dict:
    """The recovery sweep as a job (for RQ's cron); `manage.py sweeper` runs the same in a loop."""
    return {**do_sweep().as_dict(), "bulk_resumed": resume_stalled()}


def bulk_batch(operation_id: int) -> bool:
    """One batch of a bulk retry or cancel (runs/bulk/operations.py); it queues the next itself."""
    return bulk_run_batch(operation_id)


def prune() -> dict:
    """Retention as a job (RQ's cron, hourly): expired runs and event deliveries, each tenant by its own
    retention (tenants/limits.py), nothing of them while no tenant's retention is on; and always the
    pacing counters no window can read any more (throttle slots, frequency-budget counts)."""
    pruned = prune_by_plan(retention_plan())
    counters = {name: n for name, n in prune_pacing_counters(clock.now()).items() if n}
    return {**pruned, **counters}


def prune_by_plan(plan: list[RetentionGroup], budget: float = 30.0) -> dict:
    """Each group's expired runs and event deliveries, in one report; {} for an empty plan."""
    if not plan:
        return {}
    report, events = PruneReport(), 0
    for group in plan:
        prune_runs(group.cutoff, budget=budget, tenants=group.tenants, report=report)
        events += prune_finished_deliveries(group.cutoff, group.tenants.only, group.tenants.skip)
    return {**report.as_dict(), "event_deliveries": events}
