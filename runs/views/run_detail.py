"""A run's page: its tree, live while the run is in progress.

htmx polls the same URL for the partial, passing `seen`, a fingerprint of the run's state when the
page was drawn. While nothing has changed the answer is 204 (htmx swaps nothing), so opened details
stay open and a captured email's iframe does not reload every two seconds.
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from runs.engine import clock
from runs.models import Run, StepExecution
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


def fingerprint(run: Run) -> str:
    """Changes whenever an execution or delivery of the run changes state (one aggregate query)."""
    counts = {f"n_{status}": Count("id", filter=Q(status=status)) for status in StepExecution.Status.values}
    executions = run.executions.aggregate(
        **counts,
        attempts=Sum("attempts"),
        started=Max("started_at"),
        finished=Max("finished_at"),
        due=Max("next_attempt_at"),
        deliveries=Count("delivery"),
        delivered=Max("delivery__sent_at"),
        held=Count("delivery", filter=Q(delivery__status="held")),
    )
    state = repr((run.status, run.finished_at, sorted(executions.items())))
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def poll_url(request: HttpRequest, seen: str) -> str:
    params = request.GET.copy()
    params["seen"] = seen
    return f"{request.path}?{params.urlencode()}"


def run_context(request: HttpRequest, run: Run, seen: str) -> dict:
    now = clock.now()
    wanted = tree_filter(request)
    return {
        "run": run,
        "poll_url": poll_url(request, seen),
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
    seen = fingerprint(run)
    polled = request.htmx and request.htmx.target == "run-live"
    if polled and request.GET.get("seen") == seen:
        return HttpResponse(status=204)
    context = run_context(request, run, seen)
    if polled:
        return render(request, "runs/_run_live.html", context)
    return render(request, "runs/run_detail.html", context)
