"""The numbers behind the charts: one aggregate query per chart, over a bounded time range.

Each query reads one tenant's rows in a window through an index that starts with the tenant and the
creation time (`run_tenant_recent`, `run_tenant_wf_recent`, `delivery_tenant_recent`), truncates the time
with date_trunc and groups in PostgreSQL; only a bucket per hour or day comes back to Python. Buckets in
the window that have no rows are filled in here, so the axis has no gaps.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from runs.charts.drawing import Bucket, Chart, Series
from runs.models import Delivery, DeliveryEvent, Run, StepExecution

RUN_HOURS = 24
MESSAGE_DAYS = 14
NODE_DAYS = 7

# A run's outcome, stacked in this order from the axis up; open runs (pending, running) are one series.
RUN_OUTCOMES = [
    ("succeeded", "Succeeded", (Run.Status.SUCCEEDED,)),
    ("partial", "Partially failed", (Run.Status.PARTIAL,)),
    ("failed", "Failed", (Run.Status.FAILED,)),
    ("cancelled", "Cancelled", (Run.Status.CANCELLED,)),
    ("running", "In progress", (Run.Status.PENDING, Run.Status.RUNNING)),
]
# What happened to messages: handed over or skipped (the message's own status), then what the provider
# told us later (a tracking event of that kind, counted once per message).
MESSAGE_MEASURES = [
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("opened", "Opened"),
    ("bounced", "Bounced"),
    ("complained", "Complained"),
    ("skipped", "Skipped"),
]
TRACKED = ("delivered", "opened", "bounced", "complained")


def hour_buckets(now: datetime, hours: int) -> list[Bucket]:
    local = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    starts = [local - timedelta(hours=hours - 1 - i) for i in range(hours)]
    return [Bucket(start, start.strftime("%H:00")) for start in starts]


def day_buckets(now: datetime, days: int) -> list[Bucket]:
    local = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [local - timedelta(days=days - 1 - i) for i in range(days)]
    return [Bucket(start, start.strftime("%b %-d")) for start in starts]


def runs_per_hour(tenant, now: datetime, workflow=None) -> Chart:
    """Live runs started in each of the last RUN_HOURS hours, by outcome."""
    buckets = hour_buckets(now, RUN_HOURS)
    end = buckets[-1].start + timedelta(hours=1)
    runs = Run.objects.for_tenant(tenant).filter(
        is_test=False, created_at__gte=buckets[0].start, created_at__lt=end
    )
    if workflow is not None:
        runs = runs.filter(workflow=workflow)
    rows = runs.annotate(bucket=TruncHour("created_at")).values("bucket", "status").annotate(n=Count("pk"))
    by_status: dict[str, dict[datetime, int]] = defaultdict(dict)
    for row in rows.order_by():
        by_status[row["status"]][row["bucket"]] = row["n"]
    series = [
        Series(key, label, [sum(by_status[s].get(b.start, 0) for s in statuses) for b in buckets])
        for key, label, statuses in RUN_OUTCOMES
    ]
    scope = f"of {workflow.name} " if workflow is not None else ""
    return Chart(
        title=f"Runs {scope}per hour, last {RUN_HOURS} hours",
        caption="Live runs by the hour they started, stacked by outcome (test runs are left out).",
        buckets=buckets,
        series=series,
        stacked=True,
        empty_text=f"No run started in the last {RUN_HOURS} hours.",
    )


def messages_per_day(tenant, now: datetime, workflow=None) -> Chart:
    """Messages of live runs by the day they were made, and what became of them."""
    buckets = day_buckets(now, MESSAGE_DAYS)
    end = buckets[-1].start + timedelta(days=1)
    messages = Delivery.objects.for_tenant(tenant).filter(
        created_at__gte=buckets[0].start, created_at__lt=end, run__is_test=False
    )
    if workflow is not None:
        messages = messages.filter(run__workflow=workflow)
    events = DeliveryEvent.objects.filter(delivery=OuterRef("pk"))
    measures = {
        "sent": Count("pk", filter=Q(status=Delivery.Status.SENT)),
        "skipped": Count("pk", filter=Q(status=Delivery.Status.SKIPPED)),
        **{kind: Count("pk", filter=Exists(events.filter(kind=kind))) for kind in TRACKED},
    }
    rows = messages.annotate(bucket=TruncDay("created_at")).values("bucket").annotate(**measures).order_by()
    by_bucket = {row["bucket"]: row for row in rows}
    series = [
        Series(key, label, [by_bucket.get(b.start, {}).get(key, 0) for b in buckets])
        for key, label in MESSAGE_MEASURES
    ]
    scope = f"of {workflow.name} " if workflow is not None else ""
    return Chart(
        title=f"Messages {scope}per day, last {MESSAGE_DAYS} days",
        caption=(
            "Messages by the day they were sent, and how many of those the provider then reported "
            "delivered, opened, bounced or complained about; skipped: not sent on purpose "
            "(suppressed, unsubscribed, no address)."
        ),
        buckets=buckets,
        series=series,
        stacked=False,
        empty_text=f"No message in the last {MESSAGE_DAYS} days.",
    )


def node_counts(tenant, workflow, now: datetime) -> dict[str, dict[str, int]]:
    """{step key: {execution status: count}} over the workflow's live runs of the last NODE_DAYS days,
    across versions (a step keeps its key from version to version)."""
    since = now - timedelta(days=NODE_DAYS)
    runs = Run.objects.for_tenant(tenant).filter(
        workflow=workflow, is_test=False, created_at__gte=since, created_at__lte=now
    )
    rows = (
        StepExecution.objects.filter(tenant=tenant, run__in=runs)
        .values("step__key", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for row in rows:
        counts[str(row["step__key"])][row["status"]] = row["n"]
    return dict(counts)
