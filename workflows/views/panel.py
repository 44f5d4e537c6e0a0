"""The side panel: the selected step's form, saved as the person types, with errors under each field."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from common.input_guard import checks_nul_itself
from integrations.json_input import NUL
from runs.preview import preview_step
from runs.samples import remembered_item, sample_item
from tenants.request import TenantRequest
from workflows.forms.step_form import NUL_ERROR, panel_form, posted_values, step_problems
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.steps import get_kind
from workflows.steps.base import StepPreview
from workflows.steps.supabase_auth_email import hook_path
from workflows.variables import available_fields, fields_after
from workflows.views.common import get_draft_step, get_workflow, spoken
from workflows.webhook_panel import curl_example, example_body, webhook_url


def panel_preview(
    request: TenantRequest, workflow: Workflow, step: Step, steps: list[Step], fields: list[str]
) -> tuple[StepPreview, dict[str, Any]]:
    """The step's preview of a sample item: the trigger's sample, plus placeholders for query columns when
    the kind marks blanks (a message); a branch decides on the sample as it is."""
    root = next((s for s in steps if s.parent_id is None), None)
    item: dict[str, Any] = sample_item(request.tenant, workflow, root)
    if get_kind(step.kind).preview_marks_blanks:
        # Blank text columns would vanish from the preview: show where they go instead.
        item = {key: (f"‹{key}›" if value == "" else value) for key, value in item.items()}
        for name in fields:
            item.setdefault(name, f"‹{name}›")
    return preview_step(step, item), item


def panel_context(
    request: TenantRequest, workflow: Workflow, step: Step, steps: list[Step], errors: dict | None = None
) -> dict[str, Any]:
    steps_by_id = {s.id: s for s in steps}
    errors = step_problems(step) if errors is None else errors
    fields = available_fields(step, steps_by_id)
    if step.parent_id is None and not fields:
        # A trigger's own templates (its run label) read the item it produces.
        fields = fields_after(step, [])
    form = panel_form(step, workflow.tenant_id, errors)  # the workflow is the request's tenant's
    for name, field in form.fields.items():
        warn = getattr(field, "variables_warning", None)
        if warn is not None:
            form.warnings[name] = warn(form.raw(name), fields)
    kind = get_kind(step.kind)
    bound = [form[name] for name in form.panel_fields()]
    context: dict[str, Any] = {
        "step": step,
        "kind": kind,
        "form": form,
        "fields": bound,
        "basic_fields": [f for f in bound if not f.is_advanced and not f.is_window],
        "window_fields": [f for f in bound if f.is_window],
        "advanced_fields": [f for f in bound if f.is_advanced],
        "errors": errors,
        "variables": fields,
        "step_paths": kind.paths(step.config or {}),
        "step_summary": kind.node_summary(step),
        "subtree_size": _subtree_size(step, steps),
    }
    if kind.previews_in_panel:
        context["preview"], context["sample"] = panel_preview(request, workflow, step, steps, fields)
    # The node's summary as the canvas draws it: spoken with the same example item.
    root = next((s for s in steps if s.parent_id is None), None)
    context["step_summary"] = spoken(context["step_summary"], remembered_item(request.tenant, workflow, root))
    if kind.receives_webhooks and step.parent_id is None:
        url = webhook_url(request, workflow.pk)
        context["webhook"] = {
            "url": url,
            "curl": curl_example(url, example_body(kind.sample_item(step.config))),
        }
    if kind.receives_auth_email_hook and step.parent_id is None:
        context["auth_hook"] = {"url": request.build_absolute_uri(hook_path(workflow.pk))}
    return context


def _subtree_size(step: Step, steps: list[Step]) -> int:
    below, frontier = 0, [step.id]
    while frontier:
        children = [s.id for s in steps if s.parent_id in frontier]
        below += len(children)
        frontier = children
    return below


def _changed_values(step: Step, posted: dict[str, Any], changed: set[str], name: str) -> dict[str, Any]:
    """A stale tab's save: only the fields this tab changed apply onto the current config, so the other
    tab's edits to other fields survive. The same field edited in both: the later write wins."""
    values = {}
    for field in changed:
        # A row of a paths widget posts config-paths-<n>-<key>: the whole "paths" setting changed.
        key = field[7:].split("-", 1)[0]
        if field.startswith("config-") and key in posted:
            values[key] = posted[key]
    if "name" in changed:
        step.name = name
    return values


