"""Workflows as files: a version's step tree as JSON, so that workflows can live in git.

`export_workflow(workflow, version=None) -> dict` and `import_workflow(data, tenant, *, workflow=None,
publish=False, user=None) -> Workflow`. The format is documented in docs/workflow-format.md. Import
validates every step with its kind (errors name the step's path and field, publishing's too) and changes
nothing when anything is wrong: it runs in one transaction.

Files are portable between tenants and installations: every data source is written by its name, never its
id, and export decrypts nothing (a Slack step's encrypted URL is carried as the token it is stored as).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from consent.models import EmailLayout, Topic
from integrations.models import DataSource, Sender
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.paths import path_problem
from workflows.publishing import PublishError, get_or_create_draft, publish
from workflows.steps import ConfigError, get_kind
from workflows.steps.references import foreign_references

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
    steps = list(version.steps.order_by("position", "id"))
    by_parent: dict[int | None, list[Step]] = {}
    for step in steps:
        by_parent.setdefault(step.parent_id, []).append(step)
    sources = dict(DataSource.objects.filter(tenant_id=workflow.tenant_id).values_list("pk", "name"))
    named = {field: _names(model, workflow.tenant_id) for field, model in NAMED_BY_NAME.items()}
    senders = dict(Sender.objects.filter(tenant_id=workflow.tenant_id).values_list("pk", "name"))
    errors: dict[str, dict[str, str]] = {}

    def node(step: Step, path: str) -> dict[str, Any]:
        config = dict(step.config)
        for name in datasource_fields(step.kind):
            if config.get(name) in (None, ""):
                continue
            pk = _int(config[name])
            if pk in sources:
                config[name] = {"name": sources[pk]}
            else:
                errors[path] = {name: "This step's data source does not exist any more: choose another one."}
        for field, names in named.items():
            if step.kind == "send_email" and config.get(field) in names:
                config[field] = {"name": names[config[field]]}
        if step.kind == "send_email" and config.get("sender") not in (None, ""):
            pk = _int(config["sender"])
            if pk in senders:
                config["sender"] = {"name": senders[pk]}
            else:
                errors[path] = {"sender": "This step's sender does not exist any more: choose another one."}
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


def datasource_fields(kind_name: str) -> list[str]:
    """The config fields of a kind that hold a data source (a tenant's id in the database, a name in files)."""
    try:
        return [spec.name for spec in get_kind(kind_name).fields if spec.widget == "datasource"]
    except ConfigError:
        return []


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


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
    sources: dict[str, list[int]] = {}
    for pk, name in DataSource.objects.filter(tenant=tenant).values_list("pk", "name"):
        sources.setdefault(name, []).append(pk)
    senders = dict(Sender.objects.filter(tenant=tenant).values_list("name", "pk"))
    errors: dict[str, dict[str, str]] = {}
    paths: dict[int, str] = {}
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
        _add(data["trigger"], draft, None, 0, "trigger", (sources, senders), errors, paths)
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


# Email step fields that name a tenant's row: exported as {"name": ...}, imported by that name.
NAMED_BY_NAME = {"topic": Topic, "layout": EmailLayout}


def _names(model, tenant_id: int) -> dict[int, str]:
    return dict(model.objects.filter(tenant_id=tenant_id).values_list("pk", "name"))


def _resolve_named(config: dict[str, Any], tenant_id: int) -> dict[str, str]:
    """Replace {"name": ...} topics and layouts with this tenant's ids; errors name what is missing."""
    errors = {}
    for field, model in NAMED_BY_NAME.items():
        value = config.get(field)
        if isinstance(value, dict):
            name = value.get("name")
            pk = model.objects.filter(tenant_id=tenant_id, name=name).values_list("pk", flat=True).first()
            if pk is None:
                what = model._meta.verbose_name
                errors[field] = f"This tenant has no {what} named “{name}”; create it first."
            else:
                config[field] = pk
    return errors


def _add(node, draft, parent, position, path, names, errors, paths) -> None:
    """`names`: (the tenant's data sources by name, its senders by name)."""
    sources, senders = names
    if not isinstance(node, dict) or not isinstance(node.get("kind"), str):
        errors[path] = {"kind": 'Each step needs a kind, like "send_email".'}
        return
    config = dict(node.get("config") or {})
    if named_errors := _resolve_named(config, draft.tenant_id):
        errors[path] = named_errors
        return
    for name in datasource_fields(node["kind"]):
        problem = _resolve_datasource(config, name, sources)
        if problem:
            errors[path] = {name: problem}
            return
    if node["kind"] == "send_email":
        problem = _resolve_sender(config, senders)
        if problem:
            errors[path] = {"sender": problem}
            return
    try:
        kind = get_kind(node["kind"])
        cleaned = kind.validate(config)
    except ConfigError as exc:
        errors[path] = exc.errors
        return
    foreign = foreign_references(draft.tenant_id, node["kind"], cleaned)
    if foreign:
        label = str(node.get("name") or node["kind"])
        errors[path] = {field: f"Step “{label}”: {message}" for field, message in foreign.items()}
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
        _add(child, draft, step, index, f"{path}/{index}", names, errors, paths)


def _resolve_sender(config: dict[str, Any], senders: dict[str, int]) -> str:
    """Replace `{"name": …}` by the tenant's sender of that name (none: the tenant's default sender)."""
    value = config.get("sender")
    if value in (None, ""):
        return ""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return 'Name the sender, like {"name": "Support"}: ids differ between tenants and installations.'
    if value["name"] not in senders:
        return f"This tenant has no email sender named “{value['name']}”; add it first (Settings → Email)."
    config["sender"] = senders[value["name"]]
    return ""


def _resolve_datasource(config: dict[str, Any], field: str, sources: dict[str, list[int]]) -> str:
    """Replace `{"name": …}` by the tenant's data source of that name; a message when there is none (or a
    bare id, which means something else in another tenant or installation)."""
    value = config.get(field)
    if value in (None, ""):
        return ""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return (
            'Name the data source, like {"name": "App DB"}: ids differ between tenants and installations '
            "(export the workflow again to get names)."
        )
    matches = sources.get(value["name"], [])
    if not matches:
        return f"This tenant has no data source named “{value['name']}”; add it first (manage.py add_datasource)."
    if len(matches) > 1:
        return f"This tenant has {len(matches)} data sources named “{value['name']}”; rename all but one."
    config[field] = matches[0]
    return ""
