"""A step's config may name only its own workspace's objects (data sources, email senders; an email's
topic and layout).

Checked where a config is written or frozen: the builder's save (the other workspace's id is not
stored), `import_workflow`, and publishing. Another workspace's id and a missing one get the same
answer, so the message tells nothing about other workspaces. The run would also refuse it
(runs/engine/context.py looks data sources up within the run's tenant); this says so at save time.
"""

from __future__ import annotations

from typing import Any

from consent.models import EmailLayout, Topic
from integrations.models import DataSource, Sender
from workflows.steps import ConfigError, get_kind

# The words database_trigger.on_publish uses for a data source deleted since.
NOT_HERE = "This data source does not exist (any more): choose another one."
SENDER_NOT_HERE = "This sender does not exist (any more): choose another one, or the default."
REFERENCED = {"datasource": (DataSource, NOT_HERE), "sender": (Sender, SENDER_NOT_HERE)}


def foreign_references(tenant_id: int, kind: str, config: dict[str, Any]) -> dict[str, str]:
    """Fields of `config` that name an object this tenant does not have: {field: message}."""
    try:
        fields = get_kind(kind).fields
    except ConfigError:
        return {}
    problems: dict[str, str] = {}
    for spec in fields:
        value = config.get(spec.name)
        referenced = _referenced()
        if (
            spec.widget not in referenced
            or value in (None, "")
            or (spec.widget == "layout" and value == "none")
        ):
            continue
        model, message = referenced[spec.widget]
        pk = _int(value)
        if pk is None or not model.objects.filter(tenant_id=tenant_id, pk=pk).exists():
            problems[spec.name] = message
    return problems


# An email step's topic or layout deleted since (or another workspace's id).
NOT_HERE_EMAIL = {
    "topic": "This topic does not exist (any more): choose another one.",
    "layout": "This layout does not exist (any more): choose another one.",
}


def _referenced() -> dict[str, tuple[Any, str]]:
    """{widget: (the model its value names, the message when this tenant has no such row)}."""
    return {
        **REFERENCED,
        "topic": (Topic, NOT_HERE_EMAIL["topic"]),
        "layout": (EmailLayout, NOT_HERE_EMAIL["layout"]),
    }


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
