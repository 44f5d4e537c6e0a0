"""Reading the trigger's row again, by primary key, when a wait ends (the wait step's `reread` option).

The run's trigger must be a database trigger: its data source, schema and table say where the row lives,
and the run's payload (the row as it was logged) holds the primary key's values. The query is Rowbell's
own (a SELECT by key with quoted identifiers and parameters), sent like every query to a customer's
database: read-only, under the statement timeout, on the batch's connection to that data source.
"""

from __future__ import annotations

from typing import Any

from integrations.failures import Failure
from integrations.query import QueryError, fetch_rows
from workflows.steps.context import StepContext

# Keys per batched re-read: well inside the enrich row cap and PostgreSQL's parameter limit.
READ_CHUNK = 500

PRIMARY_KEY_SQL = """
SELECT a.attname AS name
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s
ORDER BY k.position
"""


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def trigger_table(ctx: StepContext, label: str = "Wait") -> tuple[int, str, str]:
    """(data source id, schema, table) of the run's database trigger; a permanent Failure otherwise."""
    cache = ctx.resources.cache
    key = ("reread-trigger", ctx.step.version_id)
    if key not in cache:
        root = ctx.step.version.root_step()
        config = (root.config or {}) if root is not None else {}
        if root is None or root.kind != "database_trigger" or not config.get("table"):
            cache[key] = None
        else:
            cache[key] = (int(config["datasource"]), config.get("schema") or "public", config["table"])
    if cache[key] is None:
        raise Failure(
            f"{label}: “read the row again” needs a database trigger (the row to read is the trigger's).",
            permanent=True,
        )
    target: tuple[int, str, str] = cache[key]
    return target


def primary_key(ctx: StepContext, conn: Any, schema: str, table: str, label: str = "Wait") -> list[str]:
    cache = ctx.resources.cache
    key = ("reread-pk", schema, table)
    if key not in cache:
        cache[key] = [row["name"] for row in fetch_rows(conn, PRIMARY_KEY_SQL, [schema, table])]
    if not cache[key]:
        raise Failure(
            f"{label}: {schema}.{table} has no primary key, so its row cannot be read again.", permanent=True
        )
    columns: list[str] = cache[key]
    return columns


def reread_row(ctx: StepContext) -> dict[str, Any] | None:
    """The trigger's row as it is now; None when it was deleted."""
    datasource, schema, table = trigger_table(ctx)
    payload = ctx.run_context["payload"]
    try:
        conn = ctx.query_connection(datasource)
        columns = primary_key(ctx, conn, schema, table)
        missing = [c for c in columns if not isinstance(payload, dict) or payload.get(c) is None]
        if missing:
            raise Failure(
                f"Wait: the trigger's row has no {', '.join(missing)} (the primary key of "
                f"{schema}.{table}), so it cannot be read again.",
                permanent=True,
            )
        where = " AND ".join(f"{quoted(c)} = %s" for c in columns)
        sql = f"SELECT * FROM {quoted(schema)}.{quoted(table)} WHERE {where} LIMIT 1"
        rows = fetch_rows(conn, sql, [_param(payload[c]) for c in columns], max_rows=1)
    except QueryError as exc:
        raise Failure(f"Wait: reading the row again: {exc.message}", permanent=exc.permanent) from exc
    return rows[0] if rows else None


def reread_rows(ctx: StepContext, payloads: list[Any], label: str = "Digest") -> list[dict[str, Any] | None]:
    """The trigger rows of many runs as they are now, in the order of `payloads` (None: deleted).

    One SELECT per READ_CHUNK keys (`WHERE (pk…) IN ((…), …)`), read-only on the batch's connection, so a
    digest of 1,000 items costs a handful of statements, not 1,000. A payload without its key is a
    permanent Failure, as for the wait.
    """
    if not payloads:
        return []
    datasource, schema, table = trigger_table(ctx, label)
    try:
        conn = ctx.query_connection(datasource)
        columns = primary_key(ctx, conn, schema, table, label)
        keys = [_key_of(payload, columns, schema, table, label) for payload in payloads]
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), READ_CHUNK):
            chunk = unique[start : start + READ_CHUNK]
            tuples = ", ".join("(" + ", ".join(["%s"] * len(columns)) + ")" for _ in chunk)
            names = ", ".join(quoted(c) for c in columns)
            sql = f"SELECT * FROM {quoted(schema)}.{quoted(table)} WHERE ({names}) IN ({tuples})"
            params = [value for key in chunk for value in key]
            for row in fetch_rows(conn, sql, params, max_rows=len(chunk)):
                found[_matching(row.get(c) for c in columns)] = row
    except QueryError as exc:
        raise Failure(f"{label}: reading the rows again: {exc.message}", permanent=exc.permanent) from exc
    return [found.get(_matching(key)) for key in keys]


def _matching(values: Any) -> tuple[str, ...]:
    """A key as text, so a logged "7" finds the row whose id is 7 (the payload is JSON, the row is typed)."""
    return tuple(str(value) for value in values)


def _key_of(payload: Any, columns: list[str], schema: str, table: str, label: str) -> tuple[Any, ...]:
    missing = [c for c in columns if not isinstance(payload, dict) or payload.get(c) is None]
    if missing:
        raise Failure(
            f"{label}: a trigger row has no {', '.join(missing)} (the primary key of "
            f"{schema}.{table}), so it cannot be read again.",
            permanent=True,
        )
    return tuple(_param(payload[c]) for c in columns)


def _param(value: Any) -> Any:
    """A key value from the logged row (JSON) as a query parameter: text unless it is a plain number."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
