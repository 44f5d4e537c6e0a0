"""Workflows as files: a version's step tree as JSON, so that workflows can live in git.

`export_workflow(workflow, version=None) -> dict` and `import_workflow(data, tenant, *, workflow=None,
publish=False, user=None) -> Workflow`. The format is documented in docs/workflow-format.md. Import
validates every step with its kind (errors name the step's path and field, publishing's too) and changes
nothing when anything is wrong: it runs in one transaction.

Files are portable between tenants and installations: every field that names a row of the tenant (a data
source, sender, topic or layout: a `ReferenceField` of the kind's form, workflows/steps/references.py) is
written by the row's name, never its id, and export decrypts nothing (a Slack step's encrypted URL is
carried as the token it is stored as).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from workflows.models import Step, Workflow, WorkflowVersion
from workflows.paths import path_problem
from workflows.publishing import get_or_create_draft, publish
from workflows.steps import ConfigError, get_kind
from workflows.steps.base import PublishError
from workflows.steps.references import ReferenceField, reference_fields

FORMAT = "rowbell.workflow/1"


class WorkflowFileError(Exception):
    """The file cannot be imported. `errors` maps a step path (e.g. `trigger/1/0`) to field messages."""

    def __init__(self, errors: dict[str, dict[str, str]]):
        self.errors = errors
        lines = [
            f"{path}: {field}: {message}"
            for path, fields in errors.items()
            for field, message in fields.items()
        ]
        super().__init__("\n".join(lines))


def export_workflow(workflow: Workflow, version: WorkflowVersion | None = None) -> dict[str, Any]:
    """The published version (or the draft when unpublished, or the given version) as a JSON-able dict."""
    version = version or workflow.published_version or workflow.versions.order_by("-created_at").first()
    if version is None:
        raise WorkflowFileError({"workflow": {"version": "This workflow has no steps to export yet."}})
    steps = list(Step.objects.filter(version=version).order_by("position", "id"))
    by_parent: dict[int | None, list[Step]] = {}
    for step in steps:
        by_parent.setdefault(step.parent_id, []).append(step)
    names: dict[type[ReferenceField], dict[int, str]] = {}  # read once per kind of row
    errors: dict[str, dict[str, str]] = {}

    def node(step: Step, path: str) -> dict[str, Any]:
        config = dict(step.config)
        for name, field in _references(step.kind).items():
            if type(field) not in names:
                names[type(field)] = field.names(workflow.tenant_id)
            config[name], problem = field.export_value(config.get(name), names[type(field)])
            if problem:
                errors[path] = {name: problem}
        exported = {
            "key": str(step.key),
            "kind": step.kind,
            "name": step.name,
            "config": config,
            "children": [
                node(child, f"{path}/{index}") for index, child in enumerate(by_parent.get(step.pk, []))
            ],
        }
        if step.path:
            exported["path"] = step.path
        return exported

    roots = by_parent.get(None, [])
    trigger = node(roots[0], "trigger") if roots else None
    if errors:
        raise WorkflowFileError(errors)
    return {
        "format": FORMAT,
        "name": workflow.name,
        "description": workflow.description,
        "version": version.number,
        "trigger": trigger,
    }


def import_workflow(
    data: dict[str, Any],
    tenant,
    *,
    workflow: Workflow | None = None,
    publish_it: bool = False,
    sandbox: bool = False,
    user=None,
) -> Workflow:
    """Create a workflow (or replace `workflow`'s draft) from an exported dict; optionally publish it."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WorkflowFileError(
            {"file": {"format": f'This is not a Rowbell workflow file ("format": "{FORMAT}").'}}
        )
    if not isinstance(data.get("trigger"), dict):
        raise WorkflowFileError({"file": {"trigger": "The file has no trigger step at the top."}})
    errors: dict[str, dict[str, str]] = {}
    paths: dict[int | None, str] = {}
    with transaction.atomic():
        if workflow is None:
            workflow = Workflow.objects.create(
                tenant=tenant,
                name=str(data.get("name") or "Imported workflow")[:200],
                description=str(data.get("description") or ""),
                created_by=user,
            )
        draft = get_or_create_draft(workflow)
        draft.steps.filter(parent__isnull=True).delete()
        _add(data["trigger"], draft, None, 0, "trigger", errors, paths)
        if errors:
            transaction.set_rollback(True)
            raise WorkflowFileError(errors)
        if publish_it:
            try:
                publish(workflow, user=user, sandbox=sandbox)
            except PublishError as exc:
                # Publishing names steps by id; the file's reader knows them by path.
                raise WorkflowFileError(
                    {paths.get(step_id, "workflow"): fields for step_id, fields in exc.step_errors.items()}
                ) from exc
    workflow.refresh_from_db()
    return workflow


def _add(node, draft, parent, position, path, errors, paths) -> None:
    if not isinstance(node, dict) or not isinstance(node.get("kind"), str):
        errors[path] = {"kind": 'Each step needs a kind, like "send_email".'}
        return
    config = dict(node.get("config") or {})
    unresolved = {}
    for name, field in _references(node["kind"]).items():
        config[name], problem = field.import_value(config.get(name), draft.tenant_id)
        if problem:
            unresolved[name] = problem
    if unresolved:
        errors[path] = unresolved
        return
    try:
        kind = get_kind(node["kind"])
        cleaned = kind.validate(config, draft.tenant_id)
    except ConfigError as exc:
        # A row the tenant does not have is named with the step (the reader looks for it by name).
        label = str(node.get("name") or node["kind"])
        references = _references(node["kind"])
        errors[path] = {
            field: f"Step “{label}”: {message}" if field in references else message
            for field, message in exc.errors.items()
        }
        return
    if (parent is None) != kind.is_trigger:
        errors[path] = {
            "kind": "Only the first step is a trigger." if parent else "The first step must be a trigger."
        }
        return
    on_path = str(node.get("path") or "")
    problem = path_problem(parent, on_path)
    if problem:
        errors[path] = {"path": problem}
        return
    fields = {
        "tenant_id": draft.tenant_id,
        "version": draft,
        "parent": parent,
        "position": position,
        "kind": node["kind"],
        "name": str(node.get("name") or "")[:200],
        "config": cleaned,
        "path": on_path,
    }
    if node.get("key"):
        fields["key"] = node["key"]
    step = Step.objects.create(**fields)
    paths[step.pk] = path
    for index, child in enumerate(node.get("children") or []):
        _add(child, draft, step, index, f"{path}/{index}", errors, paths)


def _references(kind: str) -> dict[str, ReferenceField]:
    try:
        return reference_fields(get_kind(kind).form_class)
    except ConfigError:
        return {}
