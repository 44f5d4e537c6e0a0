"""Read-only queries against a tenant's database, with item values as bound parameters only.

Placeholder syntax: a data query's SQL may contain `{{ expression }}` (a sandboxed Jinja2 expression
over the item, e.g. `{{ item.post_id }}`). Each one is compiled to a bound parameter (`%s`) and its
value sent separately; nothing from the item is ever pasted into the SQL text. A literal `%` in the SQL
is escaped for psycopg by `compile_sql`.

Safety, in layers (the least-privilege role the customer creates is the real boundary). Every path that
sends tenant SQL (the engine's runs, the step preview, the builder's describe check, the test page's
rows) goes through `read_only_cursor`, which applies all of them:
- integrations/sql_guard.py parses the text with PostgreSQL's own parser (pglast) and refuses anything
  but one plain SELECT (no data-modifying CTE, INTO, FOR UPDATE, or functions that act outside the query);
- one statement, sent with the extended protocol (a named server-side cursor is `DECLARE ... CURSOR FOR
  <query>`, which psycopg always sends that way), so `commit; insert ...` can never be two statements;
- a transaction made READ ONLY (and REPEATABLE READ) by its first command, whatever the session's
  defaults, so INSERT/UPDATE/DELETE, sequences and writing functions fail on the server too;
- `statement_timeout` (DATA_QUERY_TIMEOUT_MS) set in that transaction, and a row cap
  (DATA_QUERY_MAX_ROWS / ENRICH) checked before the first row is handed out.

Public contract: `compile_sql(sql, context) -> (sql, params)`, `stream_rows(url, sql, params, ...)`
(a generator of JSON-ready dicts from a server-side cursor), `fetch_rows(...)`, `describe_columns(...)`,
`read_only_cursor(...)` and `QueryError(message, permanent=...)` (an integrations.failures.Failure).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from integrations.datasources.session import POOL_SAFE, limit_transaction
from integrations.datasources.target import DataSourceTargetRefused, pinned_conninfo
from integrations.failures import Failure
from integrations.sql_guard import UnsafeQuery, check_select
from integrations.templating import TemplateError, evaluate

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
FETCH_CHUNK = 2000
TIMEOUT_MAX_ATTEMPTS = 2  # a statement timeout is retried once, then the step fails


class QueryError(Failure):
    """The tenant's query could not run, in the data source's own words: the data query step names
    itself before them. `permanent` errors (SQL, permissions, caps) are not retried; a transient one with
    `max_attempts` is tried at most that many times in all, whatever the step allows."""


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
            raise QueryError(f"In the placeholder {match.group(0)}: {exc}", permanent=True) from exc
        parts.append("%s")
        last = match.end()
    parts.append(sql[last:].replace("%", "%%"))
    return "".join(parts), params


def parametrized(sql: str) -> str:
    """The SQL as sent, with every placeholder as `%s` (for checking and describing it without an item)."""
    return PLACEHOLDER.sub("%s", sql.replace("%", "%%"))


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


def connect_for_tenant_sql(url: str) -> psycopg.Connection:
    """A connection for tenant SQL: every transaction read-only (BEGIN READ ONLY), no prepared statements.

    No session settings: the limits are set by each query for its own transaction (_begin), so they
    hold through a transaction-mode pooler and nothing a previous query did to the session can make the
    next one writable or unlimited (integrations/datasources/session.py).
    """
    try:
        pinned: dict[str, Any] = pinned_conninfo(url)
    except DataSourceTargetRefused as exc:
        raise QueryError(str(exc), permanent=True) from exc
    try:
        conn = psycopg.connect(
            url, connect_timeout=10, application_name="rowbell-query", **POOL_SAFE, **pinned
        )
    except psycopg.OperationalError as exc:
        raise QueryError(f"Cannot connect to the data source: {_first_line(exc)}", permanent=False) from exc
    conn.read_only = True
    return conn


@contextmanager
def read_only_cursor(
    url_or_conn: str | psycopg.Connection, sql: str, params: list[Any], *, name: str = "rowbell_rows"
) -> Iterator[psycopg.ServerCursor[dict[str, Any]]]:
    """The one way tenant-written SQL reaches a customer's database.

    `sql` must pass sql_guard.check_select (one plain SELECT); it is then sent as a server-side cursor,
    which psycopg always sends with the extended protocol (one statement, parameters apart), inside a
    transaction that is made READ ONLY and REPEATABLE READ, with statement_timeout, before it runs.
    Errors come out as QueryError.
    """
    check_tenant_sql(sql)
    own = isinstance(url_or_conn, str)
    conn = connect_for_tenant_sql(url_or_conn) if isinstance(url_or_conn, str) else url_or_conn
    try:
        with _translated_errors(sql), conn.transaction():
            _begin(conn)
            with conn.cursor(name=name, row_factory=dict_row) as cur:
                cur.execute(sql, params)
                yield cur
    finally:
        if own:
            conn.close()


def _begin(conn: psycopg.Connection) -> None:
    """First in every transaction: whatever the session's defaults, this transaction cannot write, runs
    each statement for at most DATA_QUERY_TIMEOUT_MS, and reads strings as sql_guard's parser did."""
    limit_transaction(
        conn,
        statement_timeout_ms=int(settings.DATA_QUERY_TIMEOUT_MS),
        read_only=True,
        repeatable_read=True,
    )
    conn.execute("SET LOCAL standard_conforming_strings = on")


