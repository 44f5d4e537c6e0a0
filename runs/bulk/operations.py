"""Bulk retry and cancel as one named operation, worked through in the background in batches.

- `start_operation(tenant, flt, actor=..., idempotency_key="")` -> (operation, created): counts what the
  filter matches (the dry run), stores the operation with an audit event, and queues its first batch.
  A double submit makes one operation: the same idempotency key, or the same action and filter while the
  first is unfinished, answers the existing one (created False); the database's unique constraints decide
  when two arrive together.
- `run_batch(operation_id)`: one batch of BATCH_SIZE, under a lock on the operation's row (a duplicate job
  waits for nothing: it skips), in one transaction with the operation's progress; then the next batch is
  queued, or the operation is done (and audited).
- A retry acts through `retry_unless_sent`: only an execution still `failed`, and only when its message
  (the Delivery row, the ledger) is absent or `failed`; a message sent, being sent, uncertain, held or
  captured is never sent again, whatever the execution's state says. Then the single retry's own
  `retry_execution` does the rest.
- A cancel acts through the single cancel's `cancel_run`, run by run.
- `resume_stalled()`: the sweep re-queues unfinished operations whose job was lost (Redis down when it was
  queued, a worker killed mid-batch: the batch's transaction rolled back, so the batch is done again).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from typing import Any

import django_rq
from django.db import IntegrityError, transaction
from django.db.models import F, Max

from integrations import clock
from runs.bulk.filters import (
    Action,
    BadFilter,
    BulkFilter,
    counts_in_words,
    dry_run,
    matching_executions,
    parse_filter,
)
from runs.engine import cancel_run, retry_execution
from runs.engine.outages import REDIS_ERRORS
from runs.models import BulkOperation, Delivery, Run, StepExecution
from tenants.audit import actor_label, record
from tenants.models import Tenant

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
QUEUE = "low"
JOB = "runs.jobs.bulk_batch"
# An unfinished operation with no batch for this long has lost its job: the sweep queues it again.
STALLED_AFTER = timedelta(minutes=2)


class KeyReused(ValueError):
    """The idempotency key already named a different operation."""


def start_operation(
    tenant: Tenant, flt: BulkFilter, *, actor: Any, idempotency_key: str = "", via: str | None = None
) -> tuple[BulkOperation, bool]:
    existing = find_existing(tenant, flt, idempotency_key)
    if existing is not None:
        return existing, False
    counts = dry_run(tenant, flt)
    upto = matching_executions(tenant, flt).aggregate(last=Max("id"))["last"] or 0
    total = counts["executions"] if flt.action == Action.RETRY else counts["runs"]
    verb = "Retry" if flt.action == Action.RETRY else "Cancel"
    now = clock.now()
    try:
        with transaction.atomic():
            operation = BulkOperation.objects.create(
                tenant=tenant,
                name=f"{verb} {counts_in_words(flt.action, counts)} ({flt.describe()})"[:300],
                action=flt.action,
                filters=flt.as_json(),
                filter_digest=flt.digest(),
                idempotency_key=idempotency_key,
                created_by=actor_name(actor),
                created_at=now,
                progressed_at=now,
                counted=counts,
                last_execution_id=upto,
                total=total or 0,
            )
            record(
                tenant,
                actor,
                f"bulk.{flt.action}",
                operation,
                via=via,
                filters=flt.as_json(),
                counted=counts,
            )
            transaction.on_commit(lambda: enqueue(operation.pk, 0))
    except IntegrityError:
        # The other of two simultaneous submits won: answer its operation.
        existing = find_existing(tenant, flt, idempotency_key)
        if existing is None:
            raise
        return existing, False
    return operation, True


def find_existing(tenant: Tenant, flt: BulkFilter, idempotency_key: str) -> BulkOperation | None:
    operations = BulkOperation.objects.filter(tenant=tenant)
    if idempotency_key:
        same_key = operations.filter(idempotency_key=idempotency_key).first()
        if same_key is not None:
            if (same_key.action, same_key.filter_digest) != (flt.action, flt.digest()):
                raise KeyReused(
                    f"This idempotency key already started operation {same_key.pk} with another filter."
                )
            return same_key
    return operations.filter(
        action=flt.action, filter_digest=flt.digest(), status__in=BulkOperation.UNFINISHED
    ).first()


def actor_name(actor: Any) -> str:
    return actor_label(actor)[:200]


def enqueue(operation_id: int, cursor: int) -> None:
    """Queue the batch after `cursor`; a lost enqueue (Redis down) is picked up by `resume_stalled`."""
    try:
        django_rq.get_queue(QUEUE).enqueue(
            JOB, operation_id, job_id=f"bulk-{operation_id}-{cursor}", result_ttl=0, failure_ttl=86400
        )
    except REDIS_ERRORS as exc:
        logger.warning(
            "Bulk operation %s: batch not queued (%s); the sweep queues it again", operation_id, exc
        )


def run_batch(operation_id: int) -> bool:
    """Do the operation's next batch; True when there is more to do (the next batch is queued)."""
    with transaction.atomic():
        operation = (
            BulkOperation.objects.select_for_update(skip_locked=True)
            .filter(pk=operation_id, status__in=BulkOperation.UNFINISHED)
            .first()
        )
        if operation is None:
            return False  # finished, or another job holds this batch
        tenant = Tenant.objects.get(pk=operation.tenant_id)
        flt = stored_filter(tenant, operation)
        if operation.action == Action.RETRY:
            ids, outcomes = retry_batch(tenant, flt, operation)
        else:
            ids, outcomes = cancel_batch(tenant, flt, operation)
        more = len(ids) == BATCH_SIZE
        save_progress(operation, ids, outcomes, more)
        if more:
            cursor = ids[-1]
            transaction.on_commit(lambda: enqueue(operation_id, cursor))
    return more