def _saved_config(
    step: Step, values: dict[str, Any], tenant_id: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """The config to store and its problems: the clean settings when the form is valid, else what was
    typed (nothing is lost while it is still wrong), except another workspace's id, which is never stored."""
    form = get_kind(step.kind).form({**step.config, **values}, tenant_id)
    if form.is_valid():
        return form.stored_config(), {}
    return form.draft_config(step.config), form.error_messages()


@checks_nul_itself
@login_required
@require_POST
def save_step(request: TenantRequest, workflow_id: int, step_id: int) -> HttpResponse:
    """Save the form. A tab whose revision is stale still saves the fields it changed and is told so."""
    workflow = get_workflow(request, workflow_id)
    step = get_draft_step(request, workflow, step_id)
    posted, input_errors = posted_values(step, request.POST)
    name = request.POST.get("name", step.name).strip()[:200]
    if NUL in name:
        input_errors["name"] = NUL_ERROR
        name = step.name
    changed = {field for field in request.POST.get("changed", "").split(",") if field}
    with transaction.atomic():
        version = WorkflowVersion.objects.select_for_update().get(pk=step.version_id)
        step.refresh_from_db(fields=["name", "config"])
        kind = get_kind(step.kind)
        redraw_on = kind.form_class.redraw_on
        before = {key: step.config.get(key) for key in redraw_on}
        paths_before = kind.paths(step.config or {})
        stale = request.POST.get("revision", "") != str(version.revision)
        if stale:
            values = _changed_values(step, posted, changed, name)
        else:
            values, step.name = posted, name
        step.config, problems = _saved_config(step, values, workflow.tenant_id)
        step.save(update_fields=["name", "config"])
        paths_changed = not kind.has_paths and kind.paths(step.config or {}) != paths_before
        if paths_changed:
            _children_onto_first_path(step, kind.paths(step.config or {}))
        version.revision += 1
        version.save(update_fields=["revision"])
    errors = {**(problems or get_kind(step.kind).live_problems(step)), **input_errors}
    context = panel_context(request, workflow, step, list(version.steps.all()), errors)
    # The node on the page: the id the form posted to. On the first change of a published workflow that is
    # the live step's id (its node is what the canvas shows), while `step` is the new draft's copy.
    context.update(
        {"workflow": workflow, "draft": version, "stale": stale, "saved": True, "node_id": step_id}
    )
    if paths_changed:
        # The step gained or lost its fixed paths (a wait switched to or from "until a row matches"):
        # the canvas draws them, so draw it again with the panel.
        from workflows.views.builder import builder_context

        body = render(
            request, "workflows/_builder_body.html", builder_context(request, workflow, version, step)
        )
        return reswap(retarget(body, "#builder-body"), "innerHTML")
    if stale or any(step.config.get(key) != value for key, value in before.items()):
        # Draw the panel again: it shows the merged draft, or the options of a new table or data source.
        response = render(request, "workflows/_panel.html", context)
        return reswap(retarget(response, "#panel"), "innerHTML")
    return render(request, "workflows/_saved.html", context)


def _children_onto_first_path(step: Step, paths: list[tuple[str, str]]) -> None:
    """A step that gained fixed paths puts its children on the first (a wait's "Row matched"); one that
    lost them takes them back as ordinary children."""
    Step.objects.filter(parent=step).update(path=paths[0][0] if paths else "")
