"""The workflows list: create, rename, duplicate, archive."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from tenants.permissions import admin_refusal, members_only
from tenants.request import MemberRequest, TenantRequest
from workflows.models import Workflow
from workflows.publishing import (
    archive_or_delete,
    copy_steps,
    get_draft,
    get_or_create_draft,
    latest_published,
)
from workflows.views.common import get_workflow


def _name(request: TenantRequest) -> str:
    return (request.POST.get("name") or "").strip()[:200]


@login_required
def workflow_list(request: TenantRequest) -> HttpResponse:
    show = request.GET.get("show", Workflow.Status.ACTIVE)
    workflows = Workflow.objects.for_tenant(request.tenant).filter(status=show).order_by("name")
    return render(
        request,
        "workflows/list.html",
        {"workflows": workflows.select_related("published_version"), "show": show},
    )


@login_required
@require_POST
@members_only
def workflow_create(request: MemberRequest) -> HttpResponse:
    name = _name(request)
    if not name:
        messages.error(request, "Give the workflow a name, e.g. “Welcome new users”.")
        return redirect("workflows:list")
    workflow = Workflow.objects.create(tenant=request.tenant, name=name, created_by=request.user)
    get_or_create_draft(workflow)
    return redirect("workflows:builder", workflow.pk)


@login_required
@require_POST
def workflow_rename(request: TenantRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    name = _name(request)
    if not name:
        messages.error(request, "A workflow needs a name; the old one is kept.")
    else:
        workflow.name = name
        workflow.save(update_fields=["name", "updated_at"])
    return redirect(request.POST.get("next") or "workflows:list")


@login_required
@require_POST
@members_only
def workflow_duplicate(request: MemberRequest, workflow_id: int) -> HttpResponse:
    """A new, unpublished workflow whose draft is a copy of this one's draft (or latest version)."""
    workflow = get_workflow(request, workflow_id)
    source = get_draft(workflow) or latest_published(workflow)
    with transaction.atomic():
        copy = Workflow.objects.create(
            tenant=request.tenant, name=f"Copy of {workflow.name}"[:200], created_by=request.user
        )
        draft = get_or_create_draft(copy)
        if source is not None:
            copy_steps(source, draft)
    messages.success(request, f"Created “{copy.name}”, unpublished.")
    return redirect("workflows:builder", copy.pk)


@login_required
@require_POST
def workflow_archive(request: TenantRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    if (
        workflow.is_published
        and (denied := admin_refusal(request, "can publish or unpublish workflows")) is not None
    ):
        return denied
    name = workflow.name
    outcome = archive_or_delete(workflow)
    messages.success(request, f"{'Archived' if outcome == 'archived' else 'Deleted'} “{name}”.")
    return redirect("workflows:list")
