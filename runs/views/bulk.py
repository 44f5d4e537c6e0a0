"""Bulk retry and cancel from the activity log: a dialog with the filter (prefilled from the page's), a
count first ("412 executions, 398 recipients, 0 already sent"), then one named operation and its progress
page. The dialog's token is the operation's idempotency key, so a double click starts one operation.

A retry sends messages to real recipients: admins and owners only, like the single retry of a live run;
anyone may cancel.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from runs.bulk import (
    BadFilter,
    BulkFilter,
    KeyReused,
    counts_in_words,
    dry_run,
    parse_filter,
    start_operation,
)
from runs.models import BulkOperation
from runs.views.actions import live_sending_refused, may_send_live
from runs.views.forms import day_start
from tenants.permissions import members_only
from tenants.request import MemberRequest, TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Step, Workflow
from workflows.steps import STEP_KINDS

STATE_CHOICES = [
    ("", "Default: failed for a retry, open for a cancel"),
    ("failed", "Failed (retry)"),
    ("open", "Open: pending or running (cancel)"),
    ("retrying", "Retrying: failed, waiting for the next attempt (cancel)"),
    ("waiting", "Waiting: a wait or a send window holds it (cancel)"),
]
# The step picker lists at most this many steps (the newest workflows' first).
STEP_CHOICES_SHOWN = 300


class BulkForm(forms.Form):
    action = forms.ChoiceField(
        choices=BulkOperation.Action.choices, widget=forms.RadioSelect, initial=BulkOperation.Action.RETRY
    )
    workflow = forms.ModelChoiceField(
        queryset=Workflow.objects.none(), required=False, empty_label="All workflows"
    )
    step = forms.ChoiceField(required=False, label="Step")
    error = forms.CharField(required=False, max_length=500, label="Error contains", strip=True)
    date_from = forms.DateField(
        required=False, label="Runs from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(required=False, label="Runs to", widget=forms.DateInput(attrs={"type": "date"}))
    state = forms.ChoiceField(required=False, choices=STATE_CHOICES)
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        cast(forms.ModelChoiceField, self.fields["workflow"]).queryset = Workflow.objects.for_tenant(
            tenant
        ).order_by("name")
        cast(forms.ChoiceField, self.fields["step"]).choices = [("", "Any step"), *step_choices(tenant)]

    def to_filter(self) -> BulkFilter:
        """The filter (BadFilter when it cannot be used); call after is_valid()."""
        data = self.cleaned_data
        start = day_start(data["date_from"]) if data.get("date_from") else None
        end = day_start(data["date_to"] + timedelta(days=1)) if data.get("date_to") else None
        values = {
            "workflow": str(data["workflow"].pk) if data.get("workflow") else "",
            "step": data.get("step") or "",
            "error": data.get("error") or "",
            "created_from": start.isoformat() if start else "",
            "created_to": end.isoformat() if end else "",
            "state": data.get("state") or "",
        }
        return parse_filter(self.tenant, data["action"], values, from_form=True)


def step_choices(tenant) -> list[tuple[str, str]]:
    """Steps by key (the same in every version), named "Workflow · Step", triggers left out."""
    triggers = [name for name, kind in STEP_KINDS.items() if kind.is_trigger]
    steps = (
        Step.objects.for_tenant(tenant)
        .exclude(kind__in=triggers)
        .exclude(version__state="draft")
        .select_related("version__workflow")
        .order_by("-version__workflow_id", "key", "-version_id")
    )
    seen: dict[str, str] = {}
    for step in steps[: STEP_CHOICES_SHOWN * 3]:
        key = str(step.key)
        if key not in seen:
            seen[key] = f"{step.version.workflow.name} · {step.display_name}"
    return sorted(seen.items(), key=lambda choice: choice[1])[:STEP_CHOICES_SHOWN]


def initial_from_page(request: TenantRequest) -> dict:
    """The activity page's filters, so the dialog starts from what the person is looking at."""
    initial = {"token": uuid.uuid4().hex}
    for name in ("workflow", "date_from", "date_to"):
        if request.GET.get(name):
            initial[name] = request.GET[name]
    if request.GET.get("status") == "failed":
        initial["action"] = BulkOperation.Action.RETRY
    return initial


def dialog(request: TenantRequest, form: BulkForm, **context) -> HttpResponse:
    return render(
        request,
        "runs/_bulk_dialog.html",
        {"form": form, "may_retry": may_send_live(request), "back": request.GET.get("back", ""), **context},
    )


@login_required
def bulk_dialog(request: TenantRequest) -> HttpResponse:
    return dialog(request, BulkForm(initial=initial_from_page(request), tenant=request.tenant))


@require_POST
@login_required
@members_only
def bulk_count(request: MemberRequest) -> HttpResponse:
    """The dry run, shown in the dialog with the button that starts the operation."""
    form = BulkForm(request.POST, tenant=request.tenant)
    if not form.is_valid():
        return dialog(request, form)
    try:
        flt = form.to_filter()
    except BadFilter as exc:
        return dialog(request, form, problem=str(exc))
    counts = dry_run(request.tenant, flt)
    return dialog(request, form, counts=counts, summary=counts_in_words(flt.action, counts), flt=flt)


@require_POST
@login_required
@members_only
def bulk_start(request: MemberRequest) -> HttpResponse:
    form = BulkForm(request.POST, tenant=request.tenant)
    if not form.is_valid():
        messages.error(request, "The bulk action's form was incomplete: open it again from the activity log.")
        return HttpResponseRedirect(reverse("runs:run_list"))
    if form.cleaned_data["action"] == BulkOperation.Action.RETRY and not may_send_live(request):
        return live_sending_refused("retry live runs in bulk")
    try:
        flt = form.to_filter()
    except BadFilter as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(reverse("runs:run_list"))
    try:
        operation, created = start_operation(
            request.tenant, flt, actor=request.user, idempotency_key=f"page:{form.cleaned_data['token']}"
        )
    except KeyReused:
        # The dialog (its token) already started an operation, and its filter has changed since.
        messages.error(request, "This dialog already started a bulk action: open it again for another one.")
        return HttpResponseRedirect(reverse("runs:bulk_list"))
    if created:
        messages.success(request, f"Started: {operation.name}.")
    else:
        messages.info(request, "This bulk action was already started: here is its progress.")
    return HttpResponseRedirect(reverse("runs:bulk_detail", args=[operation.pk]))


@login_required
def bulk_detail(request: TenantRequest, operation_id: int) -> HttpResponse:
    operation = get_for_tenant_or_404(BulkOperation, request.tenant, pk=operation_id)
    template = "runs/_bulk_progress.html" if request.htmx else "runs/bulk_detail.html"
    return render(request, template, {"operation": operation})


@login_required
def bulk_list(request: TenantRequest) -> HttpResponse:
    operations = BulkOperation.objects.for_tenant(request.tenant).order_by("-created_at", "-id")[:100]
    return render(request, "runs/bulk_list.html", {"operations": operations})
