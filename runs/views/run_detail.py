"""A run's page: its workflow's tree with counts on every step, the selected step's items beside it,
live while the run is in progress.

Clicking a step asks for the same page with `?step=<id>` (htmx swaps #run-live and pushes the URL), so
a link to a run's failing step can be shared, and the page works without JavaScript.

htmx polls the same URL for the partial, passing `seen`, a fingerprint of the run's state when the
page was drawn. While nothing has changed the answer is 204 (htmx swaps nothing), so opened details
stay open and a captured email's iframe does not reload every two seconds.
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max
from django.http import HttpResponse
from django.shortcuts import render

from integrations import clock
from runs.engine.cancel_keys import tombstones_for
from runs.engine.pacing import waiting_steps
from runs.models import Run, StepExecution
from runs.views.digests import RunDigests, run_digests
from runs.views.presenting import run_duration, waiting_until
from runs.views.tree import TreeFilter, run_tree, side_panel, step_states
from runs.views.uncertain import message_summary
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Step

POLL_SECONDS = 2
TEST_MESSAGES = 20
STATUS_FILTERS = [
    ("", "All"),
    ("failed", "Failed"),
    ("uncertain", "Uncertain"),
    ("held", "Held"),
    ("retrying", "Retrying"),
    ("waiting", "Waiting"),
    ("pending", "Pending"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("filtered", "Filtered"),
    ("skipped", "Skipped"),
    ("cancelled", "Cancelled"),
]


def tree_filter(request: TenantRequest) -> TreeFilter:
    status = request.GET.get("status", "")
    step = request.GET.get("step", "")
    return TreeFilter(
        item=request.GET.get("item", "").strip()[:500],
        status=status if status in dict(STATUS_FILTERS) else "",
        step_id=int(step) if step.isdigit() else None,
        after=request.GET.get("after", "")[:500],
    )


def fingerprint(run: Run, states: list[dict], digests: RunDigests | None = None) -> str:
    """Changes whenever an execution or a delivery of the run changes state, or a digest it joined."""
    deliveries = list(
        run.deliveries.values("status").annotate(n=Count("id"), sent=Max("sent_at")).order_by("status")
    )
    state = repr((run.status, run.finished_at, states, deliveries, digests.fingerprint() if digests else ()))
    return hashlib.sha256(state.encode()).hexdigest()[:16]


def poll_url(request: TenantRequest, seen: str) -> str:
    params = request.GET.copy()
    params["seen"] = seen
    return f"{request.path}?{params.urlencode()}"


def only_waiting(run: Run, states: list[dict], steps: dict[int, Step], now) -> dict | None:
    """A run whose only open work is a wait: when it goes on, the waiting step and the step after it.
    Such a run is not "running" for three days, so the page shows no running duration."""
    if run.status in Run.FINISHED:
        return None
    open_rows = [row for row in states if row["status"] in StepExecution.OPEN]
    if not open_rows or any(
        row["status"] != StepExecution.Status.PENDING or row["waiting"] != row["n"] for row in open_rows
    ):
        return None
    first = min(open_rows, key=lambda row: row["next_due"])
    step = steps.get(first["step_id"])
    after = sorted((s for s in steps.values() if step and s.parent_id == step.pk), key=lambda s: s.position)
    return {
        "words": waiting_until(first["next_due"], now),
        "step": step,
        "next_steps": [s.display_name for s in after],
    }


def provider_limit_waits(run: Run, steps: dict[int, Step]) -> list[dict]:
    """The steps whose messages wait for their provider's limit right now (runs/engine/pacing.py)."""
    if run.status in Run.FINISHED:
        return []
    found = waiting_steps(run.pk, list(steps))
    return [
        {
            "step": steps[step_id],
            "rate": info.get("rate"),
            "wait": info.get("wait"),
            "whose": info.get("whose"),
        }
        for step_id, info in found.items()
        if step_id in steps
    ]


def run_context(
    request: TenantRequest, run: Run, seen: str, states: list[dict], now, digests: RunDigests | None = None
) -> dict:
    wanted = tree_filter(request)
    chains, steps = run_tree(run, states, now)
    waiting = only_waiting(run, states, steps, now)
    return {
        "run": run,
        "poll_url": poll_url(request, seen),
        "live": run.status not in Run.FINISHED,
        "poll_seconds": POLL_SECONDS,
        "waiting": waiting,
        "duration": "" if waiting else run_duration(run, now),
        "tree": chains,
        "side": side_panel(run, steps, wanted, now),
        # A test run shows what it would have sent right under the tree: that is what a tester checks.
        "test_messages": list(run.deliveries.select_related("step_execution").order_by("id")[:TEST_MESSAGES])
        if run.is_test
        else [],
        "steps_by_id": steps,
        "pacing": provider_limit_waits(run, steps),
        "wanted": wanted,
        "status_filters": STATUS_FILTERS,
        "key_cancels": tombstones_for(run),
        "digests": digests if digests is not None else run_digests(run, now),
        **message_summary(run),
    }


@login_required
def run_detail(request: TenantRequest, run_id: int) -> HttpResponse:
    run = get_for_tenant_or_404(Run.objects.select_related("workflow", "version"), request.tenant, pk=run_id)
    now = clock.now()
    states = step_states(run, now)
    digests = run_digests(run, now)
    seen = fingerprint(run, states, digests)
    polled = request.htmx and request.htmx.target == "run-live"
    if polled and request.GET.get("seen") == seen:
        return HttpResponse(status=204)
    context = run_context(request, run, seen, states, now, digests)
    if polled:
        return render(request, "runs/_run_live.html", context)
    return render(request, "runs/run_detail.html", context)
