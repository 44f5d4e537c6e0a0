"""The webhook trigger's panel in the builder: reveal and rotate the signing secret, send a test event.
Admins and owners only: the secret lets anyone start live runs."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from runs.webhooks import send_test_event
from tenants.permissions import admins_only
from tenants.request import MemberRequest, TenantRequest
from workflows.models import Workflow
from workflows.publishing import get_or_create_draft
from workflows.views.common import get_workflow
from workflows.webhook_panel import example_body


def _secret_response(request: TenantRequest, workflow: Workflow, **extra) -> HttpResponse:
    context = {"workflow": workflow, "revealed": True, "secret": workflow.webhook_secret, **extra}
    return render(request, "workflows/_webhook_secret.html", context)


@login_required
@require_POST
@admins_only("see a webhook's signing secret")
def reveal_secret(request: MemberRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    return _secret_response(request, workflow)


@login_required
@require_POST
@admins_only("rotate a webhook's signing secret")
def rotate_secret(request: MemberRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    workflow.rotate_webhook_secret()
    return _secret_response(request, workflow, rotated=True)


@login_required
@require_POST
@admins_only("send test events to a live workflow")
def send_test(request: MemberRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    root = get_or_create_draft(workflow).root_step()
    sample = None
    if root is not None and root.step_kind.receives_webhooks:
        sample = root.step_kind.sample_item(root.config)
    result = send_test_event(workflow, example_body(sample))
    return render(request, "workflows/_webhook_test_result.html", {"result": result, "workflow": workflow})
