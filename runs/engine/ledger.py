"""Writing Delivery rows for a batch of sends with one statement (one commit) per message.

A message's Delivery is inserted as `sending` before the provider is called; after the provider
answers, the `sent` mark is not written on its own but together with the next message's insert, in
one statement (`WITH marked AS (UPDATE ... 'sent') INSERT ... 'sending'`). Both become durable in the
same commit, before that next message is sent, so the guarantee is unchanged: a worker killed
between a provider's answer and the statement leaves exactly the messages whose answers it had not
written yet `sending` (reported uncertain later), and nothing else: one message for a channel that sends
one at a time, at most the requests in flight plus the answers since the last insert for one that keeps
several requests in flight (runs/engine/concurrent.py), whose answers all ride on the next insert.
The last marks of a batch are flushed before the batch settles.

`begin_create` sends that statement without waiting for it (libpq's asynchronous API on Django's own
connection), so that the channel can do the part of its exchange that delivers nothing (SMTP's MAIL
and RCPT commands) while PostgreSQL commits; `PendingCreate.wait()` returns the id once the row is
durable, and only then may the message itself leave. Nothing else may use the connection in between.
If `wait()` is interrupted (RQ's job timeout fires while PostgreSQL commits), the statement is still in
flight on the connection: the batch's interruption path (runs/engine/connections.py) cancels it and
closes the connection, so no later statement meets "another command is already in progress".
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from psycopg import generators

from integrations import clock

INSERT = (
    "INSERT INTO runs_delivery (tenant_id, run_id, step_execution_id, channel, recipient, status, content,"
    " provider_id, error, created_at, sent_via_id)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, '', %s, %s, %s) RETURNING id"
)
INSERT_MANY = (
    "INSERT INTO runs_delivery (tenant_id, run_id, step_execution_id, channel, recipient, status, content,"
    " provider_id, error, created_at, sent_via_id)"
)
ROW_VALUES = "(%s, %s, %s, %s, %s, %s, %s::jsonb, '', %s, %s, %s::bigint)"
MARK = "UPDATE runs_delivery SET status = 'sent', provider_id = %s, sent_at = %s, error = '' WHERE id = %s"
MARK_MANY = (
    "UPDATE runs_delivery d SET status = 'sent', provider_id = v.provider_id, sent_at = v.sent_at, error = ''"
    " FROM (VALUES {values}) AS v(provider_id, sent_at, id) WHERE d.id = v.id"
)
Mark = tuple[str, Any, int]  # (provider_id, sent_at, delivery id)


def mark_sql(marks: list[Mark]) -> tuple[str, list[Any]]:
    """One UPDATE that marks every message of `marks` sent."""
    if len(marks) == 1:
        return MARK, list(marks[0])
    values = ", ".join(["(%s::varchar, %s::timestamptz, %s::bigint)"] * len(marks))
    return MARK_MANY.format(values=values), [value for mark in marks for value in mark]


class DeliveryLedger:
    def __init__(self) -> None:
        self.unmarked: list[Mark] = []  # answers not written yet
        self.latencies: list[float] = []  # seconds from the channel's first command to its answer

    def create(self, **delivery: Any) -> int:
        return self.begin_create(**delivery).wait()

    def begin_create(self, **delivery: Any) -> PendingCreate:
        """Send the insert (with the previous message's `sent` mark, if any) without waiting for it."""
        sql, params, marked = self._statement(**delivery)
        self.unmarked = []

        def keep_mark() -> None:  # the statement failed: the marks ride on the next one instead
            self.unmarked = marked + self.unmarked

        try:
            return PendingCreate(sql, params, on_failure=keep_mark)
        except BaseException:
            keep_mark()
            raise

    def _statement(self, **delivery: Any) -> tuple[str, list[Any], list[Mark]]:
        params = _row(**delivery)
        if not self.unmarked:
            return INSERT, params, []
        mark, mark_params = mark_sql(self.unmarked)
        return f"WITH marked AS ({mark}) {INSERT}", [*mark_params, *params], list(self.unmarked)

    def create_many(self, rows: list[dict[str, Any]]) -> dict[int, int]:
        """Insert several Delivery rows (and the answers so far as `sent` marks) in one statement and
        one commit; returns {execution id: delivery id} once they are durable."""
        marks, self.unmarked = self.unmarked, []
        values = ", ".join([ROW_VALUES] * len(rows))
        sql = f"{INSERT_MANY} VALUES {values} RETURNING step_execution_id, id"
        params = [value for row in rows for value in _row(**row)]
        if marks:
            mark, mark_params = mark_sql(marks)
            sql, params = f"WITH marked AS ({mark}) {sql}", [*mark_params, *params]

        def keep_marks() -> None:
            self.unmarked = marks + self.unmarked

        try:
            pending = PendingCreate(sql, params, on_failure=keep_marks, many=True)
        except BaseException:
            keep_marks()
            raise
        return pending.wait()

    def sent(self, delivery_id: int, provider_id: str) -> None:
        """Record the provider's answer; written with the next insert or by flush()."""
        self.unmarked.append((provider_id[:500], clock.now(), delivery_id))

    def failed(self, delivery_id: int, error: str) -> None:
        self.flush()
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE runs_delivery SET status = 'failed', error = %s WHERE id = %s", [error, delivery_id]
            )

    def flush(self) -> None:
        if self.unmarked:
            sql, params = mark_sql(self.unmarked)
            with connection.cursor() as cur:
                cur.execute(sql, params)
            self.unmarked = []


