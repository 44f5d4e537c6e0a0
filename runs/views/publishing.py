"""The publish dialog: what changes (settings), what it will do (the preview on recent events, the blast
radius), the runs in flight and a choice per step, and the publish itself, bound to the preview's token.

It lives with the runs because the preview and the runs in flight are runs; the settings diff and the
checks are workflows' (workflows/diff.py, workflows/views/publishing.py `publish_problems`).
"""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from runs.publish_preview.events import DEFAULT_EVENTS, MAX_EVENTS, clamp_events
from runs.publish_preview.inflight import CHOICES, KEEP, publish_previewed, waiting_runs
from runs.publish_preview.job import start_preview
from tenants.permissions import admins_only
from tenants.request import MemberRequest
from workflows.diff import diff_versions
from workflows.models import PublishPreview, Step, Workflow, WorkflowVersion
from workflows.preview_token import StalePreview, draft_token
from workflows.publishing import get_draft
from workflows.steps.base import PublishError
from workflows.views.common import get_workflow
from workflows.views.publishing import publish_problems

ADMINS = "can publish or unpublish workflows"


def current_preview(workflow: Workflow, draft: WorkflowVersion | None) -> PublishPreview | None:
    """The newest preview of the draft as it is now (same token), whatever its state."""
    if draft is None:
        return None
    token = draft_token(draft)
    return PublishPreview.objects.filter(workflow=workflow, draft=draft, token=token).order_by("-id").first()


def _preview_context(
    workflow: Workflow, draft: WorkflowVersion | None, preview: PublishPreview | None
) -> dict:
    waiting = waiting_runs(workflow.published_version, draft) if draft is not None else []
    return {
        "workflow": workflow,
        "draft": draft,
        "preview": preview,
        "waiting": waiting,
        "current": workflow.published_version,
        "default_events": preview.events if preview else DEFAULT_EVENTS,
        "max_events": MAX_EVENTS,
        "choices": CHOICES,
    }


def _dialog(request: MemberRequest, workflow: Workflow, problems: list[dict] | None = None, error: str = ""):
    draft = get_draft(workflow)
    if problems is None:
        problems = publish_problems(draft) if draft is not None else []
    context = {
        **_preview_context(workflow, draft, current_preview(workflow, draft)),
        "problems": problems,
        "diff": diff_versions(workflow.published_version, draft) if draft is not None else None,
        "error": error,
    }
    return render(request, "runs/publish_dialog.html", context)


@login_required
@admins_only(ADMINS)
def publish_dialog(request: MemberRequest, workflow_id: int) -> HttpResponse:
    return _dialog(request, get_workflow(request, workflow_id))


@login_required
@require_POST
@admins_only(ADMINS)
def preview_start(request: MemberRequest, workflow_id: int) -> HttpResponse:
    """Start a preview of the draft on the last N events; answers with the part that polls it."""
    workflow = get_workflow(request, workflow_id)
    draft = get_draft(workflow)
    context = _preview_context(workflow, draft, None)
    if draft is None:
        context["error"] = "There is no draft to preview: edit the workflow first."
        return render(request, "runs/_publish_preview.html", context)
    try:
        events = clamp_events(request.POST.get("events", DEFAULT_EVENTS))
    except (TypeError, ValueError):
        context["error"] = f"Preview between 1 and {MAX_EVENTS} events (a whole number)."
        return render(request, "runs/_publish_preview.html", context)
    context["preview"] = start_preview(workflow, draft, events, by=request.user.get_username())
    return render(request, "runs/_publish_preview.html", context)


def _preview_of(request: MemberRequest, workflow: Workflow, preview_id: int) -> PublishPreview:
    return get_object_or_404(PublishPreview, pk=preview_id, workflow=workflow, tenant=workflow.tenant_id)


@login_required
@admins_only(ADMINS)
def preview_status(request: MemberRequest, workflow_id: int, preview_id: int) -> HttpResponse:
    """The preview's progress while it runs (the page polls this), its result once done."""
    workflow = get_workflow(request, workflow_id)
    preview = _preview_of(request, workflow, preview_id)
    draft = get_draft(workflow)
    context = _preview_context(workflow, draft, preview)
    if draft is None or preview.draft_id != draft.pk or preview.token != draft_token(draft):
        context["stale"] = True
    return render(request, "runs/_publish_preview.html", context)


CSV_COLUMNS = ["event_run", "event", "step", "before", "after", "change"]


@login_required
@admins_only(ADMINS)
def preview_csv(request: MemberRequest, workflow_id: int, preview_id: int) -> HttpResponse:
    """Every event and send step of a finished preview, live → draft, as CSV."""
    workflow = get_workflow(request, workflow_id)
    preview = _preview_of(request, workflow, preview_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="publish-preview-{workflow.pk}-{preview.pk}.csv"'
    writer = csv.DictWriter(response, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in (preview.result or {}).get("rows", []):
        # A cell starting with = + - @ is a formula to a spreadsheet: quote it as text.
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return response


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def in_flight_choices(data, waiting) -> dict[str, str]:
    """{live step key: choice} from the form (`inflight-<key>`); an unknown choice is `keep`."""
    choices = {}
    for entry in waiting:
        choice = data.get(f"inflight-{entry.key}", KEEP)
        if choice not in CHOICES or (choice == "move" and entry.target is None):
            choice = KEEP
        choices[entry.key] = choice
    return choices


@login_required
@require_POST
@admins_only(ADMINS)
def publish_workflow(request: MemberRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    draft = get_draft(workflow)
    problems = publish_problems(draft) if draft is not None else []
    if problems:
        return _dialog(request, workflow, problems)
    previous = workflow.published_version
    choices = in_flight_choices(request.POST, waiting_runs(previous, draft) if draft is not None else [])
    token = request.POST.get("token", "")
    try:
        version, in_flight = publish_previewed(
            request,
            workflow,
            token=token,
            sandbox=request.POST.get("sandbox") == "on",
            choices=choices,
            user=request.user,
        )
    except StalePreview as exc:
        return _dialog(request, workflow, error=exc.message)
    except PublishError as exc:
        steps = {s.id: s for s in Step.objects.filter(pk__in=[k for k in exc.step_errors if k])}
        return _dialog(
            request, workflow, [{"step": steps.get(k), "errors": v} for k, v in exc.step_errors.items()]
        )
    mode = " in sandbox mode (messages are held until released)" if version.sandbox else ""
    moved = "".join(f" {e['runs']} run(s) at “{e['step']}”: {e['choice']}." for e in in_flight)
    messages.success(request, f"Published version {version.number} of {workflow.name}{mode}.{moved}")
    response = HttpResponse(status=204)
    response["HX-Redirect"] = request.build_absolute_uri(f"/workflows/{workflow.pk}/")
    return response
