"""Workflows as files: a version's step tree as JSON, so that workflows can live in git.

`export_workflow(workflow, version=None) -> dict` and `import_workflow(data, tenant, *, workflow=None,
publish=False, user=None) -> Workflow`. The format is documented in docs/workflow-format.md. Import
validates every step with its kind (errors name the step's path and field) and changes nothing when
anything is wrong: it runs in one transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from integrations.models import DataSource, Sender
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft, publish
from workflows.steps import ConfigError, get_kind

FORMAT = "rowbell.workflow/1"
# Senders are looked up by name like data sources; kept in the same lookup under a key no name can be.
SENDERS = object()


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
    steps = list(version.steps.order_by("position", "id"))
    by_parent: dict[int | None, list[Step]] = {}
    for step in steps:
        by_parent.setdefault(step.parent_id, []).append(step)
    sources = dict(DataSource.objects.filter(tenant_id=workflow.tenant_id).values_list("pk", "name"))
    senders = dict(Sender.objects.filter(tenant_id=workflow.tenant_id).values_list("pk", "name"))

    def node(step: Step) -> dict[str, Any]:
        config = dict(step.config)
        if step.kind == "data_query" and config.get("datasource") in sources:
            config["datasource"] = {"name": sources[config["datasource"]]}
        if step.kind == "send_email" and config.get("sender") in senders:
            config["sender"] = {"name": senders[config["sender"]]}
        return {
            "key": str(step.key),
            "kind": step.kind,
            "name": step.name,
            "config": config,
            "children": [node(child) for child in by_parent.get(step.pk, [])],
        }

    roots = by_parent.get(None, [])
    return {
        "format": FORMAT,
        "name": workflow.name,
        "description": workflow.description,
        "version": version.number,
        "trigger": node(roots[0]) if roots else None,
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
    sources = {name: pk for pk, name in DataSource.objects.filter(tenant=tenant).values_list("pk", "name")}
    sources[SENDERS] = {
        name: pk for pk, name in Sender.objects.filter(tenant=tenant).values_list("pk", "name")
    }
    errors: dict[str, dict[str, str]] = {}
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
        _add(data["trigger"], draft, None, 0, "trigger", sources, errors)
        if errors:
            transaction.set_rollback(True)
            raise WorkflowFileError(errors)
        if publish_it:
            publish(workflow, user=user, sandbox=sandbox)
    workflow.refresh_from_db()
    return workflow


def _add(node, draft, parent, position, path, sources, errors) -> None:
    if not isinstance(node, dict) or not isinstance(node.get("kind"), str):
        errors[path] = {"kind": 'Each step needs a kind, like "send_email".'}
        return
    config = dict(node.get("config") or {})
    source = config.get("datasource")
    if isinstance(source, dict):
        name = source.get("name")
        if name not in sources:
            errors[path] = {"datasource": f"This tenant has no data source named “{name}”; create it first."}
            return
        config["datasource"] = sources[name]
    sender = config.get("sender")
    if isinstance(sender, dict):
        name = sender.get("name")
        if name not in sources[SENDERS]:
            errors[path] = {"sender": f"This tenant has no email sender named “{name}”; create it first."}
            return
        config["sender"] = sources[SENDERS][name]
    try:
        kind = get_kind(node["kind"])
        cleaned = kind.validate(config)
    except ConfigError as exc:
        errors[path] = exc.errors
        return
    if (parent is None) != kind.is_trigger:
        errors[path] = {
            "kind": "Only the first step is a trigger." if parent else "The first step must be a trigger."
        }
        return
    fields = {
        "tenant_id": draft.tenant_id,
        "version": draft,
        "parent": parent,
        "position": position,
        "kind": node["kind"],
        "name": str(node.get("name") or "")[:200],
        "config": cleaned,
    }
    if node.get("key"):
        fields["key"] = node["key"]
    step = Step.objects.create(**fields)
    for index, child in enumerate(node.get("children") or []):
        _add(child, draft, step, index, f"{path}/{index}", sources, errors)
