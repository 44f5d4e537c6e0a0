"""The builder: the draft's step tree, adding and deleting steps, and the selected step's panel."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import F, Max
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from integrations import clock
from runs.charts.queries import NODE_DAYS, NODE_RUNS, node_counts
from runs.samples import remembered_item
from tenants.request import TenantRequest
from workflows.forms.step_form import with_single_datasource
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.paths import path_problem
from workflows.publishing import delete_draft_step, get_or_create_draft, latest_published
from workflows.steps import ConfigError, get_kind, kind_choices
from workflows.steps.forms import blank
from workflows.views.common import (
    RECENT_COLUMNS,
    build_tree,
    get_draft_step,
    get_shown_step,
    get_workflow,
    recent_counts,
    shown_version,
    speak_with_item,
)
from workflows.views.panel import panel_context

ADD_MODES = ("child", "insert")


def bump_revision(version: WorkflowVersion) -> int:
    WorkflowVersion.objects.filter(pk=version.pk).update(revision=F("revision") + 1)
    version.refresh_from_db(fields=["revision"])
    return version.revision


def builder_context(
    request: TenantRequest, workflow: Workflow, draft: WorkflowVersion, selected: Step | None
) -> dict[str, Any]:
    steps = list(draft.steps.all())
    invalid = {}
    for step in steps:
        try:
            get_kind(step.kind).validate(step.config)
        except ConfigError as exc:
            invalid[step.id] = exc.errors
    tree = build_tree(steps)
    root = next((step for step in steps if step.parent_id is None), None)
    speak_with_item(steps, remembered_item(request.tenant, workflow, root))
    recent = node_counts(request.tenant, workflow, clock.now())
    for step in steps:
        step.recent = recent_counts(recent.get(str(step.key), {}))
    context: dict[str, Any] = {
        "workflow": workflow,
        "draft": draft,
        "tree": tree,
        "recent_steps": [step for step in steps if step.recent],
        "recent_days": NODE_DAYS,
        "recent_runs": NODE_RUNS,
        "recent_columns": RECENT_COLUMNS,
        "invalid": invalid,
        "step_kinds": kind_choices(triggers=False),
        "trigger_kinds": kind_choices(triggers=True),
        "published": latest_published(workflow),
        "selected": selected,
        # Reversed once: the tree repeats them for every step and menu entry.
        "add_url": reverse("workflows:add_step", args=[workflow.pk]),
        "steps_url": reverse("workflows:step_panel", args=[workflow.pk, 0]).removesuffix("0/"),
    }
    if selected is not None:
        context.update(panel_context(request, workflow, selected, steps))
        if not request.GET.get("check"):
            # Opening a step points only at what was typed wrong; blanks are pointed out once the person
            # edits the step or comes from the publish dialog's list (?check=1).
            form = context["form"]
            form.hidden_errors = {name for name in form.fields if blank(form.raw(name))}
    return context


@login_required
def builder(request: TenantRequest, workflow_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    version = shown_version(workflow)
    selected = (
        version.steps.filter(pk=request.GET.get("step") or 0).first() if request.GET.get("step") else None
    )
    if selected is None:
        selected = version.root_step()
    return render(request, "workflows/builder.html", builder_context(request, workflow, version, selected))


@login_required
def step_panel(request: TenantRequest, workflow_id: int, step_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    step = get_shown_step(request, workflow, step_id)
    context = builder_context(request, workflow, step.version, step)
    return render(request, "workflows/_builder_body.html", context)


@login_required
@require_POST
def add_step(request: TenantRequest, workflow_id: int) -> HttpResponse:
    """Add a step of `kind`: as the trigger, as a child (a parallel branch below the anchor when it has
    children already), or between a step and its children ("insert")."""
    workflow = get_workflow(request, workflow_id)
    draft = get_or_create_draft(workflow)
    kind_name, mode = request.POST.get("kind", ""), request.POST.get("mode", "child")
    try:
        kind = get_kind(kind_name)
    except ConfigError:
        return HttpResponse("Choose a step kind from the menu.", status=400)
    anchor = None
    if request.POST.get("anchor"):
        anchor = get_draft_step(request, workflow, request.POST["anchor"])
        if anchor.version_id != draft.pk or mode not in ADD_MODES:
            return HttpResponse("Add steps below a step of this draft.", status=400)
    if (anchor is None) != kind.is_trigger:
        return HttpResponse("A workflow starts with one trigger, and only the first step is one.", status=400)
    path = request.POST.get("path", "")
    if anchor is not None:
        problem = path_problem(anchor, path)
        if problem:
            return HttpResponse(problem, status=400)
    with transaction.atomic():
        WorkflowVersion.objects.select_for_update().get(pk=draft.pk)
        if anchor is None and draft.steps.exists():
            return HttpResponse("This workflow already has a trigger.", status=400)
        step = _insert(draft, kind, anchor, mode, path)
        bump_revision(draft)
    return render(request, "workflows/_builder_body.html", builder_context(request, workflow, draft, step))


def _insert(draft: WorkflowVersion, kind, anchor: Step | None, mode: str, path: str = "") -> Step:
    """Add the step. `path`: under a branch, the path it goes on (insert: at the top of that path)."""
    siblings = draft.steps.filter(parent=anchor)
    position = (siblings.aggregate(n=Max("position"))["n"] or 0) + 1 if siblings.exists() else 0
    config = with_single_datasource(kind, kind.default_config(), draft.tenant_id)
    step = Step.objects.create(
        tenant_id=draft.tenant_id,
        version=draft,
        parent=anchor,
        position=position,
        kind=kind.kind,
        name=kind.label,
        config=config,
        path=path,
    )
    if mode == "insert" and anchor is not None:
        # The new step takes the anchor's children (on its path, under a branch): it sits on the
        # connection between them. A new step with paths of its own puts them on its first path.
        adopted = draft.steps.filter(parent=anchor).exclude(pk=step.pk)
        if path:
            adopted = adopted.filter(path=path)
        own_paths = kind.paths(config)
        adopted.update(parent=step, path=own_paths[0][0] if own_paths else "")
        Step.objects.filter(pk=step.pk).update(position=0)
    return step


@login_required
@require_POST
def delete_step(request: TenantRequest, workflow_id: int, step_id: int) -> HttpResponse:
    workflow = get_workflow(request, workflow_id)
    step = get_draft_step(request, workflow, step_id)
    draft = step.version
    with transaction.atomic():
        WorkflowVersion.objects.select_for_update().get(pk=draft.pk)
        delete_draft_step(step)
        bump_revision(draft)
    selected = draft.steps.filter(pk=step.parent_id).first() if step.parent_id else None
    return render(
        request, "workflows/_builder_body.html", builder_context(request, workflow, draft, selected)
    )


PATH_ACTIONS = ("add", "remove", "up")


@login_required
@require_POST
def branch_path(request: TenantRequest, workflow_id: int, step_id: int) -> HttpResponse:
    """Add a path to a step with paths, remove one (with the steps on it), or move one up."""
    workflow = get_workflow(request, workflow_id)
    step = get_draft_step(request, workflow, step_id)
    action, path_id = request.POST.get("action", ""), request.POST.get("path", "")
    if action not in PATH_ACTIONS or not step.step_kind.has_paths:
        return HttpResponse("This step has no paths to change.", status=400)
    draft = step.version
    with transaction.atomic():
        WorkflowVersion.objects.select_for_update().get(pk=draft.pk)
        step.refresh_from_db(fields=["config"])
        paths = [dict(p) for p in step.config.get("paths") or [] if isinstance(p, dict)]
        index = next((i for i, p in enumerate(paths) if p.get("id") == path_id), None)
        if action == "add":
            taken = {p.get("id") for p in paths}
            new_id = next(f"p{n}" for n in range(1, 1000) if f"p{n}" not in taken)
            paths.append(
                {"id": new_id, "label": f"Path {len(paths) + 1}", "match": "rule", "operator": "is_true"}
            )
        elif index is None:
            return HttpResponse("That path is not on this step (any more): reload the builder.", status=400)
        elif action == "up" and index > 0:
            paths[index - 1], paths[index] = paths[index], paths[index - 1]
        elif action == "remove":
            if len(paths) == 1:
                return HttpResponse("A branch keeps at least one path.", status=400)
            paths.pop(index)
            for child in draft.steps.filter(parent=step, path=path_id):
                delete_draft_step(child)
        step.config = {**step.config, "paths": paths}
        step.save(update_fields=["config"])
        bump_revision(draft)
    return render(request, "workflows/_builder_body.html", builder_context(request, workflow, draft, step))
