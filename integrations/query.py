"""Read-only queries against a tenant's database, with item values as bound parameters only.

Placeholder syntax: a data query's SQL may contain `{{ expression }}` (a sandboxed Jinja2 expression
over the item, e.g. `{{ item.post_id }}`). Each one is compiled to a bound parameter (`%s`) and its
value sent separately; nothing from the item is ever pasted into the SQL text. A literal `%` in the SQL
is escaped for psycopg by `compile_sql`.

Safety, in layers (the least-privilege role the customer creates is the real boundary):
- one statement, sent with the extended protocol (a named server-side cursor is `DECLARE ... CURSOR FOR
  <query>` with parameters), so `commit; insert ...` is a syntax error, not two statements;
- a READ ONLY transaction, so INSERT/UPDATE/DELETE/DROP and data-modifying CTEs fail;
- `statement_timeout` (DATA_QUERY_TIMEOUT_MS) and a row cap (DATA_QUERY_MAX_ROWS / ENRICH).

Public contract: `compile_sql(sql, context) -> (sql, params)`, `stream_rows(url, sql, params, ...)`
(a generator of JSON-ready dicts from a server-side cursor), `fetch_rows(...)`, and `QueryError(message,
permanent)`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
from django.conf import settings
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from workflows.templating import TemplateError, evaluate

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
FETCH_CHUNK = 2000


class QueryError(Exception):
    """The query could not run. `permanent` errors (SQL, permissions, caps) are not retried."""

    def __init__(self, message: str, permanent: bool = True):
        self.message = message
        self.permanent = permanent
        super().__init__(message)


def compile_sql(sql: str, context: dict[str, Any]) -> tuple[str, list[Any]]:
    """Turn `{{ expr }}` placeholders into `%s` and evaluate each expression into a parameter."""
    params: list[Any] = []
    parts: list[str] = []
    last = 0
    for match in PLACEHOLDER.finditer(sql):
        parts.append(sql[last : match.start()].replace("%", "%%"))
        try:
            params.append(evaluate(match.group(1).strip(), context))
        except TemplateError as exc:
            raise QueryError(f"In the placeholder {match.group(0)}: {exc}") from exc
        parts.append("%s")
        last = match.end()
    parts.append(sql[last:].replace("%", "%%"))
    return "".join(parts), params


def placeholders(sql: str) -> list[str]:
    """The expressions used as parameters (for validation and the builder)."""
    return [m.group(1).strip() for m in PLACEHOLDER.finditer(sql)]


def jsonable(value: Any) -> Any:
    """A database value as something JSON can hold (items are stored as JSON)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def connect(url: str) -> psycopg.Connection:
    """A connection whose transactions are read-only and whose statements time out."""
    try:
        conn = psycopg.connect(
            url,
            connect_timeout=10,
            options=f"-c statement_timeout={int(settings.DATA_QUERY_TIMEOUT_MS)}",
            application_name="rowbell-query",
        )
    except psycopg.OperationalError as exc:
        raise QueryError(f"Cannot connect to the data source: {_first_line(exc)}", permanent=False) from exc
    conn.read_only = True
    return conn


def stream_rows(
    url_or_conn: str | psycopg.Connection, sql: str, params: list[Any], *, max_rows: int | None = None
) -> Iterator[dict[str, Any]]:
    """Yield rows as JSON-ready dicts from a server-side cursor in one read-only transaction.

    Raises QueryError past `max_rows` (default DATA_QUERY_MAX_ROWS) after yielding that many.
    """
    max_rows = max_rows or settings.DATA_QUERY_MAX_ROWS
    own = isinstance(url_or_conn, str)
    conn = connect(url_or_conn) if own else url_or_conn
    try:
        with (
            _translated_errors(sql),
            conn.transaction(),
            conn.cursor(name="rowbell_rows", row_factory=dict_row) as cur,
        ):
            cur.itersize = FETCH_CHUNK
            cur.execute(sql, params)
            count = 0
            while True:
                rows = cur.fetchmany(FETCH_CHUNK)
                if not rows:
                    break
                for row in rows:
                    count += 1
                    if count > max_rows:
                        raise QueryError(
                            f"The query returned more than {max_rows:,} rows; add a LIMIT or narrow the WHERE."
                        )
                    yield {key: jsonable(value) for key, value in row.items()}
    finally:
        if own:
            conn.close()


def fetch_rows(
    url_or_conn: str | psycopg.Connection, sql: str, params: list[Any], *, max_rows: int | None = None
) -> list[dict[str, Any]]:
    """All rows (at most ENRICH max rows) of a small query."""
    return list(
        stream_rows(url_or_conn, sql, params, max_rows=max_rows or settings.DATA_QUERY_ENRICH_MAX_ROWS)
    )


WRITES = {"insert", "update", "delete", "drop", "alter", "create", "truncate", "grant", "commit", "merge"}


def first_keyword(sql: str) -> str:
    """The statement's first word, ignoring comments (used only to word error messages)."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL).strip().lower()
    match = re.match(r"[a-z]+", text)
    return match.group(0) if match else ""


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class _translated_errors:
    """Map psycopg errors to QueryError: SQL problems are permanent, lost connections transient."""

    def __init__(self, sql: str):
        self.sql = sql

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, QueryError) or not isinstance(exc, psycopg.Error):
            return False
        changes_data = "data-modifying" in str(exc) or first_keyword(self.sql) in WRITES
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction) or changes_data:
            raise QueryError(
                "Data queries are read-only: this one tries to change data "
                f"({_first_line(exc)}). Use SELECT only."
            ) from exc
        if isinstance(exc, pg_errors.QueryCanceled):
            raise QueryError(
                f"The query ran longer than {settings.DATA_QUERY_TIMEOUT_MS} ms and was stopped; "
                "add an index or narrow it.",
                permanent=False,
            ) from exc
        if isinstance(exc, psycopg.OperationalError):
            raise QueryError(
                f"The data source connection failed: {_first_line(exc)}", permanent=False
            ) from exc
        if isinstance(exc, pg_errors.SyntaxError):
            raise QueryError(
                f"SQL error: {_first_line(exc)}. A data query is one SELECT statement, without `;`."
            ) from exc
        raise QueryError(f"SQL error: {_first_line(exc)}") from exc
