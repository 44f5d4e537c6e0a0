"""A run's page: its tree, live while the run is in progress (htmx polls the same URL for the partial)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from runs.engine import clock
from runs.models import Run
from runs.views.presenting import run_duration
from runs.views.tree import TreeFilter, build_tree
from tenants.scoping import get_for_tenant_or_404

POLL_SECONDS = 2
STATUS_FILTERS = [
    ("", "All"),
    ("failed", "Failed"),
    ("retrying", "Retrying"),
    ("pending", "Pending"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("cancelled", "Cancelled"),
]


def tree_filter(request: HttpRequest) -> TreeFilter:
    status = request.GET.get("status", "")
    step = request.GET.get("step", "")
    return TreeFilter(
        item=request.GET.get("item", "").strip()[:500],
        status=status if status in dict(STATUS_FILTERS) else "",
        step_id=int(step) if step.isdigit() else None,
        after=request.GET.get("after", "")[:500],
    )


def run_context(request: HttpRequest, run: Run) -> dict:
    now = clock.now()
    wanted = tree_filter(request)
    return {
        "run": run,
        "live": run.status not in Run.FINISHED,
        "poll_seconds": POLL_SECONDS,
        "duration": run_duration(run, now),
        "tree": build_tree(run, wanted, now),
        "wanted": wanted,
        "status_filters": STATUS_FILTERS,
    }


@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_for_tenant_or_404(Run.objects.select_related("workflow", "version"), request.tenant, pk=run_id)
    context = run_context(request, run)
    if request.htmx and request.htmx.target == "run-live":
        return render(request, "runs/_run_live.html", context)
    return render(request, "runs/run_detail.html", context)
