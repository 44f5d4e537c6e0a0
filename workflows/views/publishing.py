"""What stops a draft from publishing, unpublish, version history and restore as draft. The publish dialog
and the publish itself live with the runs (runs/views/publishing.py): they preview runs and move them."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tenants.audit import record_for
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from workflows.models import WorkflowVersion
from workflows.publishing import (
    get_draft,
    latest_published,
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