def stored_filter(tenant: Tenant, operation: BulkOperation) -> BulkFilter:
    """The stored filter, parsed again (its workflow or step may be gone: then it matches nothing)."""
    try:
        return parse_filter(tenant, operation.action, operation.filters)
    except BadFilter:
        return BulkFilter(operation.action, workflow=-1, state=operation.filters.get("state") or "failed")


class Outcome(StrEnum):
    ACTED = "acted"
    SENT = "skipped_sent"
    CHANGED = "skipped_changed"


def retry_batch(tenant: Tenant, flt: BulkFilter, operation: BulkOperation) -> tuple[list[int], list[Outcome]]:
    executions = matching_executions(tenant, flt).filter(
        pk__gt=operation.cursor, pk__lte=operation.last_execution_id
    )
    ids = list(executions.order_by("pk").values_list("pk", flat=True)[:BATCH_SIZE])
    return ids, [retry_unless_sent(pk) for pk in ids]


def retry_unless_sent(execution_id: int) -> Outcome:
    """Retry a failed execution unless its message was sent (or may have been), as the ledger says.

    The execution and its Delivery are locked first, so a message cannot be marked sent between the check
    and the retry (a release or a "mark as sent" waits for this transaction)."""
    with transaction.atomic():
        execution = StepExecution.objects.select_for_update().filter(pk=execution_id).first()
        if execution is None or execution.status != StepExecution.Status.FAILED:
            return Outcome.CHANGED
        message = Delivery.objects.select_for_update().filter(step_execution_id=execution_id).first()
        if message is not None and message.status != Delivery.Status.FAILED:
            return Outcome.SENT
        return Outcome.ACTED if retry_execution(execution) else Outcome.CHANGED


def cancel_batch(
    tenant: Tenant, flt: BulkFilter, operation: BulkOperation
) -> tuple[list[int], list[Outcome]]:
    executions = matching_executions(tenant, flt).filter(
        run_id__gt=operation.cursor, pk__lte=operation.last_execution_id
    )
    ids = list(executions.order_by("run_id").values_list("run_id", flat=True).distinct()[:BATCH_SIZE])
    return ids, [cancel_unless_finished(run) for run in Run.objects.filter(pk__in=ids).order_by("pk")]


def cancel_unless_finished(run: Run) -> Outcome:
    if run.status in Run.FINISHED:
        return Outcome.CHANGED
    cancel_run(run)  # a conditional update: a run that finished meanwhile stays as it finished
    return Outcome.ACTED if run.status == Run.Status.CANCELLED else Outcome.CHANGED


def save_progress(operation: BulkOperation, ids: list[int], outcomes: list[Outcome], more: bool) -> None:
    now = clock.now()
    changes: dict[str, Any] = {
        "processed": F("processed") + len(ids),
        "progressed_at": now,
        "status": BulkOperation.Status.RUNNING,
        "started_at": operation.started_at or now,
    }
    for outcome in Outcome:
        changes[outcome.value] = F(outcome.value) + sum(1 for o in outcomes if o is outcome)
    if ids:
        changes["cursor"] = ids[-1]
    BulkOperation.objects.filter(pk=operation.pk).update(**changes)
    if not more:
        finish(operation)


def finish(operation: BulkOperation) -> None:
    """Done: what matched at the start but no longer did when its batch came counts as changed."""
    operation.refresh_from_db()
    missing = max(0, operation.total - operation.processed)
    operation.skipped_changed += missing
    operation.processed += missing
    operation.status = BulkOperation.Status.DONE
    operation.finished_at = clock.now()
    operation.save(update_fields=["skipped_changed", "processed", "status", "finished_at"])
    record(
        operation.tenant,
        None,
        "bulk.finished",
        operation,
        acted=operation.acted,
        skipped_sent=operation.skipped_sent,
        skipped_changed=operation.skipped_changed,
    )


def resume_stalled() -> int:
    """Queue again the unfinished operations that made no progress for STALLED_AFTER."""
    stalled = BulkOperation.objects.filter(
        status__in=BulkOperation.UNFINISHED, progressed_at__lt=clock.now() - STALLED_AFTER
    ).values_list("pk", "cursor")
    count = 0
    for pk, cursor in stalled:
        enqueue(pk, cursor)
        count += 1
    return count
