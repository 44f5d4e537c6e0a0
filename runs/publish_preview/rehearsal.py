"""Rehearsing events on a version: each event becomes a test run of that version, run here.

A test run goes through the engine's own code: the same claims, steps and Delivery protocol as a real
run, with the send path's checks (suppression, unsubscribes, frequency budget) applied and its
messages stored as `captured` instead of handed to a provider; waits are skipped. The runs are not put
on the queue (`start_runs(queue=False)`): this job runs their batches itself, so a preview of 1,000
events never sits in front of real work. What a step could not finish in time (a slow query retrying
with backoff) is left open and cancelled when the rehearsal stops; the runs are deleted once read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from integrations import clock
from runs.engine import start_runs
from runs.engine.context import shared_query_connections
from runs.engine.executor import run_batch
from runs.models import Run, StepExecution
from runs.publish_preview.events import Event
from workflows.models import Workflow, WorkflowVersion

START_CHUNK = 50


class OutOfTime(Exception):
    """The preview's time ran out before every event was rehearsed."""

    reached: dict[str, dict[int, int]] = {}


def rehearse(
    workflow: Workflow,
    versions: dict[str, WorkflowVersion],
    events: list[Event],
    *,
    tag: str,
    deadline: float,
    progress: Callable[[int], None] = lambda done: None,
) -> dict[str, dict[int, int]]:
    """{side: {source run id: rehearsal run id}} for each of `versions` ({"before": live, "after":
    draft}). Chunk by chunk, each chunk on every version, so that running out of time (OutOfTime, with
    what was reached in `.reached`) still leaves events rehearsed on both."""
    runs: dict[str, dict[int, int]] = {side: {} for side in versions}
    with shared_query_connections():
        _rehearse_chunks(workflow, versions, events, runs, tag, deadline, progress)
    return runs


def _rehearse_chunks(workflow, versions, events, runs, tag, deadline, progress) -> None:
    for start in range(0, len(events), START_CHUNK):
        chunk = events[start : start + START_CHUNK]
        for side, version in versions.items():
            started = start_runs(
                workflow,
                [(event.payload, f"{tag}:{side}:{event.run_id}") for event in chunk],
                version=version,
                is_test=True,
                options={"skip_waits": True, "preview": tag},
                queue=False,
            )
            runs[side].update({event.run_id: run.pk for event, run in zip(chunk, started, strict=True)})
            try:
                drive([run.pk for run in started], deadline)
            except OutOfTime as exc:
                exc.reached = runs
                raise
            progress(sum(len(r) for r in runs.values()))


def drive(run_ids: list[int], deadline: float) -> None:
    """Run the due batches of these runs until none is due (run_batch follows a run's small steps in
    the same call, so one pass usually finishes an event); OutOfTime past the deadline.

    PUBLISH_PREVIEW_THREADS threads share a pass, each with its own database and data source
    connections (the work waits on PostgreSQL, not on Python); the default of 2 leaves the tenant's
    other batch slots (ENGINE_TENANT_CONCURRENCY) to real work. Inside a transaction (a caller's atomic
    block) other threads could not see its rows, so the pass runs here."""
    threads = 1 if connection.in_atomic_block else max(1, settings.PUBLISH_PREVIEW_THREADS)
    while True:
        due = list(
            StepExecution.objects.filter(
                run_id__in=run_ids, status=StepExecution.Status.PENDING, next_attempt_at__lte=clock.now()
            )
            .values_list("run_id", "step_id")
            .distinct()
        )
        if not due:
            return
        if threads == 1 or len(due) == 1:
            ran = _run_slice(due, deadline)
        else:
            slices = [due[i::threads] for i in range(threads)]
            with ThreadPoolExecutor(max_workers=threads) as pool:
                ran = sum(pool.map(lambda part: _in_thread(part, deadline), slices))
        if not ran:
            # Due but nothing claimed: the tenant is at its concurrency limit (run_batch deferred) or
            # another worker holds them. Wait a moment rather than spin.
            if time.monotonic() > deadline:
                raise OutOfTime
            time.sleep(0.2)


def _run_slice(due: list[tuple[int, int]], deadline: float) -> int:
    ran = 0
    for run_id, step_id in due:
        if time.monotonic() > deadline:
            raise OutOfTime
        ran += run_batch(run_id, step_id)
    return ran


def _in_thread(due: list[tuple[int, int]], deadline: float) -> int:
    """A slice of a pass in a pool thread: its own data source connections, its database connection
    closed when done."""
    try:
        with shared_query_connections():
            return _run_slice(due, deadline)
    finally:
        connection.close()


def discard(tag: str, workflow: Workflow) -> None:
    """Delete a preview's rehearsal runs (their executions and captured messages go with them)."""
    Run.objects.filter(workflow=workflow, is_test=True, event_key__startswith=f"{tag}:").delete()


def reached(events: list[Event], runs: dict[str, dict[int, int]]) -> list[Event]:
    """The events whose runs began on every version (the trigger step was tried): a comparison of
    those says something; runs never started before the time ran out say nothing."""
    ids = [pk for side in runs.values() for pk in side.values()]
    untried = set(
        StepExecution.objects.filter(run_id__in=ids, step__parent__isnull=True, attempts=0).values_list(
            "run_id", flat=True
        )
    )
    return [
        e for e in events if all(e.run_id in side and side[e.run_id] not in untried for side in runs.values())
    ]


def unfinished(run_ids: list[int]) -> list[dict]:
    """The steps where rehearsal runs stopped without finishing (a query retrying after a timeout),
    with how many items and the last error, so the page can say why."""
    open_rows = StepExecution.objects.filter(run_id__in=run_ids, status__in=StepExecution.OPEN).values_list(
        "step__name", "step__kind", "error"
    )
    found: dict[str, dict] = {}
    for name, kind, error in open_rows:
        entry = found.setdefault(name or kind, {"step": name or kind, "count": 0, "error": ""})
        entry["count"] += 1
        entry["error"] = entry["error"] or error
    return [entry for entry in found.values() if entry["error"]]
