"""The step preview page: one step applied to one item (runs/preview.py), from the step's last input,
a sample item or a live row of the trigger's table (runs/samples.py)."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import render

from common.input_guard import checks_nul_itself
from runs.preview import last_input, preview_step
from runs.samples import live_rows, sample_item, watched_table
from runs.views.testing import ItemField
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Step


@checks_nul_itself
@login_required
def step_preview(request: TenantRequest, step_id: int) -> HttpResponse:
    tenant = request.tenant
    step = get_for_tenant_or_404(Step.objects.select_related("version__workflow"), tenant, pk=step_id)
    workflow, root = step.version.workflow, step.version.root_step()
    field_ = ItemField(required=False)
    text = request.POST.get("item") or request.GET.get("item")
    preview, error = None, ""
    if text is None:
        item = last_input(step) or sample_item(tenant, workflow, root)
        text = json.dumps(item, indent=2, ensure_ascii=False)
    if request.method == "POST" or request.GET.get("item"):
        try:
            item = field_.clean(text)
        except ValidationError as exc:
            error = " ".join(exc.messages)
        else:
            preview = preview_step(step, item)
    context = {
        "step": step,
        "workflow": workflow,
        "item_text": text,
        "preview": preview,
        "item_error": error,
        "search": request.GET.get("search", "")[:200],
    }
    if watched_table(root) is not None:
        context["live"] = live_rows(tenant, root, context["search"])
    template = "runs/_preview_result.html" if request.htmx else "runs/step_preview.html"
    return render(request, template, context)
