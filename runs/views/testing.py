"""The test interface, reached from the builder: run the workflow's DRAFT on a sample item or a live row.

Test runs are ordinary runs with `is_test` (kept out of the activity log): messages are captured, not
sent, unless the tester asks to receive them at their own address; waits can be skipped. The run's page
then shows every step's executions as they happen.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from common.input_guard import checks_nul_itself
from integrations import clock
from integrations.json_input import JsonInputError, load_json
from runs.engine import start_run
from runs.models import Run
from runs.samples import live_rows, sample_item, watched_table
from runs.views.tree import run_tree, step_states
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft, validate_version
from workflows.views.common import build_tree, shown_version


class ItemField(forms.CharField):
    """A JSON object typed by a person: errors say where the JSON broke."""

    widget = forms.Textarea(attrs={"rows": 12, "class": "mono", "spellcheck": "false"})

    def to_python(self, value: Any) -> dict[str, Any]:  # type: ignore[override]  # a CharField that parses
        text = super().to_python(value)
        try:
            item = load_json(text or "{}")
        except JsonInputError as exc:
            raise forms.ValidationError(f"{exc} Fix it and run again.") from None
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}. Fix it and run again.") from None
        if not isinstance(item, dict):
            raise forms.ValidationError('The item must be a JSON object: {"column": value, ...}.')
        return item


class TestRunForm(forms.Form):
    item = ItemField(label="Trigger item (JSON)", required=False)
    skip_waits = forms.BooleanField(label="Skip waits", required=False, initial=True)
    send_to_me = forms.BooleanField(
        label="Send the messages to my own address instead of capturing them", required=False
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_send_to_me(self) -> bool:
        wanted = self.cleaned_data["send_to_me"]
        if wanted and not self.user.email:
            raise forms.ValidationError(
                "Your account has no email address; add one, or let messages be captured."
            )
        return wanted

    def run_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"skip_waits": self.cleaned_data["skip_waits"]}
        if self.cleaned_data["send_to_me"]:
            options["override_recipient"] = self.user.email
        return options


def draft_problems(draft: WorkflowVersion) -> list[str]:
    names = {step.pk: step.display_name for step in draft.steps.all()}
    return [
        f"{names.get(step_id, 'Workflow')}: {field} — {message}"
        for step_id, fields in validate_version(draft).items()
        for field, message in fields.items()
    ]


def latest_test_tree(workflow: Workflow, draft: WorkflowVersion) -> dict[str, Any]:
    """The latest test run of this draft drawn as its tree with counts, when there is one."""
    run = (
        Run.objects.filter(workflow=workflow, version=draft, is_test=True)
        .exclude(options__has_key="preview")  # a publish preview's rehearsal runs, deleted when it ends
        .select_related("version")
        .order_by("-created_at", "-id")
        .first()
    )
    if run is None:
        return {}
    now = clock.now()
    chains, _steps = run_tree(run, step_states(run, now), now)
    return {"latest": run, "latest_tree": chains, "node_base": reverse("runs:run_detail", args=[run.pk])}


@checks_nul_itself
@login_required
def test_workflow(request: TenantRequest, workflow_id: int) -> HttpResponse:
    tenant = request.tenant
    workflow = get_for_tenant_or_404(Workflow, tenant, pk=workflow_id)
    # Opening the page writes nothing: it shows the live version until a test run starts the draft.
    draft = get_or_create_draft(workflow) if request.method == "POST" else shown_version(workflow)
    root = draft.root_step()
    problems: list[str] = []
    if request.method == "POST":
        form = TestRunForm(request.POST, user=request.user)
        problems = draft_problems(draft)
        if form.is_valid() and not problems:
            run = start_run(
                workflow,
                form.cleaned_data["item"],
                f"test:{uuid.uuid4().hex}",
                version=draft,
                is_test=True,
                options=form.run_options(),
            )
            return HttpResponseRedirect(reverse("runs:run_detail", args=[run.pk]))
    else:
        initial_item = request.GET.get("item") or json.dumps(sample_item(tenant, workflow, root), indent=2)
        form = TestRunForm(initial={"item": initial_item}, user=request.user)
    context = {
        "workflow": workflow,
        "form": form,
        "problems": problems,
        "search": request.GET.get("search", "")[:200],
        "recent": Run.objects.for_tenant(tenant)
        .filter(workflow=workflow, is_test=True)
        .exclude(options__has_key="preview")
        .order_by("-created_at", "-id")[:10],
        "tree": build_tree(list(draft.steps.all())),
        **latest_test_tree(workflow, draft),
        "root": root,
    }
    if watched_table(root) is not None:
        context["live"] = live_rows(tenant, root, context["search"])
    return render(request, "runs/test_workflow.html", context)
