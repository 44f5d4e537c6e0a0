"""Starting runs: one event, one run, however often the event is delivered.

`start_run(workflow, payload, event_key, *, version=None, is_test=False, options=None) -> Run` and
`start_runs(workflow, [(payload, event_key), ...]) -> list[Run]` (the listener's batch form) create the
run(s) and the trigger's execution with inserts that ignore conflicts (UNIQUE(workflow, event_key)),
then queue the first batch once the transaction commits. Calling either again with the same event
key returns the existing run and queues nothing new that could run twice.

`options` (test runs): {"skip_waits": true} makes waits due at once; {"override_recipient": "a@b.c"}
sends a test run's emails to that address instead of capturing them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from integrations import clock
from runs.engine.cancel_keys import render_cancel_key
from runs.engine.enqueue import enqueue_batch
from runs.engine.labels import run_label
from runs.models import Run, StepExecution
from runs.search_values import record_search_values
from workflows.models import Workflow, WorkflowVersion
from workflows.steps.search_fields import declared_search_fields


class WorkflowNotPublished(Exception):
    pass


def start_run(
    workflow: Workflow,
    payload: dict[str, Any],
    event_key: str,
    *,
    version: WorkflowVersion | None = None,
    is_test: bool = False,
    options: dict[str, Any] | None = None,
) -> Run:
    """Create the run for this event (or return the one that exists) and queue its trigger step."""
    return start_runs(workflow, [(payload, event_key)], version=version, is_test=is_test, options=options)[0]


def start_runs(
    workflow: Workflow,
    events: Iterable[tuple[dict[str, Any], str]],
    *,
    version: WorkflowVersion | None = None,
    is_test: bool = False,
    options: dict[str, Any] | None = None,
    queue: bool = True,
) -> list[Run]:
    """Start one run per (payload, event_key), in a few statements whatever the number of events.

    `queue=False` queues no job: the caller runs the roots itself (the publish preview runs its own
    rehearsal runs in its job, so that it never sits in front of real work on the queue)."""
    version = version or workflow.published_version
    if version is None:
        raise WorkflowNotPublished(f"“{workflow}” is not published, so events cannot start it.")
    events = list(events)
    keys = [str(key)[:255] for _payload, key in events]
    root = version.root_step()
    if root is None:
        raise WorkflowNotPublished(f"“{workflow}” has no trigger step.")
    now = clock.now()
    template = (root.config or {}).get("run_label") or ""
    cancel_template = (root.config or {}).get("cancel_key") or ""
    with transaction.atomic():
        Run.objects.bulk_create(
            [
                Run(
                    tenant_id=workflow.tenant_id,
                    workflow=workflow,
                    version=version,
                    event_key=key,
                    label=run_label(template, payload),
                    cancel_key=render_cancel_key(cancel_template, payload),
                    payload=payload,
                    is_test=is_test,
                    options=options or {},
                )
                for (payload, _key), key in zip(events, keys, strict=True)
            ],
            ignore_conflicts=True,
        )
        runs = {run.event_key: run for run in Run.objects.filter(workflow=workflow, event_key__in=keys)}
        if not is_test:  # test runs are left out of the activity log, so out of its search too
            record_search_values(runs.values(), declared_search_fields(root.config))
        StepExecution.objects.bulk_create(
            [
                StepExecution(
                    tenant_id=run.tenant_id,
                    run=run,
                    step=root,
                    item_key="0",
                    input=run.payload,
                    next_attempt_at=now,
                )
                for run in runs.values()
            ],
            ignore_conflicts=True,
        )
        fresh = list(
            StepExecution.objects.filter(
                run__in=runs.values(), step=root, attempts=0, status=StepExecution.Status.PENDING
            ).values_list("id", "run_id")
        )
        if queue:
            transaction.on_commit(lambda: _queue_roots(root.pk, fresh))
    return [runs[key] for key in keys]


def _queue_roots(root_step_id: int, executions: list[tuple[int, int]]) -> None:
    for execution_id, run_id in executions:
        enqueue_batch(run_id, root_step_id, execution_id=execution_id, attempt=1)
