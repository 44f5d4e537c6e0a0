"""The dashboard: workflows with their status, last run and runs in the last 24 hours."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from integrations import clock
from integrations.models import DataSource
from runs.charts.queries import runs_per_hour
from runs.models import Run
from tenants.request import TenantRequest
from workflows.models import Workflow


@login_required
def dashboard(request: TenantRequest) -> HttpResponse:
    if request.tenant is None:
        return redirect("tenants:signup")
    since = timezone.now() - timedelta(hours=24)
    # Per workflow, through run_tenant_wf_recent: its newest live run, and its live runs of the last day
    # (an aggregate over the join read every run the workflow ever had: a second at 300,000 runs).
    live = Run.objects.filter(tenant=request.tenant, workflow=OuterRef("pk"), is_test=False)
    workflows = (
        Workflow.objects.for_tenant(request.tenant)
        .filter(status=Workflow.Status.ACTIVE)
        .annotate(
            last_run=Subquery(live.order_by("-created_at", "-id").values("created_at")[:1]),
            runs_24h=Coalesce(
                Subquery(
                    live.filter(created_at__gte=since)
                    .order_by()
                    .values("workflow")
                    .annotate(n=Count("pk"))
                    .values("n")
                ),
                0,
            ),
        )
        .select_related("published_version")
        .order_by("name")
    )
    workflows = list(workflows)
    context = {
        "workflows": workflows,
        "live_count": sum(1 for w in workflows if w.published_version_id),
        "runs_24h": sum(w.runs_24h for w in workflows),
        "source_count": DataSource.objects.for_tenant(request.tenant).count(),
        "runs_chart": runs_per_hour(request.tenant, clock.now()),
    }
    return render(request, "workflows/dashboard.html", context)
