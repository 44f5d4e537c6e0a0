"""Publish dialog (what changes, sandbox choice), unpublish, version history and restore as draft."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tenants.audit import record_for
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from workflows.diff import diff_versions
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import (
    get_draft,
    latest_published,
    publish,
    restore_as_draft,
    unpublish,
    validate_version,
)
from workflows.steps.base import PublishError
from workflows.views.common import build_tree, get_version, get_workflow


def publish_problems(draft: WorkflowVersion) -> list[dict]:
    """Each step that stops publishing, with its name and messages (the SQL is checked by PostgreSQL too)."""
    errors = validate_version(draft)
    steps = {s.id: s for s in draft.steps.all()}
    for step in steps.values():
        if step.id not in errors and (problems := step.step_kind.live_problems(step)):
            errors[step.id] = problems
    return [{"step": steps.get(step_id), "errors": field_errors} for step_id, field_errors in errors.items()]


def _dialog(request: TenantRequest, workflow: Workflow, problems: list[dict] | None = None) -> HttpResponse:
    draft = get_draft(workflow)
    if problems is None:
        problems = publish_problems(draft) if draft is not None else []
    context = {
        "workflow": workflow,
        "draft": draft,
        "problems": problems,
        "diff": diff_versions(workflow.published_version, draft) if draft is not None else None,
        "current": workflow.published_version,
    }
    return render(request, "workflows/_publish_dialog.html", context)


@login_required
@admins_only("can publish or unpublish workflows")
def publish_dialog(request: MemberRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    return _dialog(request, workflow)


@login_required
@require_POST
@admins_only("can publish or unpublish workflows")
def publish_workflow(request: MemberRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    draft = get_draft(workflow)
    problems = publish_problems(draft) if draft is not None else []
    if problems:
        return _dialog(request, workflow, problems)
    try:
        version = publish(workflow, user=request.user, sandbox=request.POST.get("sandbox") == "on")
    except PublishError as exc:
        steps = {s.id: s for s in Step.objects.filter(pk__in=[k for k in exc.step_errors if k])}
        return _dialog(
            request, workflow, [{"step": steps.get(k), "errors": v} for k, v in exc.step_errors.items()]
        )
    record_for(request, "workflow.published", workflow, version=version.number, sandbox=version.sandbox)
    mode = " in sandbox mode (messages are held until released)" if version.sandbox else ""
    messages.success(request, f"Published version {version.number} of {workflow.name}{mode}.")
    response = HttpResponse(status=204)
    response["HX-Redirect"] = request.build_absolute_uri(f"/workflows/{workflow.pk}/")
    return response


@login_required
@require_POST
@admins_only("can publish or unpublish workflows")
def unpublish_workflow(request: MemberRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    try:
        unpublish(workflow)
        record_for(request, "workflow.unpublished", workflow)
        messages.success(request, f"Unpublished {workflow.name}: new events no longer start runs.")
    except PublishError as exc:
        messages.error(request, "; ".join(m for errs in exc.step_errors.values() for m in errs.values()))
    return redirect("workflows:builder", workflow.pk)


@login_required
def version_list(request: TenantRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    versions = workflow.versions.filter(state=WorkflowVersion.State.PUBLISHED).select_related("published_by")
    context = {"workflow": workflow, "versions": versions.order_by("-number"), "draft": get_draft(workflow)}
    return render(request, "workflows/versions.html", context)


@login_required
def version_detail(request: TenantRequest, workflow_id: int, version_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    version = get_version(request, workflow, version_id)
    context = {
        "workflow": workflow,
        "version": version,
        "tree": build_tree(list(version.steps.all())),
        "latest": latest_published(workflow),
        "readonly": True,
    }
    return render(request, "workflows/version_detail.html", context)


@login_required
@require_POST
def version_restore(request: TenantRequest, workflow_id: int, version_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    version = get_version(request, workflow, version_id)
    restore_as_draft(version)
    messages.success(request, f"The draft is now a copy of version {version.number}.")
    return redirect("workflows:builder", workflow.pk)