def stream_rows(
    url_or_conn: str | psycopg.Connection, sql: str, params: list[Any], *, max_rows: int | None = None
) -> Iterator[dict[str, Any]]:
    """Yield rows as JSON-ready dicts from a server-side cursor in one read-only transaction.

    A query over `max_rows` (default DATA_QUERY_MAX_ROWS) yields nothing: when the first chunk is full,
    the rows are counted (up to max_rows + 1, in the same snapshot) before the first row is yielded,
    and QueryError says the query is over the cap. A query whose rows change between the count and the
    read (volatile functions) is stopped at the cap: the error then says how many rows were yielded.
    """
    max_rows = max_rows or settings.DATA_QUERY_MAX_ROWS
    with read_only_cursor(url_or_conn, sql, params) as cur:
        rows = cur.fetchmany(FETCH_CHUNK)
        if len(rows) > max_rows or (len(rows) == FETCH_CHUNK and _count_up_to(cur, sql, params, max_rows)):
            raise QueryError(over_cap(max_rows, 0), permanent=True)
        count = 0
        while rows:
            for row in rows:
                count += 1
                if count > max_rows:
                    raise QueryError(over_cap(max_rows, count - 1), permanent=True)
                yield {key: jsonable(value) for key, value in row.items()}
            rows = cur.fetchmany(FETCH_CHUNK)


def _count_up_to(
    cur: psycopg.ServerCursor[dict[str, Any]], sql: str, params: list[Any], max_rows: int
) -> bool:
    """Whether the query has more than `max_rows` rows (reads at most max_rows + 1 of them)."""
    counting = f"SELECT count(*) AS n FROM (SELECT 1 FROM ({sql}\n) AS q LIMIT {int(max_rows) + 1}) AS c"
    check_tenant_sql(counting)  # `sql` passed already; the wrapped text is checked like any other
    with cur.connection.cursor(name="rowbell_count", row_factory=dict_row) as counter:
        counter.execute(counting, params)
        counted = counter.fetchone()
        return counted is not None and counted["n"] > max_rows  # a count(*) always answers one row


def over_cap(max_rows: int, yielded: int) -> str:
    already = (
        "nothing was created from it"
        if not yielded
        else f"the first {yielded:,} rows had already become items; nothing past the cap was created"
    )
    return f"The query returned more than {max_rows:,} rows ({already}); add a LIMIT or narrow the WHERE."


def fetch_rows(
    url_or_conn: str | psycopg.Connection, sql: str, params: list[Any], *, max_rows: int | None = None
) -> list[dict[str, Any]]:
    """All rows (at most ENRICH max rows) of a small query."""
    return list(
        stream_rows(url_or_conn, sql, params, max_rows=max_rows or settings.DATA_QUERY_ENRICH_MAX_ROWS)
    )


def check_tenant_sql(sql: str) -> None:
    """QueryError unless the tenant's own text is one plain SELECT (before Rowbell wraps it, so that the
    message speaks of what they wrote; the wrapped text is checked again when it is sent)."""
    try:
        check_select(sql)
    except UnsafeQuery as exc:
        raise QueryError(exc.message, permanent=True) from exc


def describe_columns(url_or_conn: str | psycopg.Connection, sql: str, params: list[Any]) -> list[str]:
    """The column names of a query, from PostgreSQL itself (wrapped in LIMIT 0: no row is read)."""
    check_tenant_sql(sql)
    wrapped = f"SELECT * FROM ({sql}\n) AS rowbell_described LIMIT 0"
    with read_only_cursor(url_or_conn, wrapped, params, name="rowbell_describe") as cur:
        return [column.name for column in cur.description or []]


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
                f"({_first_line(exc)}). Use SELECT only.",
                permanent=True,
            ) from exc
        if isinstance(exc, pg_errors.QueryCanceled):
            # Usually the query itself is slow and will be again: one more try (a lock or a busy moment
            # passes), not the step's full retry budget of a network error.
            raise QueryError(
                f"The query ran longer than {settings.DATA_QUERY_TIMEOUT_MS} ms and was stopped; "
                "add an index or narrow it.",
                permanent=False,
                max_attempts=TIMEOUT_MAX_ATTEMPTS,
            ) from exc
        if isinstance(exc, psycopg.OperationalError):
            raise QueryError(
                f"The data source connection failed: {_first_line(exc)}", permanent=False
            ) from exc
        if isinstance(exc, pg_errors.SyntaxError):
            raise QueryError(
                f"SQL error: {_first_line(exc)}. A data query is one SELECT statement, without `;`.",
                permanent=True,
            ) from exc
        raise QueryError(f"SQL error: {_first_line(exc)}", permanent=True) from exc
