"""Delivery events after the hand-off: what a provider's tracking webhook reported, stored against the message.

`record_events(provider, events)` takes the channel-neutral events a provider's kind read from its own
webhook (`integrations.providers.tracking.TrackingEvent`, runs/provider_tracking.py; email's ESPs through
anymail) and stores each one against the Delivery whose `provider_id` is the event's message id and which
that provider sent (`Delivery.sent_via`), whatever its channel: a webhook never reports on another
provider's messages. An event for a message Rowbell does not know (another system's messages on the same
provider account, another provider's, or one already pruned) and an event it already has (the provider
retrying, a replay) are ignored. Each new event is emitted to the tenant's event
webhooks as `message.<kind>` in the same transaction (the outbox of runs/events/emit.py).
A new hard bounce or complaint also puts its recipient on the tenant's suppression list of the message's
channel (`consent.suppression.suppress_address`, keyed by channel and address, reason `hard_bounce` or
`complaint`, with the provider's words and the message), so that no step sends to that address again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction

from consent.models import Suppression
from consent.suppression import suppress_address
from integrations import clock
from integrations.channels.registry import CHANNELS
from integrations.models import EventEndpoint
from integrations.providers.tracking import TrackingEvent
from runs.events.emit import queue_deliveries, write_event
from runs.models import Delivery, DeliveryEvent
from workflows.steps import STEP_KINDS

# The event kinds Rowbell keeps (integrations/providers/tracking.py EVENT_KINDS; anymail's queued,
# autoresponded, inbound... are not about delivery).
KINDS = {
    "sent": DeliveryEvent.Kind.SENT,
    "delivered": DeliveryEvent.Kind.DELIVERED,
    "deferred": DeliveryEvent.Kind.DEFERRED,
    "bounced": DeliveryEvent.Kind.BOUNCED,
    "complained": DeliveryEvent.Kind.COMPLAINED,
    "opened": DeliveryEvent.Kind.OPENED,
    "clicked": DeliveryEvent.Kind.CLICKED,
    "rejected": DeliveryEvent.Kind.REJECTED,
    "failed": DeliveryEvent.Kind.FAILED,
    "unsubscribed": DeliveryEvent.Kind.UNSUBSCRIBED,
}
# The kinds outbound event webhooks announce (integrations/events/__init__.py lists them).
ANNOUNCED = {"delivered", "deferred", "bounced", "complained", "opened", "clicked", "rejected"}
# What the message page and the per-step counts show, in this order.
COUNTED = ("sent", "delivered", "bounced", "complained", "opened", "clicked")


@dataclass
class Outcome:
    stored: int = 0
    unknown: int = 0
    duplicate: int = 0
    ignored: int = 0


def record_events(provider, events: list[TrackingEvent]) -> Outcome:
    outcome = Outcome()
    for event in events:
        kind = KINDS.get(event.kind)
        message_id = event.message_id.strip()
        if kind is None or not message_id:
            outcome.ignored += 1
            continue
        delivery = _find_delivery(provider, message_id)
        if delivery is None:
            outcome.unknown += 1
            continue
        if _store(provider, delivery, _fields(event, kind)):
            outcome.stored += 1
        else:
            outcome.duplicate += 1
    return outcome


def _find_delivery(provider, message_id: str) -> Delivery | None:
    """The message `provider` itself sent with that id: another provider's webhook (or another tenant's)
    never reports on it, whatever id it names. (Email's ids may come with or without angle brackets.)"""
    bare = message_id.strip("<>")
    candidates = {message_id, bare, f"<{bare}>"}
    return (
        Delivery.objects.filter(tenant_id=provider.tenant_id, sent_via=provider, provider_id__in=candidates)
        .order_by("-pk")
        .first()
    )


def _fields(event: TrackingEvent, kind: str) -> dict[str, Any]:
    occurred = event.occurred_at or clock.now()
    recipient = event.recipient[:500]
    click_url = event.click_url
    key = event.event_id or _digest(kind, occurred.isoformat(), recipient, click_url)
    return {
        "kind": kind,
        # A bounce is hard unless the provider says soft; a rejection is hard only when the provider refuses
        # the address itself for good (TrackingEvent.bounce).
        "bounce": _permanence(event, kind),
        # One provider event can name several recipients (SES): each is its own row.
        "event_key": f"{kind}:{key}:{recipient}"[:200],
        "occurred_at": occurred,
        "recipient": recipient,
        "description": event.description[:2000],
        "mta_response": event.mta_response[:2000],
        "click_url": click_url[:2000],
    }


def _permanence(event: TrackingEvent, kind: str) -> str:
    if kind == DeliveryEvent.Kind.BOUNCED:
        return event.bounce or "hard"
    return "hard" if kind == DeliveryEvent.Kind.REJECTED and event.bounce == "hard" else ""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _store(provider, delivery: Delivery, fields: dict[str, Any]) -> bool:
    """True when the event is new (and then announced); False when it was already stored."""
    try:
        with transaction.atomic():
            event = DeliveryEvent.objects.create(
                tenant_id=delivery.tenant_id, delivery=delivery, provider=provider, **fields
            )
            if event.kind in ANNOUNCED and not delivery.run.is_test:
                announce(delivery, event)
            suppress_if_undeliverable(delivery, event)
    except IntegrityError:
        return False
    return True


def suppress_if_undeliverable(delivery: Delivery, event: DeliveryEvent) -> None:
    """A hard bounce, a complaint, or a rejection of the address itself: the address goes on the
    suppression list (a soft bounce, or a rejection for another reason, does not)."""
    if event.kind == DeliveryEvent.Kind.BOUNCED and event.bounce == "hard":
        reason = Suppression.Reason.HARD_BOUNCE
    elif event.kind == DeliveryEvent.Kind.REJECTED and event.bounce == "hard":
        reason = Suppression.Reason.REJECTED  # the ESP refuses the address for good
    elif event.kind == DeliveryEvent.Kind.COMPLAINED:
        reason = Suppression.Reason.COMPLAINT
    else:
        return
    suppress_address(
        delivery.tenant_id,
        event.recipient or delivery.recipient,
        reason,
        delivery=delivery,
        source=Suppression.Source.EVENT,
        detail=event.mta_response or event.description,
        channel=delivery.channel,
    )


def announce(delivery: Delivery, event: DeliveryEvent) -> None:
    """Write `message.<kind>` for each subscribed endpoint (queued when the transaction commits)."""
    event_type = f"message.{event.kind}"
    endpoint_ids = list(
        EventEndpoint.objects.filter(
            tenant_id=delivery.tenant_id, active=True, events__contains=[event_type]
        ).values_list("pk", flat=True)
    )
    if not endpoint_ids:
        return
    data = {
        "message": {
            "id": delivery.pk,
            "run_id": delivery.run_id,
            "recipient": delivery.recipient,
            "provider_id": delivery.provider_id,
        },
        "event": {
            "kind": event.kind,
            "bounce": event.bounce or None,
            "occurred_at": event.occurred_at.isoformat(),
            "recipient": event.recipient,
            "description": event.description,
            "mta_response": event.mta_response,
            "click_url": event.click_url or None,
        },
    }
    deliveries = write_event(delivery.tenant_id, endpoint_ids, event_type, data)
    transaction.on_commit(lambda: queue_deliveries(deliveries))


def tracked_channels() -> list[str]:
    """The channels whose providers report on messages after the hand-off (their tracking webhooks)."""
    return [name for name, channel in CHANNELS.items() if channel.reports_events]


# A workflow's messages (on channels that report events) of the last TRACKING_DAYS, per step, in one statement. The window's messages
# come through `delivery_tenant_recent` (tenant, created_at); their runs and their tracking events are each
# read as one range of primary keys (ids grow with time, so the ranges hold little besides the window's
# rows, and the joins keep only the window's own). The all-time version joined every message and event of
# the workflow: 7–9 s at a million executions.
TRACKING_DAYS = 7
COUNTS_SQL = """
WITH messages AS MATERIALIZED (
    SELECT d.id, d.run_id, d.step_execution_id, d.status
    FROM runs_delivery d
    WHERE d.tenant_id = %(tenant)s AND d.created_at >= %(start)s AND d.channel = ANY(%(channels)s)
), bounds AS (
    SELECT min(id) AS first_id, max(id) AS last_id, min(run_id) AS first_run, max(run_id) AS last_run
    FROM messages
), workflow_runs AS (
    SELECT r.id FROM runs_run r, bounds b
    WHERE r.id BETWEEN b.first_run AND b.last_run
      AND r.tenant_id = %(tenant)s AND r.workflow_id = %(workflow)s AND NOT r.is_test
), tracked AS (
    SELECT e.delivery_id, bool_or(e.kind = 'delivered') AS delivered, bool_or(e.kind = 'bounced') AS bounced,
           bool_or(e.kind = 'complained') AS complained, bool_or(e.kind = 'opened') AS opened,
           bool_or(e.kind = 'clicked') AS clicked
    FROM runs_deliveryevent e, bounds b
    WHERE e.delivery_id BETWEEN b.first_id AND b.last_id
      AND e.kind IN ('delivered', 'bounced', 'complained', 'opened', 'clicked')
    GROUP BY e.delivery_id
), per_step AS (
    SELECT x.step_id, count(*) FILTER (WHERE m.status = 'sent') AS sent,
           count(*) FILTER (WHERE t.delivered) AS delivered, count(*) FILTER (WHERE t.bounced) AS bounced,
           count(*) FILTER (WHERE t.complained) AS complained, count(*) FILTER (WHERE t.opened) AS opened,
           count(*) FILTER (WHERE t.clicked) AS clicked
    FROM messages m
    JOIN workflow_runs r ON r.id = m.run_id
    JOIN runs_stepexecution x ON x.id = m.step_execution_id
    LEFT JOIN tracked t ON t.delivery_id = m.id
    GROUP BY x.step_id
)
SELECT s.key, s.name, s.kind, p.sent, p.delivered, p.bounced, p.complained, p.opened, p.clicked
FROM per_step p JOIN workflows_step s ON s.id = p.step_id
ORDER BY s.id
"""


def counts_for_workflow(tenant_id: int, workflow_id: int) -> list[dict[str, Any]]:
    """Per sending step of a workflow whose channel reports events (by its key, across versions), over the live runs' messages of the last
    TRACKING_DAYS: messages sent, and messages with at least one delivered / bounced / complained / opened /
    clicked event; a "total" row last when several."""
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "workflow": workflow_id,
        "start": clock.now() - timedelta(days=TRACKING_DAYS),
        "channels": tracked_channels(),
    }
    with connection.cursor() as cursor:
        cursor.execute(COUNTS_SQL, params)
        found = cursor.fetchall()
    rows: dict[Any, dict[str, Any]] = {}
    for key, name, kind, *counts in found:
        row = rows.setdefault(key, {"step": "", **dict.fromkeys(COUNTED, 0)})
        row["step"] = name or _label(kind)  # the newest version's name (rows come oldest step first)
        for column, n in zip(COUNTED, counts, strict=True):
            row[column] += n
    result = sorted(rows.values(), key=lambda row: row["step"])
    if len(result) > 1:
        total = {"step": "All steps", **{k: sum(row[k] for row in result) for k in COUNTED}}
        result.append(total)
    return result


def _label(kind: str) -> str:
    """A step without a name is called by its kind's label ("Send email")."""
    registered = STEP_KINDS.get(kind)
    return registered.label if registered is not None else kind
