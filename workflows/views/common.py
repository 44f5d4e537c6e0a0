"""Lookups every workflow view shares: through the current tenant only, so other tenants' ids are 404."""

from __future__ import annotations

from django.http import HttpRequest

from tenants.scoping import get_for_tenant_or_404
from workflows.models import Step, Workflow, WorkflowVersion


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
    otherwise exhaust Python's recursion limit in nested includes). Each step gets `child_count`.
    """
    children: dict[int | None, list[Step]] = {}
    for step in sorted(steps, key=lambda s: (s.position, s.id)):
        children.setdefault(step.parent_id, []).append(step)

    def chain(first: Step) -> dict:
        run, step = [], first
        while True:
            below = children.get(step.id, [])
            step.child_count = len(below)
            run.append(step)
            if len(below) != 1:
                return {"steps": run, "branches": [chain(child) for child in below]}
            step = below[0]

    return [chain(root) for root in children.get(None, [])]
