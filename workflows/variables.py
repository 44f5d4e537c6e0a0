"""What the builder knows about the items at a step: the fields above it, and data queries' columns.

A data query's columns come from PostgreSQL itself: the SQL is described (wrapped in `LIMIT 0`, every
placeholder bound as NULL) through integrations.query.read_only_cursor, like every tenant query, which also catches SQL errors while the
person is still typing, before anything runs.
"""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from integrations.models import DataSource
from integrations.query import PLACEHOLDER, QueryError, describe_columns, parametrized
from integrations.templating import TEXT_ENV
from workflows.models import Step
from workflows.steps import ConfigError, get_kind


def ancestors(step: Step, steps_by_id: dict[int, Step]) -> list[Step]:
    """The steps above `step`, root first."""
    chain = []
    current = steps_by_id.get(step.parent_id) if step.parent_id else None
    while current is not None:
        chain.append(current)
        current = steps_by_id.get(current.parent_id) if current.parent_id else None
    return list(reversed(chain))


def describe_query(tenant, config: dict[str, Any]) -> tuple[list[str], str]:
    """(column names, error message) of a data query's SQL; the error is "" when it is fine."""
    sql = (config.get("sql") or "").strip().rstrip(";")
    source = DataSource.objects.for_tenant(tenant).filter(pk=_int(config.get("datasource"))).first()
    if not sql or source is None:
        return [], ""
    count = len(PLACEHOLDER.findall(sql))
    text = parametrized(sql)
    try:
        return describe_columns(source.connection_url, text, [None] * count), ""
    except QueryError as exc:
        return [], exc.message
    except Exception as exc:  # psycopg's errors: the message is what the person needs to see
        return [], _first_line(exc)


def fields_after(tenant, step: Step, input_fields: list[str]) -> list[str]:
    if step.kind == "data_query":
        columns, _ = describe_query(tenant, step.config)
        mode = step.config.get("mode", "fanout")
        if mode == "fanout":
            return columns
        if mode == "first":
            return _merge(input_fields, columns)
        return _merge(input_fields, [step.config.get("into") or "rows"])
    try:
        return get_kind(step.kind).output_fields(step, input_fields)
    except (ConfigError, KeyError, TypeError, ValueError):
        return input_fields


def available_fields(tenant, step: Step, steps_by_id: dict[int, Step]) -> list[str]:
    """Item fields a template at `step` can use (the trigger's columns, data queries' columns above)."""
    fields: list[str] = []
    for above in ancestors(step, steps_by_id):
        fields = fields_after(tenant, above, fields)
    return fields


def _merge(first: list[str], second: list[str]) -> list[str]:
    return first + [name for name in second if name not in first]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def referenced_fields(text: str, expression: bool = False) -> list[str]:
    """The item fields a template (or an expression) reads: `item.name`, `item['name']`, in order."""
    source = "{{ " + text + " }}" if expression else text
    try:
        tree = TEXT_ENV.parse(source or "")
    except TemplateSyntaxError:
        return []  # the syntax error is reported on its own
    found: list[str] = []
    methods = {id(call.node) for call in tree.find_all(nodes.Call)}  # item.get('x'), item.items()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "item") or id(node) in methods:
            continue
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name not in found:
            found.append(name)
    return found


def unknown_variables_warning(text: str, known: list[str], expression: bool = False) -> str:
    """ "Unknown variable item.nmae (did you mean item.name?)", or "" when every field is known.

    Only when the fields at this step are known (a webhook without a sample knows none): a warning, not
    an error, since a row can carry fields the builder cannot see.
    """
    import difflib

    if not known or not isinstance(text, str):
        return ""
    unknown = [name for name in referenced_fields(text, expression) if name not in known]
    if not unknown:
        return ""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"item.{name}" + (f" (did you mean item.{close[0]}?)" if close else ""))
    return (
        "Unknown variable"
        + ("s " if len(parts) > 1 else " ")
        + ", ".join(parts)
        + "; the item has no such field here."
    )
