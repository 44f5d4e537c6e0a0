"""Lookups every workflow view shares: through the current tenant only, so other tenants' ids are 404."""

from __future__ import annotations

from typing import Any

from django.http import Http404

from integrations.templating import TemplateError, render_header
from tenants.request import TenantRequest
from tenants.scoping import get_for_tenant_or_404
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_draft, get_or_create_draft, latest_published
from workflows.steps import ConfigError, get_kind


def get_workflow(request: TenantRequest, workflow_id: int) -> Workflow:
    return get_for_tenant_or_404(Workflow, request.tenant, pk=workflow_id)


def shown_version(workflow: Workflow) -> WorkflowVersion:
    """What the builder shows: the draft, else the live version (read until the first change starts a
    draft: opening a page writes nothing), else a new empty draft (a workflow with no version at all)."""
    return get_draft(workflow) or latest_published(workflow) or get_or_create_draft(workflow)


def _workflow_step(request: TenantRequest, workflow: Workflow, step_id: int | str) -> Step:
    """A step of the workflow's draft or of one of its published versions (a page drawn before the draft
    existed names the published step)."""
    steps = Step.objects.select_related("version").filter(
        version__workflow=workflow,
        version__state__in=[WorkflowVersion.State.DRAFT, WorkflowVersion.State.PUBLISHED],
    )
    return get_for_tenant_or_404(steps, request.tenant, pk=step_id)


def _same_step_in(version: WorkflowVersion, step: Step) -> Step:
    """The step of `version` with `step`'s key (a copy keeps its key); 404 when the draft dropped it."""
    found = Step.objects.select_related("version").filter(version=version, key=step.key).first()
    if found is None:
        raise Http404("This step is no longer in the draft: reload the builder.")
    return found


def get_draft_step(request: TenantRequest, workflow: Workflow, step_id: int | str) -> Step:
    """The draft step to change. A published step's id (the builder showed the live version) starts the
    draft now and answers its copy of that step: the first change is what creates a draft. An id that is
    not a number (a posted one) is a 404 like a missing one."""
    step = _workflow_step(request, workflow, step_id)
    if step.version.state == WorkflowVersion.State.DRAFT:
        return step
    return _same_step_in(get_or_create_draft(workflow), step)


def get_shown_step(request: TenantRequest, workflow: Workflow, step_id: int) -> Step:
    """The step to show, without writing: the draft's copy when there is a draft, else the published one."""
    step = _workflow_step(request, workflow, step_id)
    if step.version.state == WorkflowVersion.State.DRAFT:
        return step
    draft = get_draft(workflow)
    return step if draft is None else _same_step_in(draft, step)


def get_version(request: TenantRequest, workflow: Workflow, version_id: int) -> WorkflowVersion:
    return get_for_tenant_or_404(
        WorkflowVersion.objects.filter(workflow=workflow), request.tenant, pk=version_id
    )


def build_tree(steps: list[Step]) -> list[dict]:
    """The tree as chains: {"steps": [...], "branches": [chain, ...]}, roots first.

    A chain runs on while each step has exactly one child, and splits into branches where a step has two
    or more, so templates recurse once per branching, not once per step (a long chain of steps would
    otherwise exhaust Python's recursion limit in nested includes). Each step gets `child_count`,
    `summary` and `paths` (its kind's labelled paths, if any); its `kind_label` and `display_name` are
    the model's own.

    Below a step with paths (a branch) the branches are its paths, in order, each with its `label`,
    `path` id and `anchor` (the branch step, for the "+" that adds a step on that path); a path with no
    step yet is an empty chain, and a step on a path the branch no longer has is shown, labelled so.
    """
    children: dict[int | None, list[Step]] = {}
    for step in sorted(steps, key=lambda s: (s.position, s.id)):
        children.setdefault(step.parent_id, []).append(step)

    def chain(first: Step, **labels) -> dict:
        run, step = [], first
        while True:
            below = children.get(step.id, [])
            describe(step, len(below))
            run.append(step)
            if step.paths:
                return {"steps": run, "branches": path_branches(step, below), **labels}
            if len(below) != 1:
                return {"steps": run, "branches": [chain(child) for child in below], **labels}
            step = below[0]

    def path_branches(step: Step, below: list[Step]) -> list[dict]:
        branches = []
        for path_id, label in step.paths:
            on_path = [child for child in below if child.path == path_id]
            labels = {"label": label, "path": path_id, "anchor": step}
            branches += [chain(child, **labels) for child in on_path] or [
                {"steps": [], "branches": [], **labels}
            ]
        known = {path_id for path_id, _label in step.paths}
        for stray in (child for child in below if child.path not in known):
            branches.append(chain(stray, label="(on no path: move or delete)", path=stray.path, anchor=step))
        return branches

    return [chain(root) for root in children.get(None, [])]


# The states a node counts across recent runs, in the order its badges read, with their words.
RECENT_COLUMNS = [
    ("succeeded", "done"),
    ("filtered", "filtered"),
    ("skipped", "skipped"),
    ("pending", "waiting"),
    ("running", "running"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
]


def recent_counts(by_status: dict[str, int]) -> list[tuple[str, str, int]]:
    """A node's counts as (status, words, n), the states with none left out."""
    return [(status, words, by_status[status]) for status, words in RECENT_COLUMNS if by_status.get(status)]


def spoken(summary: str, item: dict[str, Any]) -> str:
    """A node's summary rendered with an example item ("“Welcome to Acme, Grace Hopper” to grace@…"),
    through the engine's sandboxed templating; one that does not render (a field the example lacks, an
    error in the template) stays as written."""
    if "{{" not in summary and "{%" not in summary:
        return summary
    item = item if isinstance(item, dict) else {}
    context = {"item": item, "run": {"id": 0, "event_key": "example", "is_test": True, "payload": item}}
    try:
        return render_header(summary, context)
    except TemplateError:
        return summary


def speak_with_item(steps: list[Step], item: dict[str, Any]) -> None:
    """Every node's summary spoken with the example item (see `spoken`)."""
    for step in steps:
        step.summary = spoken(getattr(step, "summary", ""), item)


def describe(step: Step, child_count: int) -> None:
    """What the templates show on a node, from the step's kind (the kinds' hooks, no kind names here)."""
    step.child_count = child_count
    try:
        kind = get_kind(step.kind)
    except ConfigError:
        step.summary, step.paths = "", []
        return
    step.summary = kind.node_summary(step)
    step.paths = kind.paths(step.config or {})
