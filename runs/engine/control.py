"""What people and operators do to runs: cancel, retry a failed execution, replay a run.

- `cancel_run(run) -> int`: marks the run `cancelled` and every pending or running execution
  `cancelled` (a running batch finishes its current message but settles nothing and starts no
  children). Returns how many executions were cancelled.
- `retry_execution(execution) -> bool`: a `failed` execution becomes `pending` again, due now, with
  its attempt count kept; the run reopens. An `uncertain` or `failed` Delivery of it is reset to
  `failed`, which the next attempt sends: retrying is the person's decision that a resend is wanted.
- `replay_run(run, *, is_test=None, version=None) -> Run`: a new run with the same payload and options,
  under the event key `<key>:replay:<n>`, on `version` (default: the run's own version; the activity
  log passes the workflow's current published version).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from integrations import clock
from runs import signals
from runs.engine.enqueue import enqueue_batch
from runs.engine.start import start_run
from runs.models import Delivery, Run, StepExecution
from workflows.models import WorkflowVersion


def cancel_run(run: Run) -> int:
    now = clock.now()
    with transaction.atomic():
        updated = (
            Run.objects.filter(pk=run.pk)
            .exclude(status__in=Run.FINISHED)
            .update(status=Run.Status.CANCELLED, finished_at=now)
        )
        if not updated:
            return 0
        count = StepExecution.objects.filter(run_id=run.pk, status__in=StepExecution.OPEN).update(
            status=StepExecution.Status.CANCELLED, finished_at=now
        )
        signals.run_finished.send(Run, run_id=run.pk, status=Run.Status.CANCELLED)
    run.refresh_from_db()
    return count


def retry_execution(execution: StepExecution) -> bool:
    now = clock.now()
    with transaction.atomic():
        reopened = StepExecution.objects.filter(pk=execution.pk, status=StepExecution.Status.FAILED).update(
            status=StepExecution.Status.PENDING, next_attempt_at=now, finished_at=None
        )
        if not reopened:
            return False
        Delivery.objects.filter(
            Q(status=Delivery.Status.UNCERTAIN) | Q(status=Delivery.Status.FAILED),
            step_execution_id=execution.pk,
        ).update(status=Delivery.Status.FAILED)
        Run.objects.filter(pk=execution.run_id).exclude(status=Run.Status.CANCELLED).update(
            status=Run.Status.RUNNING, finished_at=None
        )
        execution.refresh_from_db()
        transaction.on_commit(
            lambda: enqueue_batch(
                execution.run_id, execution.step_id, execution_id=execution.pk, attempt=execution.attempts + 1
            )
        )
    return True


def replay_run(run: Run, *, is_test: bool | None = None, version: WorkflowVersion | None = None) -> Run:
    base = f"{run.event_key}:replay:"
    number = Run.objects.filter(workflow_id=run.workflow_id, event_key__startswith=base).count() + 1
    return start_run(
        run.workflow,
        run.payload,
        f"{base}{number}"[-255:],
        version=version or run.version,
        is_test=run.is_test if is_test is None else is_test,
        options=run.options,
    )
