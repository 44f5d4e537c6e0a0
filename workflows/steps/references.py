"""A step's config may name only its own workspace's objects (today: data sources).

Checked where a config is written or frozen: the builder's save (the other workspace's id is not
stored), `import_workflow`, and publishing. Another workspace's id and a missing one get the same
answer, so the message tells nothing about other workspaces. The run would also refuse it
(runs/engine/context.py looks data sources up within the run's tenant); this says so at save time.
"""

from __future__ import annotations

from typing import Any

from integrations.models import DataSource
from workflows.steps import ConfigError, get_kind

# The words database_trigger.on_publish uses for a data source deleted since.
NOT_HERE = "This data source does not exist (any more): choose another one."


def foreign_references(tenant_id: int, kind: str, config: dict[str, Any]) -> dict[str, str]:
    """Fields of `config` that name an object this tenant does not have: {field: message}."""
    try:
        fields = get_kind(kind).fields
    except ConfigError:
        return {}
    problems: dict[str, str] = {}
    for spec in fields:
        value = config.get(spec.name)
        if spec.widget != "datasource" or value in (None, ""):
            continue
        pk = _int(value)
        if pk is None or not DataSource.objects.filter(tenant_id=tenant_id, pk=pk).exists():
            problems[spec.name] = NOT_HERE
    return problems


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
