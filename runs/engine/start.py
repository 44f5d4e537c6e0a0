"""Starting a run: one event, one run, however often the event is delivered."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from runs.models import Run, StepExecution
from workflows.models import Workflow, WorkflowVersion


class WorkflowNotPublished(Exception):
    pass


def start_run(
    workflow: Workflow,
    payload: dict[str, Any],
    event_key: str,
    *,
    version: WorkflowVersion | None = None,
    is_test: bool = False,
) -> Run:
    """Create the run for this event (or return the one that exists) with the trigger's execution."""
    version = version or workflow.published_version
    if version is None:
        raise WorkflowNotPublished(f"“{workflow}” is not published, so events cannot start it.")
    with transaction.atomic():
        Run.objects.bulk_create(
            [
                Run(
                    tenant_id=workflow.tenant_id,
                    workflow=workflow,
                    version=version,
                    event_key=event_key,
                    payload=payload,
                    is_test=is_test,
                )
            ],
            ignore_conflicts=True,
        )
        run = Run.objects.get(workflow=workflow, event_key=event_key)
        root = version.root_step()
        StepExecution.objects.bulk_create(
            [
                StepExecution(
                    tenant_id=run.tenant_id,
                    run=run,
                    step=root,
                    item_key="0",
                    input=payload,
                    status=StepExecution.Status.PENDING,
                )
            ],
            ignore_conflicts=True,
        )
    return run
