"""Emitting events: `run_finished` receives the engine's `runs.signals.run_finished`, sent inside the
transaction that closes or cancels a run.

The deliveries are written in that same transaction (a transactional outbox): a run never finishes without
its events, and no event is sent for a close that rolled back. Their jobs are queued once it commits.

Payload (the body POSTed, kept small; counts are by status):

    {"id": "evt_…", "type": "run.failed", "created_at": "…",
     "data": {"run": {"id", "workflow_id", "workflow_name", "version", "status", "event_key", "is_test",
                      "created_at", "finished_at", "executions": {"failed": 1, …}, "deliveries": {"sent": 2, …}}}}
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Subquery
from django.dispatch import receiver

from integrations import clock
from integrations.events import PING, run_event_type
from integrations.models import EventDelivery, EventEndpoint
from runs import signals
from runs.events.delivery import deliver, enqueue
from runs.models import Delivery, Run, StepExecution


@receiver(signals.run_finished, dispatch_uid="runs.events.emit.run_finished")
def run_finished(run_id: int, status: str, **signal_kwargs: Any) -> list[EventDelivery]:
    """Write the run's `run.<status>` event for each active endpoint of its tenant that subscribes to it.

    One query when no endpoint listens (the common case), never one per item. Test runs emit nothing: they
    rehearse a draft with its messages captured, and a program that reacts to `run.failed` should not react
    to someone trying a workflow out (the settings page's test event is there to try a receiver out).
    """
    event_type = run_event_type(status)
    live_run_tenant = Run.objects.filter(pk=run_id, is_test=False).values("tenant_id")
    endpoint_ids = list(
        EventEndpoint.objects.filter(
            tenant_id=Subquery(live_run_tenant), active=True, events__contains=[event_type]
        ).values_list("pk", flat=True)
    )
    if not endpoint_ids:
        return []
    run = Run.objects.select_related("workflow", "version").get(pk=run_id)
    deliveries = write_event(run.tenant_id, endpoint_ids, event_type, {"run": run_summary(run)})
    transaction.on_commit(lambda: queue_deliveries(deliveries))
    return deliveries


def send_test_event(endpoint: EventEndpoint) -> EventDelivery:
    """Send a `ping` to the endpoint now, in the caller's request, once (no retries); the delivery after."""
    data = {"endpoint": {"id": endpoint.pk, "url": endpoint.url, "events": endpoint.events}}
    (delivery,) = write_event(endpoint.tenant_id, [endpoint.pk], PING, data)
    deliver(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def write_event(
    tenant_id: int, endpoint_ids: list[int], event_type: str, data: dict[str, Any]
) -> list[EventDelivery]:
    """One event, due now, as one pending delivery per endpoint (the same event id for all of them)."""
    now = clock.now()
    payload: dict[str, Any] = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created_at": _iso(now),
        "data": data,
    }
    return EventDelivery.objects.bulk_create(
        EventDelivery(
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_type=event_type,
            event_id=payload["id"],
            payload=payload,
            next_attempt_at=now,
        )
        for endpoint_id in endpoint_ids
    )


def run_summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "workflow_id": run.workflow_id,
        "workflow_name": run.workflow.name,
        "version": run.version.number,
        "status": run.status,
        "event_key": run.event_key,
        "is_test": run.is_test,
        "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at),
        "executions": _count_by_status(StepExecution.objects.filter(run_id=run.pk)),
        "deliveries": _count_by_status(Delivery.objects.filter(run_id=run.pk)),
    }


def _count_by_status(queryset) -> dict[str, int]:
    rows = queryset.order_by().values_list("status").annotate(n=Count("pk"))
    return dict(sorted(rows))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def queue_deliveries(deliveries: list[EventDelivery]) -> None:
    """Queue each delivery's first attempt (call it once the transaction that wrote them commits)."""
    for delivery in deliveries:
        enqueue(delivery.pk, attempt=1)
