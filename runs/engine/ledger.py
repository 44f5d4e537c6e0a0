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

`begin_create` runs that statement on Django's cursor and `PendingCreate.wait()` hands out the id: the
row is durable before the channel's exchange starts, and the message leaves only after `wait()`. (The
two-step interface let the statement overlap SMTP's MAIL and RCPT through psycopg's private generators;
on benchmarks/fanout.py the plain cursor measured the same worker CPU per item and statements per item.) If the statement is
interrupted (RQ's job timeout fires while PostgreSQL commits), it is still in flight on the connection:
the batch's interruption path (runs/engine/connections.py) cancels it and closes the connection, so no
later statement meets "another command is already in progress".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection

from integrations import clock

INSERT = (
    "INSERT INTO runs_delivery (tenant_id, run_id, step_execution_id, channel, recipient, status, content,"
    " provider_id, error, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, '', %s, %s) RETURNING id"
)
INSERT_MANY = (
    "INSERT INTO runs_delivery (tenant_id, run_id, step_execution_id, channel, recipient, status, content,"
    " provider_id, error, created_at)"
)
ROW_VALUES = "(%s, %s, %s, %s, %s, %s, %s::jsonb, '', %s, %s)"
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
        """Run the insert (with the previous message's `sent` mark, if any); `wait()` hands out its id."""
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
    """A Delivery insert, committed by the time `wait()` returns its id.

    The statement runs on Django's own cursor (so the connection's execute wrappers, e.g. the benchmarks'
    statement counter, and connection.queries see it), in autocommit: it is durable when `execute`
    returns. It runs when the PendingCreate is made, and its outcome (the ids, or the database's error)
    is handed out by `wait()`, which the channel calls before the message leaves. An interruption while
    it runs (RQ's job timeout) leaves the statement in flight on the connection: the batch's
    interruption path cancels it and closes the connection (runs/engine/connections.py).
    """

    def __init__(
        self, sql: str, params: list[Any], on_failure: Callable[[], None] = lambda: None, many: bool = False
    ):
        self.done: Any  # for `many`, {execution id: delivery id} from the rows the statement returned
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
        except DatabaseError as exc:  # the database's answer, handed out by wait() like a result
            # psycopg's own error, as callers expect (UniqueViolation: another worker's row), not
            # Django's wrapper of it.
            self.done = exc.__cause__ if isinstance(exc.__cause__, psycopg.Error) else exc
            on_failure()
        else:
            self.done = {int(e): int(d) for e, d in rows} if many else int(rows[0][0])

    def wait(self) -> Any:
        """The new Delivery's id (for `many`, {execution id: delivery id}); raises the database's error."""
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
    ]
