"""Delivering events: a job POSTs one EventDelivery, signed the way inbound webhooks are verified.

The job `deliver(delivery_id)` runs on the `low` queue: an event reports work already done, so it never
goes ahead of step batches on `default`, and a slow receiver delays nobody's messages. Job ids are
`event-<delivery id>-<attempt>` (unique), so two paths cannot queue the same attempt twice.

1. claim: one conditional UPDATE counts the attempt and moves `next_attempt_at` past the job's timeout
   (a lease), only for a delivery that is pending and due. A duplicated job, or a second worker, claims
   nothing, so a delivery that succeeded is never POSTed again.
2. POST the payload as JSON with `X-Rowbell-Event`, `X-Rowbell-Delivery`, `X-Rowbell-Timestamp` and
   `X-Rowbell-Signature: sha256=HMAC(secret, "<timestamp>.<body>")` (`signature_headers`, shared with the
   webhook trigger), through `integrations.outbound` (a loopback, private or metadata address is refused:
   failed at once). Redirects are not followed: a redirected POST arrives as a GET without its body.
3. settle, only if the row is still at this attempt: 2xx succeeded; 410 Gone failed, and the endpoint is
   disabled; an inactive endpoint gets nothing (failed); any other answer, a timeout or a refused
   connection is retried with the engine's full-jitter backoff (runs/engine/retry.py) up to
   EVENT_WEBHOOK_MAX_ATTEMPTS attempts, then failed. A test event (`ping`) is tried once.

PostgreSQL is the source of truth: `requeue_due` (RQ's cron, config/cron.py) queues again what is overdue,
a delivery whose job was lost with Redis or whose worker died mid-POST (once its lease is over). A receiver
may therefore see a delivery twice (same `X-Rowbell-Delivery`, same event id), but never miss one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F

from integrations import clock, outbound
from integrations.events import PING
from integrations.models import EventDelivery, EventEndpoint
from integrations.signing import signature_headers
from runs.engine.enqueue import enqueue_unique
from runs.engine.retry import backoff, max_attempts

JOB = "runs.events.delivery.deliver"
QUEUE = "low"
EVENT_HEADER = "X-Rowbell-Event"
DELIVERY_HEADER = "X-Rowbell-Delivery"
# How much of an error answer's body is kept in `last_error`.
ERROR_SNIPPET = 300


@dataclass(frozen=True)
class Answer:
    """What one POST came to: the HTTP status (None without one) and, unless it succeeded, why not."""

    status_code: int | None
    error: str = ""
    retry: bool = True

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


ENDPOINT_INACTIVE = Answer(None, "Not sent: the endpoint is disabled.", retry=False)


def deliver(delivery_id: int) -> str | None:
    """The job: POST one due delivery. The status it recorded, or None when there was nothing to claim."""
    delivery = claim(delivery_id, clock.now())
    if delivery is None:
        return None
    answer = post(delivery) if delivery.endpoint.active else ENDPOINT_INACTIVE
    return settle(delivery, answer)


def claim(delivery_id: int, now: datetime) -> EventDelivery | None:
    lease = now + timedelta(seconds=job_timeout())
    claimed = EventDelivery.objects.filter(
        pk=delivery_id, status=EventDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(attempts=F("attempts") + 1, next_attempt_at=lease)
    if not claimed:
        return None
    return EventDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()


def post(delivery: EventDelivery) -> Answer:
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Rowbell",
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.pk),
        **signature_headers(delivery.endpoint.secret, body, int(clock.now().timestamp())),
    }
    try:
        # Redirects are not followed: the 3xx is the answer, retried like any other.
        reply = outbound.request(
            "POST",
            delivery.endpoint.url,
            data=body,
            headers=headers,
            timeout=settings.EVENT_WEBHOOK_TIMEOUT,
            follow_redirects=False,
            max_bytes=ERROR_SNIPPET,
        )
    except outbound.OutboundRefused as exc:
        return Answer(None, exc.message, retry=False)
    except (requests.exceptions.InvalidURL, ValueError) as exc:
        return Answer(None, f"The URL is not valid: {exc}", retry=False)
    except (requests.RequestException, OSError) as exc:  # refused, timed out, reset, not HTTP
        return Answer(None, f"No answer: {exc or type(exc).__name__}")
    if reply.status >= 300:
        snippet = reply.text.strip()
        return Answer(reply.status, f"HTTP {reply.status} {reply.reason}: {snippet}".rstrip(": "))
    return Answer(reply.status)


def settle(delivery: EventDelivery, answer: Answer) -> str | None:
    """Record the attempt's outcome and schedule the next one; the status recorded, or None when a later
    attempt has taken the row over meanwhile (this one outlived its lease)."""
    now = clock.now()
    changes: dict[str, Any] = {
        "last_status_code": answer.status_code,
        "last_error": answer.error,
        "next_attempt_at": None,
    }
    policy = {"max_attempts": 1 if delivery.event_type == PING else settings.EVENT_WEBHOOK_MAX_ATTEMPTS}
    if answer.succeeded:
        changes |= {"status": EventDelivery.Status.SUCCEEDED, "delivered_at": now}
    elif answer.gone or not answer.retry or delivery.attempts >= max_attempts(policy):
        changes["status"] = EventDelivery.Status.FAILED
    else:
        changes["next_attempt_at"] = now + backoff(delivery.attempts, policy)
    with transaction.atomic():
        current = EventDelivery.objects.filter(
            pk=delivery.pk, status=EventDelivery.Status.PENDING, attempts=delivery.attempts
        ).update(**changes)
        if current and answer.gone:
            EventEndpoint.objects.filter(pk=delivery.endpoint_id).update(active=False)
    if not current:
        return None
    if changes["next_attempt_at"] is not None:
        enqueue(delivery.pk, attempt=delivery.attempts + 1, at=changes["next_attempt_at"])
    return changes.get("status", EventDelivery.Status.PENDING)


def enqueue(delivery_id: int, attempt: int, at: datetime | None = None) -> bool:
    """Queue (or schedule, with `at`) the job of one attempt; False when it is already queued."""
    return enqueue_unique(
        JOB,
        delivery_id,
        ident=f"event-{delivery_id}-{attempt}",
        queue=QUEUE,
        at=at,
        job_timeout=job_timeout(),
        description=f"event delivery {delivery_id}",
    )


def job_timeout() -> int:
    """The longest one attempt may take: also its lease. EVENT_WEBHOOK_TIMEOUT bounds each socket
    operation (connect, each read), not the whole exchange, so a trickling server gets a few of them."""
    return int(settings.EVENT_WEBHOOK_TIMEOUT * 3) + 5


def requeue_due(limit: int = 1000) -> int:
    """Queue again deliveries overdue by more than SWEEPER_GRACE; how many. Each one queued is touched (due
    now), so the next pass leaves it alone for another grace period; one that could not be queued (Redis
    away) keeps its due time for the next pass. Runs every few seconds on RQ's cron."""
    now = clock.now()
    overdue = now - timedelta(seconds=settings.SWEEPER_GRACE)
    due = list(
        EventDelivery.objects.filter(status=EventDelivery.Status.PENDING, next_attempt_at__lte=overdue)
        .order_by("next_attempt_at")
        .values_list("pk", "attempts")[:limit]
    )
    queued = [pk for pk, attempts in due if enqueue(pk, attempt=attempts + 1)]
    EventDelivery.objects.filter(
        pk__in=queued, status=EventDelivery.Status.PENDING, next_attempt_at__lte=overdue
    ).update(next_attempt_at=now)
    return len(queued)


def prune_finished_deliveries(
    cutoff: datetime, only: tuple[int, ...] | None = None, skip: tuple[int, ...] = ()
) -> int:
    """Delete delivered and failed events created before `cutoff` (retention, runs/retention.py), of the
    tenants in `only` (None: all) except `skip`; pending ones stay until they are settled. Returns how many went."""
    finished = (EventDelivery.Status.SUCCEEDED, EventDelivery.Status.FAILED)
    expired = EventDelivery.objects.filter(status__in=finished, created_at__lt=cutoff)
    if only is not None:
        expired = expired.filter(tenant_id__in=only)
    deleted, _ = expired.exclude(tenant_id__in=skip).delete()
    return deleted
