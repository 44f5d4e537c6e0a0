"""Items to test with: a sample shaped like the trigger's item, or live rows of the trigger's table.

Live rows are read through integrations.query's read-only connection (statement timeout, read-only
transaction), newest first by primary key, and can be searched by any text in the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from integrations.datasources.connection import DataSourceUnavailable
from integrations.datasources.introspection import list_columns, primary_key
from integrations.models import DataSource
from integrations.query import QueryError, connect_for_tenant_sql, fetch_rows
from runs.models import Run
from workflows.models import Step, Workflow
from workflows.steps import ConfigError, get_kind
from workflows.steps.base import WatchedTable

LIVE_ROWS = 20
# A placeholder per PostgreSQL type family, so a sample item has the right shape to edit.
SAMPLE_BY_TYPE: tuple[tuple[str, Any], ...] = (
    ("int", 1),
    ("numeric", 1.5),
    ("double", 1.5),
    ("real", 1.5),
    ("bool", True),
    ("timestamp", "2026-01-01T12:00:00+00:00"),
    ("date", "2026-01-01"),
    ("json", {}),
    ("uuid", "00000000-0000-0000-0000-000000000000"),
)


@dataclass
class LiveRows:
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    table: str = ""

    @property
    def columns(self) -> list[str]:
        """The rows' columns in the table's order (every row of one SELECT * has the same keys)."""
        return list(self.rows[0]) if self.rows else []

    @property
    def cells(self) -> list[tuple[dict[str, Any], list[Any]]]:
        """Each row with its values in column order, for the page's table."""
        return [(row, [row.get(column) for column in self.columns]) for row in self.rows]


def sample_value(column_name: str, column_type: str) -> Any:
    if "email" in column_name:
        return "someone@example.com"
    for prefix, value in SAMPLE_BY_TYPE:
        if prefix in column_type:
            return value
    return ""


def watched_table(root: Step | None) -> WatchedTable | None:
    """The table whose rows start runs of this trigger (None when its kind watches no table)."""
    if root is None:
        return None
    try:
        return get_kind(root.kind).watched_table(root.config or {})
    except ConfigError:
        return None


def trigger_source(tenant, watched: WatchedTable | None) -> DataSource | None:
    """The data source of a watched table (None for triggers without one or an unset table)."""
    if watched is None or not watched.table:
        return None
    return DataSource.objects.for_tenant(tenant).filter(pk=watched.datasource).first()


def sample_item(tenant, workflow: Workflow, root: Step | None) -> dict[str, Any]:
    """The table's columns with placeholder values, else the trigger's own sample (a webhook's sample
    body), else the latest event's payload, else {}."""
    watched = watched_table(root)
    source = trigger_source(tenant, watched)
    if source is not None and watched is not None:
        try:
            columns = list_columns(source, watched.schema, watched.table)
        except DataSourceUnavailable:
            columns = []
        if columns:
            return {column.name: sample_value(column.name, column.type) for column in columns}
    return remembered_item(tenant, workflow, root)


def remembered_item(tenant, workflow: Workflow, root: Step | None) -> dict[str, Any]:
    """An item Rowbell already has, without asking the customer's database: the trigger's own sample,
    else the latest event's payload, else {}."""
    if root is not None:
        try:
            typed = get_kind(root.kind).sample_item(root.config or {})
        except ConfigError:
            typed = {}
        if typed:
            return typed
    latest = Run.objects.for_tenant(tenant).filter(workflow=workflow).order_by("-created_at", "-id").first()
    return latest.payload if latest is not None else {}


def live_rows(tenant, root: Step | None, search: str = "") -> LiveRows:
    """Recent rows of a database trigger's table (optionally only rows containing `search`)."""
    watched = watched_table(root)
    source = trigger_source(tenant, watched)
    if source is None or watched is None:
        return LiveRows(error="Live rows come from a database trigger's table; this workflow has none.")
    schema, table = watched.schema, watched.table
    try:
        key = primary_key(source, schema, table)
        with connect_for_tenant_sql(source.connection_url) as conn:
            query = sql.SQL("SELECT * FROM {}.{} AS t").format(sql.Identifier(schema), sql.Identifier(table))
            params: list[Any] = []
            if search:
                query += sql.SQL(" WHERE t::text ILIKE %s")
                params.append(f"%{search}%")
            if key:
                query += sql.SQL(" ORDER BY {} DESC").format(sql.SQL(", ").join(map(sql.Identifier, key)))
            query += sql.SQL(" LIMIT {}").format(sql.Literal(LIVE_ROWS))
            rows = fetch_rows(conn, query.as_string(conn), params)
    except (QueryError, DataSourceUnavailable) as exc:
        return LiveRows(error=f"Cannot read {schema}.{table}: {getattr(exc, 'message', exc)}", table=table)
    return LiveRows(rows=rows, table=f"{schema}.{table}")
