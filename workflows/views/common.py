"""Lookups every workflow view shares: through the current tenant only, so other tenants' ids are 404."""

from __future__ import annotations

from django.http import HttpRequest

from tenants.scoping import get_for_tenant_or_404
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.steps import ConfigError, get_kind


def get_workflow(request: HttpRequest, workflow_id: int) -> Workflow:
    return get_for_tenant_or_404(Workflow, request.tenant, pk=workflow_id)


def get_draft_step(request: HttpRequest, workflow: Workflow, step_id: int) -> Step:
    steps = Step.objects.select_related("version").filter(
        version__workflow=workflow, version__state=WorkflowVersion.State.DRAFT
    )
    return get_for_tenant_or_404(steps, request.tenant, pk=step_id)


def get_version(request: HttpRequest, workflow: Workflow, version_id: int) -> WorkflowVersion:
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
