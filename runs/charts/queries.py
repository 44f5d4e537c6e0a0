"""The numbers behind the charts: one aggregate query per chart, over a bounded range.

Each query reads one tenant's rows in a window through an index that starts with the tenant and the
creation time (`run_tenant_recent`, `run_tenant_wf_recent`, `delivery_tenant_recent`), truncates the time
with date_trunc and groups in PostgreSQL; only a bucket per hour or day comes back to Python. Buckets in
the window that have no rows are filled in here, so the axis has no gaps. The messages chart is written in
SQL: the ORM's per-message EXISTS probes cost seconds at a million executions (and, priced that high,
made PostgreSQL JIT-compile the plan).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from runs.charts.drawing import Bucket, Chart, Series
from runs.models import Run, StepExecution

RUN_HOURS = 24
MESSAGE_DAYS = 7
NODE_DAYS = 7
NODE_RUNS = 1000

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


# The window's messages first (delivery_tenant_recent); then their runs and their tracking events, each
# read as one range of primary keys (the window's lowest to highest id) instead of a lookup per message:
# ids grow with time, so the ranges hold little besides the window's own rows, and the result is exact
# whatever they hold (the joins keep only the window's messages).
MESSAGES_SQL = """
WITH messages AS MATERIALIZED (
    SELECT d.id, d.run_id, d.status, date_trunc('day', d.created_at AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS day
    FROM runs_delivery d
    WHERE d.tenant_id = %(tenant)s AND d.created_at >= %(start)s AND d.created_at < %(end)s
), bounds AS (
    SELECT min(id) AS first_id, max(id) AS last_id, min(run_id) AS first_run, max(run_id) AS last_run
    FROM messages
), live_runs AS (
    SELECT r.id FROM runs_run r, bounds b
    WHERE r.id BETWEEN b.first_run AND b.last_run
      AND r.tenant_id = %(tenant)s AND NOT r.is_test AND (%(workflow)s::bigint IS NULL OR r.workflow_id = %(workflow)s)
), tracked AS (
    SELECT e.delivery_id, bool_or(e.kind = 'delivered') AS delivered, bool_or(e.kind = 'opened') AS opened,
           bool_or(e.kind = 'bounced') AS bounced, bool_or(e.kind = 'complained') AS complained
    FROM runs_deliveryevent e, bounds b
    WHERE e.delivery_id BETWEEN b.first_id AND b.last_id
      AND e.kind IN ('delivered', 'opened', 'bounced', 'complained')
    GROUP BY e.delivery_id
)
SELECT m.day, count(*) FILTER (WHERE m.status = 'sent') AS sent,
       count(*) FILTER (WHERE m.status = 'skipped') AS skipped,
       count(*) FILTER (WHERE t.delivered) AS delivered, count(*) FILTER (WHERE t.opened) AS opened,
       count(*) FILTER (WHERE t.bounced) AS bounced, count(*) FILTER (WHERE t.complained) AS complained
FROM messages m JOIN live_runs r ON r.id = m.run_id LEFT JOIN tracked t ON t.delivery_id = m.id
GROUP BY m.day
"""


def messages_per_day(tenant, now: datetime, workflow=None) -> Chart:
    """Messages of live runs by the day they were made, and what became of them (one statement)."""
    buckets = day_buckets(now, MESSAGE_DAYS)
    params = {
        "tz": timezone.get_current_timezone_name(),
        "tenant": tenant.pk,
        "start": buckets[0].start,
        "end": buckets[-1].start + timedelta(days=1),
        "workflow": workflow.pk if workflow is not None else None,
    }
    with connection.cursor() as cursor:
        cursor.execute(MESSAGES_SQL, params)
        columns = [column.name for column in cursor.description]
        by_bucket = {row[0]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
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
    """{step key: {execution status: count}} over the workflow's latest NODE_RUNS live runs of the last
    NODE_DAYS days, across versions (a step keeps its key from version to version). Bounded by runs, not
    only by time: a busy workflow's canvas costs the same as a quiet one's (its executions are read by
    run, through execution_run_status)."""
    since = now - timedelta(days=NODE_DAYS)
    runs = (
        Run.objects.for_tenant(tenant)
        .filter(workflow=workflow, is_test=False, created_at__gte=since, created_at__lte=now)
        .order_by("-created_at", "-id")
        .values("pk")[:NODE_RUNS]
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
