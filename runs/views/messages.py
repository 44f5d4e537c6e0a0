"""The activity log's messages (deliveries): who, which channel, what state, and the rendered content."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from integrations import clock
from runs.charts.queries import messages_per_day
from runs.models import Delivery
from runs.tracking import COUNTED, TRACKING_DAYS, counts_for_workflow
from runs.views.forms import MessageFilterForm
from runs.views.paging import BadCursor, keyset_page, pager_links
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Workflow


def filter_messages(tenant, form: MessageFilterForm, workflow: Workflow | None = None) -> QuerySet:
    messages = Delivery.objects.for_tenant(tenant).filter(run__is_test=False)
    data = form.valid_data()
    workflow = workflow or data.get("workflow")
    if workflow is not None:
        messages = messages.filter(run__workflow=workflow)
    for name in ("status", "channel"):
        if data.get(name):
            messages = messages.filter(**{name: data[name]})
    if data.get("q"):
        messages = messages.filter(recipient=data["q"])
    start, end = form.date_range()
    if start:
        messages = messages.filter(created_at__gte=start)
    if end:
        messages = messages.filter(created_at__lt=end)
    return messages.select_related("run__workflow", "step_execution__step")


@login_required
def message_list(request: TenantRequest, workflow_id: int | None = None) -> HttpResponse:
    tenant = request.tenant
    workflow = get_for_tenant_or_404(Workflow, tenant, pk=workflow_id) if workflow_id else None
    form = MessageFilterForm(request.GET or None, tenant=tenant)
    form.is_valid()
    messages = filter_messages(tenant, form, workflow)
    cursor_error = ""
    try:
        page = keyset_page(messages, request.GET.get("after"))
    except BadCursor as exc:
        cursor_error, page = str(exc), keyset_page(messages, None)
    held = Delivery.objects.for_tenant(tenant).filter(status=Delivery.Status.HELD, run__is_test=False)
    if workflow is not None:
        held = held.filter(run__workflow=workflow)
    context = {
        "form": form,
        "workflow": workflow,
        "page": page,
        "cursor_error": cursor_error,
        **pager_links(request, page),
        "held_count": held.count(),
        "tracking_counts_url": reverse("runs:workflow_tracking_counts", args=[workflow.pk])
        if workflow is not None
        else "",
        "tracking_days": TRACKING_DAYS,
        "chart_url": reverse("runs:workflow_messages_chart", args=[workflow.pk])
        if workflow is not None
        else reverse("runs:messages_chart"),
    }
    return render(request, "runs/message_list.html", context)


@login_required
def messages_chart(request: TenantRequest, workflow_id: int | None = None) -> HttpResponse:
    """The messages-per-day chart, fetched by the Messages page once it shows: reading a week of a busy
    tenant's messages and their tracking events costs more than the list itself, which need not wait."""
    workflow = get_for_tenant_or_404(Workflow, request.tenant, pk=workflow_id) if workflow_id else None
    chart = messages_per_day(request.tenant, clock.now(), workflow)
    return render(request, "charts/_chart.html", {"chart": chart, "chart_id": "messages-chart"})


@login_required
def tracking_counts(request: TenantRequest, workflow_id: int) -> HttpResponse:
    """The per-step email counts table, fetched by a workflow's Messages page once it shows, like the
    chart: counting a week of messages and their tracking events costs more than the list itself."""
    workflow = get_for_tenant_or_404(Workflow, request.tenant, pk=workflow_id)
    context = {
        "tracking_counts": counts_for_workflow(workflow.tenant_id, workflow.pk),
        "tracking_columns": COUNTED,
        "tracking_days": TRACKING_DAYS,
    }
    return render(request, "runs/_tracking_counts.html", context)


@login_required
def message_detail(request: TenantRequest, delivery_id: int) -> HttpResponse:
    delivery = get_for_tenant_or_404(
        Delivery.objects.select_related("run__workflow", "step_execution__step"),
        request.tenant,
        pk=delivery_id,
    )
    timeline = list(delivery.events.order_by("occurred_at", "id"))
    context = {"delivery": delivery, "content": delivery.content or {}, "timeline": timeline}
    return render(request, "runs/message_detail.html", context)
