"""The activity log's runs: newest first, filtered, searched, keyset-paginated; test runs left out."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Min, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import render

from integrations import clock
from runs.charts.queries import runs_per_hour
from runs.models import Delivery, Run, RunSearchValue, StepExecution
from runs.search_values import stored_value
from runs.views.forms import RETRYING, RunFilterForm
from runs.views.paging import BadCursor, Page, keyset_page, pager_links
from runs.views.presenting import run_duration, waiting_until
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Workflow

WAITING = "waiting"
UNCERTAIN = "uncertain"
# A send skipped for its recipient (suppressed, unsubscribed) is an execution `skipped`: counted there.
COUNTED = [*StepExecution.Status.values, RETRYING, WAITING, UNCERTAIN]


def retrying_executions() -> QuerySet:
    return StepExecution.objects.filter(status=StepExecution.Status.PENDING, attempts__gt=0).exclude(error="")


def filter_runs(tenant, form: RunFilterForm, workflow: Workflow | None = None) -> QuerySet:
    runs = Run.objects.for_tenant(tenant).filter(is_test=False)
    data = form.valid_data()
    workflow = workflow or data.get("workflow")
    if workflow is not None:
        runs = runs.filter(workflow=workflow)
    start, end = form.date_range()
    if start:
        runs = runs.filter(created_at__gte=start)
    if end:
        runs = runs.filter(created_at__lt=end)
    return runs.filter(*run_conditions(tenant, form)).select_related("workflow", "version")


def run_conditions(tenant, form: RunFilterForm, prefix: str = "") -> list[Q]:
    """The status and text-search filters, on runs (or on `prefix`, the path from another table to runs)."""
    data = form.valid_data()
    conditions = []
    status = data.get("status")
    if status == RETRYING:
        # A semi-join on the (few) retrying executions, not an EXISTS probe per run of a long history.
        conditions.append(
            Q(**{f"{prefix}pk__in": retrying_executions().filter(tenant=tenant).values("run_id")})
        )
    elif status:
        conditions.append(Q(**{f"{prefix}status": status}))
    if data.get("q"):
        conditions.append(Q(**{f"{prefix}pk__in": searched_run_ids(tenant, data["q"])}))
    return conditions


def runs_by_field(tenant, form: RunFilterForm, workflow: Workflow | None = None) -> QuerySet | None:
    """The searchable-field values (runs/search_values.py) of the runs whose field equals the typed value,
    with the page's other filters; None when no field is searched. Paged newest first by
    (created_at, run_id), the order of the table's index, so a page reads one index range whatever the
    tenant's history; its rows carry their run."""
    searched = form.searched_field()
    if searched is None:
        return None
    field, typed = searched
    values = RunSearchValue.objects.for_tenant(tenant).filter(
        field=field.path, hashed=field.hashed, value=stored_value(tenant.pk, field, typed)
    )
    workflow = workflow or form.valid_data().get("workflow")
    if workflow is not None:
        values = values.filter(workflow=workflow)
    start, end = form.date_range()
    if start:
        values = values.filter(created_at__gte=start)
    if end:
        values = values.filter(created_at__lt=end)
    conditions = run_conditions(tenant, form, prefix="run__")
    return values.filter(*conditions).select_related("run", "run__workflow", "run__version")


def searched_run_ids(tenant, query: str) -> QuerySet:
    """Runs whose label starts with `query` (any case), whose event key is `query`, or that messaged
    `query`: a UNION of three index lookups (an OR across the tables would scan the tenant's history)."""
    by_label = Run.objects.for_tenant(tenant).filter(label__istartswith=query).values("pk")
    by_event = Run.objects.for_tenant(tenant).filter(event_key=query).values("pk")
    by_recipient = Delivery.objects.for_tenant(tenant).filter(recipient=query).values("run_id")
    return by_label.union(by_event, by_recipient)


