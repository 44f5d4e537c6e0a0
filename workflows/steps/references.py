"""A step's config may name only its own workspace's objects (data sources, email senders; an email's
topic and layout). Which fields do is read from the kinds' field widgets, for every kind.

Checked where a config is written or frozen: the builder's save (the other workspace's id is not
stored), `import_workflow`, and publishing. Another workspace's id and a missing one get the same
answer, so the message tells nothing about other workspaces. The run would also refuse it
(runs/engine/context.py looks data sources up within the run's tenant); this says so at save time.
Workflow files (workflows/files.py) write these fields by the row's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Model

from consent.email_step import NO_LAYOUT
from consent.models import EmailLayout, Topic
from integrations.models import DataSource, Sender
from workflows.steps import ConfigError, get_kind
from workflows.steps.base import Field

# The words database_trigger.on_publish uses for a data source deleted since.
NOT_HERE = "This data source does not exist (any more): choose another one."
SENDER_NOT_HERE = "This sender does not exist (any more): choose another one, or the default."
# An email step's topic or layout deleted since (or another workspace's id).
NOT_HERE_EMAIL = {
    "topic": "This topic does not exist (any more): choose another one.",
    "layout": "This layout does not exist (any more): choose another one.",
}


@dataclass(frozen=True)
class Reference:
    """What a field with a reference widget names. `what`, `example` and `add_it` word the messages of
    workflow files (a row named in a file: "Name the data source, like {"name": "App DB"}")."""

    model: type[Model]
    not_here: str  # this tenant has no such row
    what: str
    example: str
    add_it: str


# {widget: what a field with this widget names}.
REFERENCED: dict[str, Reference] = {
    "datasource": Reference(
        DataSource, NOT_HERE, "data source", "App DB", "add it first (manage.py add_datasource)"
    ),
    "sender": Reference(
        Sender, SENDER_NOT_HERE, "email sender", "Support", "add it first (Settings → Email)"
    ),
    "topic": Reference(Topic, NOT_HERE_EMAIL["topic"], "topic", "Product news", "create it first"),
    "layout": Reference(EmailLayout, NOT_HERE_EMAIL["layout"], "email layout", "Brand", "create it first"),
}


def reference_fields(kind: str) -> list[Field]:
    """The fields of a kind whose value names a row of the tenant (none for an unknown kind)."""
    try:
        fields = get_kind(kind).fields
    except ConfigError:
        return []
    return [spec for spec in fields if spec.widget in REFERENCED]


def names_nothing(spec: Field, value: Any) -> bool:
    """An unset reference: blank, or a layout field's "no layout" (it names no row)."""
    return value in (None, "") or (spec.widget == "layout" and value == NO_LAYOUT)


def foreign_references(tenant_id: int, kind: str, config: dict[str, Any]) -> dict[str, str]:
    """Fields of `config` that name an object this tenant does not have: {field: message}."""
    problems: dict[str, str] = {}
    for spec in reference_fields(kind):
        value = config.get(spec.name)
        if names_nothing(spec, value):
            continue
        reference = REFERENCED[spec.widget]
        pk = reference_id(value)
        if pk is None or not reference.model._default_manager.filter(tenant_id=tenant_id, pk=pk).exists():
            problems[spec.name] = reference.not_here
    return problems


def reference_id(value: Any) -> int | None:
    """The row id a reference field holds (None for anything that is not one)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