class PendingCreate:
    """A Delivery insert sent to PostgreSQL and not yet waited for.

    `wait()` must be called before the connection is used again, also when the caller gives up (it is
    what a `finally` does). The statement still goes through the connection's execute wrappers (those
    installed with `connection.execute_wrapper()`, e.g. the benchmarks' statement counter) and, when
    queries are logged (tests, DEBUG), into connection.queries, so statement counts stay true.
    """

    def __init__(
        self, sql: str, params: list[Any], on_failure: Callable[[], None] = lambda: None, many: bool = False
    ):
        connection.ensure_connection()
        self.many = many  # several rows of (execution id, delivery id): wait() returns them as a dict
        self.on_failure = on_failure
        self.pgconn = connection.connection.pgconn
        self.started = time.monotonic()
        self.sql = sql
        self.done: Any = None
        with connection.cursor() as cursor:
            send: Callable[..., None] = self._send
            for wrapper in reversed(connection.execute_wrappers):  # the outermost wrapper was installed first
                send = functools.partial(wrapper, send)
            send(sql, params, False, {"connection": connection, "cursor": cursor})

    def _send(self, sql: str, params: list[Any], many: bool, context: dict) -> None:
        self.pgconn.send_query_params(_numbered(sql).encode(), [_text(value) for value in params])
        connection.connection.wait(generators.send(self.pgconn))

    def wait(self) -> Any:
        """The new Delivery's id (for `many`, {execution id: delivery id}), once committed; raises the
        database's error otherwise."""
        if self.done is None:
            try:
                results = connection.connection.wait(generators.fetch_many(self.pgconn))
                failed = [r for r in results if r.status != psycopg.pq.ExecStatus.TUPLES_OK]
                if failed:
                    raise psycopg.errors.error_from_result(failed[0])
                result = results[0]
                if self.many:
                    rows = range(result.ntuples)
                    self.done = {int(result.get_value(i, 0)): int(result.get_value(i, 1)) for i in rows}
                else:
                    self.done = int(result.get_value(0, 0))
            except BaseException as exc:
                self.done = exc
                self.on_failure()
            if connection.queries_logged:
                took = time.monotonic() - self.started
                connection.queries_log.append({"sql": self.sql, "time": f"{took:.3f}"})
        if isinstance(self.done, BaseException):
            raise self.done
        return self.done


def _row(
    *,
    tenant_id: int,
    run_id: int,
    execution_id: int,
    channel: str,
    recipient: str,
    status: str,
    content: dict[str, Any],
    error: str = "",
    sent_via_id: int | None = None,
) -> list[Any]:
    return [
        tenant_id,
        run_id,
        execution_id,
        channel,
        recipient[:500],
        status,
        json.dumps(content, cls=DjangoJSONEncoder),
        error,
        clock.now(),
        sent_via_id,
    ]


def _numbered(sql: str) -> str:
    """psycopg's %s placeholders as libpq's $1, $2, ..."""
    parts = sql.split("%s")
    return "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (the statement's columns give the types)."""
    if value is None:
        return None
    return (value.isoformat() if isinstance(value, datetime) else str(value)).encode()
