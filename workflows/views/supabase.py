"""The Supabase setup page: the auth-email hook (its URL and secret, and the starter workflow one click
away) and how to connect a Supabase database (pooler or direct connection, Supabase's roles)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from integrations.supabase_hook import hook_secret
from tenants.permissions import admin_refusal
from tenants.request import TenantRequest
from workflows.models import Step, Workflow
from workflows.starters import create_auth_email_starter
from workflows.steps import STEP_KINDS
from workflows.steps.supabase_auth_email import hook_path


def auth_email_kinds() -> list[str]:
    return [name for name, kind in STEP_KINDS.items() if kind.receives_auth_email_hook]


def auth_email_workflows(tenant) -> list[Workflow]:
    """The tenant's active workflows whose trigger (in the draft or the published version) is the hook's."""
    ids = (
        Step.objects.for_tenant(tenant)
        .filter(parent=None, kind__in=auth_email_kinds())
        .values("version__workflow")
    )
    return list(
        Workflow.objects.for_tenant(tenant)
        .filter(pk__in=ids, status=Workflow.Status.ACTIVE)
        .select_related("published_version")
        .order_by("name")
    )


@login_required
def supabase_setup(request: TenantRequest) -> HttpResponse:
    if request.tenant is None:
        raise Http404("Not found")
    can_see_secret = bool(request.membership and request.membership.can_publish)
    hooks = [
        {
            "workflow": workflow,
            "url": request.build_absolute_uri(hook_path(workflow.pk)),
            "secret": hook_secret(workflow.webhook_secret) if can_see_secret else "",
            "ids": (f"hook-url-{workflow.pk}", f"hook-secret-{workflow.pk}"),
        }
        for workflow in auth_email_workflows(request.tenant)
    ]
    return render(request, "workflows/supabase.html", {"hooks": hooks, "can_see_secret": can_see_secret})


@login_required
@require_POST
def create_auth_email_workflow(request: TenantRequest) -> HttpResponse:
    if request.tenant is None:
        raise Http404("Not found")
    if (denied := admin_refusal(request, "can create the auth-email workflow")) is not None:
        return denied
    workflow = create_auth_email_starter(request.tenant, request.user)
    messages.success(
        request,
        f"Created “{workflow.name}”: check the emails, publish it, then paste its hook into Supabase.",
    )
    return redirect("workflows:builder", workflow.pk)