def execution_counts(run_ids: list[int], now=None) -> tuple[dict[int, dict[str, int]], dict[int, object]]:
    """{run id: {status: count, "retrying": n, "waiting": n, "uncertain": n}} for one page of runs, and when
    each run's waiting executions are next due, in two queries."""
    now = now or clock.now()
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    due: dict[int, object] = {}
    retrying = Q(attempts__gt=0) & ~Q(error="")
    rows = (
        StepExecution.objects.filter(run_id__in=run_ids)
        .values("run_id", "status")
        .annotate(
            n=Count("id"),
            retrying=Count("id", filter=retrying),
            waiting=Count("id", filter=Q(next_attempt_at__gt=now) & ~retrying),
            next_due=Min("next_attempt_at", filter=Q(next_attempt_at__gt=now) & ~retrying),
        )
        .order_by()
    )
    for row in rows:
        by_status = counts[row["run_id"]]
        by_status[row["status"]] = row["n"]
        if row["status"] == StepExecution.Status.PENDING:
            by_status[RETRYING] = row["retrying"]
            by_status[WAITING] = row["waiting"]
            by_status[row["status"]] = row["n"] - row["retrying"] - row["waiting"]
            if row["next_due"]:
                due[row["run_id"]] = row["next_due"]
    # An execution that failed because its message is uncertain is counted as uncertain, not failed:
    # it needs a person's decision, not a fix.
    uncertain = (
        Delivery.objects.filter(run_id__in=run_ids, status=Delivery.Status.UNCERTAIN)
        .values("run_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in uncertain:
        by_status = counts[row["run_id"]]
        by_status[UNCERTAIN] = row["n"]
        by_status[StepExecution.Status.FAILED] = max(
            0, by_status.get(StepExecution.Status.FAILED, 0) - row["n"]
        )
    return counts, due


def run_state(run: Run, counts: dict[str, int], due, now) -> str:
    """A run in words: "Waiting until Nov 29 09:00 (in 3 days)" for a run whose only open work is a wait."""
    busy = counts.get(StepExecution.Status.RUNNING) or counts.get(StepExecution.Status.PENDING)
    if (
        run.status in (Run.Status.PENDING, Run.Status.RUNNING)
        and due
        and not busy
        and not counts.get(RETRYING)
    ):
        return waiting_until(due, now)
    return run.get_status_display()


def run_rows(page: Page) -> list[dict]:
    now = clock.now()
    counts, due = execution_counts([run.pk for run in page.items], now)
    rows = []
    for run in page.items:
        state = run_state(run, counts[run.pk], due.get(run.pk), now)
        rows.append(
            {
                "run": run,
                "state": state,
                "state_class": "waiting" if state.startswith("Waiting") else run.status,
                "duration": "" if state.startswith("Waiting") else run_duration(run, now),
                "counts": [
                    (status, counts[run.pk].get(status)) for status in COUNTED if counts[run.pk].get(status)
                ],
            }
        )
    return rows


def runs_page(tenant, form: RunFilterForm, workflow: Workflow | None, after: str | None) -> tuple[Page, str]:
    """One page of the filtered runs, and what was wrong with the cursor (then the first page)."""
    by_field = runs_by_field(tenant, form, workflow)
    rows, keys = (
        (by_field, ("created_at", "run_id"))
        if by_field is not None
        else (filter_runs(tenant, form, workflow), ("created_at", "id"))
    )
    cursor_error = ""
    try:
        page = keyset_page(rows, after, keys=keys)
    except BadCursor as exc:
        cursor_error, page = str(exc), keyset_page(rows, None, keys=keys)
    if by_field is not None:
        page.items = [value.run for value in page.items]
    return page, cursor_error


@login_required
def run_list(request: TenantRequest, workflow_id: int | None = None) -> HttpResponse:
    tenant = request.tenant
    workflow = get_for_tenant_or_404(Workflow, tenant, pk=workflow_id) if workflow_id else None
    form = RunFilterForm(request.GET or None, tenant=tenant)
    form.is_valid()
    page, cursor_error = runs_page(tenant, form, workflow, request.GET.get("after"))
    context = {
        "form": form,
        "workflow": workflow,
        "rows": run_rows(page),
        "page": page,
        "cursor_error": cursor_error,
        **pager_links(request, page),
        "runs_chart": runs_per_hour(tenant, clock.now(), workflow),
    }
    return render(request, "runs/run_list.html", context)
