"""Writing Delivery rows for a batch of sends with one statement (one commit) per message.

A message's Delivery is inserted as `sending` before the provider is called; after the provider
answers, the `sent` mark is not written on its own but together with the next message's insert, in
one statement (`WITH marked AS (UPDATE ... 'sent') INSERT ... 'sending'`). Both become durable in the
same commit, before that next message is sent, so the guarantee is unchanged: a worker killed
between a provider's answer and the statement leaves exactly the messages whose answers it had not
written yet `sending` (reported uncertain later), and nothing else: one message for a channel that sends
one at a time, at most the requests in flight plus the answers since the last insert for one that keeps
several requests in flight (runs/engine/concurrent.py), whose answers all ride on the next insert.
The last marks of a batch are flushed before the batch settles. Every statement here is fenced by the
claim its execution was made under (see CLAIMED below).

`begin_create` runs that statement on Django's cursor (psycopg's public API) and `PendingCreate.wait()`
hands out the id: the row is durable before the channel's exchange starts, and the message leaves only
after `wait()`. If the statement is interrupted (RQ's job timeout fires while PostgreSQL commits), it is
still in flight on the connection and may yet commit: the caller counts that message as never sent
(BatchResources.unsent), and the batch's interruption path (runs/engine/connections.py) cancels the
statement and closes the connection, so no later statement meets "another command is already in progress".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection

from integrations import clock
from runs.engine import liveness
from runs.engine.outcome import ClaimLost
from runs.models import StepExecution

logger = logging.getLogger(__name__)

# Every write below is fenced by the claim it was made under: it changes a row only while the row's
# execution is still `running`, held by this worker (`claimed_by`) under the same attempt (`attempts`,
# counted by each claim). A worker that lost its claim (frozen past its lease, its batch reclaimed by the
# sweeper and perhaps settled by another worker) writes nothing: its Delivery insert adds no row (and its
# message is not sent), its marks change no row (the message stays `sending`, reported uncertain by the
# attempt that finds it), and each refusal is one log line. The fence is a join in the same statement,
# so it costs no statement of its own.
CLAIMED = "e.status = 'running' AND e.claimed_by = %s AND e.attempts = v.attempt"
COLUMNS = (
    "tenant_id, run_id, step_execution_id, channel, recipient, status, content, provider_id, error, created_at,"
    " sent_via_id"
)
ROW_VALUES = (
    "(%s::bigint, %s::bigint, %s::bigint, %s::text, %s::text, %s::text, %s::jsonb, %s::text,"
    " %s::timestamptz, %s::bigint, %s::integer)"
)
INSERT = (
    f"inserted AS (INSERT INTO runs_delivery ({COLUMNS})"
    " SELECT v.tenant_id, v.run_id, v.execution_id, v.channel, v.recipient, v.status, v.content, '', v.error,"
    " v.created_at, v.sent_via_id FROM (VALUES {values})"
    " AS v(tenant_id, run_id, execution_id, channel, recipient, status, content, error, created_at, sent_via_id,"
    " attempt)"
    f" JOIN runs_stepexecution e ON e.id = v.execution_id AND {CLAIMED}"
    " RETURNING step_execution_id, id)"
)
# One row per inserted Delivery, or one row of NULLs when none was; each row also says how many of the
# marks that rode on the statement were written.
INSERTED = (
    "SELECT i.step_execution_id, i.id, {marked} FROM (VALUES (1)) AS one(x) LEFT JOIN inserted i ON true"
)
MARK_MANY = (
    "UPDATE runs_delivery d SET status = 'sent', provider_id = v.provider_id, sent_at = v.sent_at, error = ''"
    " FROM (VALUES {values}) AS v(provider_id, sent_at, id, attempt), runs_stepexecution e"
    f" WHERE d.id = v.id AND d.status = 'sending' AND e.id = d.step_execution_id AND {CLAIMED}"
    " RETURNING d.id"
)
MARK_VALUES = "(%s::text, %s::timestamptz, %s::bigint, %s::integer)"
# Deliveries whose executions this worker holds: failed (with the provider's reason, or "not sent"),
# uncertain, or taken back to `sending` for a resend.
SET_STATUS = (
    "UPDATE runs_delivery d SET status = %s, error = COALESCE(%s, d.error)"
    " FROM (VALUES {values}) AS v(execution_id, attempt), runs_stepexecution e"
    f" WHERE d.step_execution_id = v.execution_id AND d.status = ANY(%s) AND e.id = v.execution_id AND {CLAIMED}"
)
NOT_SENT = (
    "Not sent: the batch was interrupted before this message left; a retry of this item sends it "
    "(the item's own state says whether one is due)."
)
Mark = tuple[str, Any, int, int]  # (provider_id, sent_at, delivery id, attempt of its execution's claim)


def mark_sql(marks: list[Mark]) -> tuple[str, list[Any]]:
    """One UPDATE that marks every message of `marks` sent, where this worker still holds its execution."""
    values = ", ".join([MARK_VALUES] * len(marks))
    params = [value for mark in marks for value in mark]
    return MARK_MANY.format(values=values), [*params, liveness.worker_name]


def refused_marks(marked: int, marks: list[Mark]) -> None:
    if marked < len(marks):
        logger.warning(
            "%d of %d 'sent' marks refused: worker %r no longer holds their executions (its claim was "
            "reclaimed); those deliveries stay 'sending' and are reported uncertain",
            len(marks) - marked,
            len(marks),
            liveness.worker_name,
        )


def set_status(
    executions: list[StepExecution], status: str, error: str | None, only_from: Sequence[str]
) -> int:
    """Move the Deliveries of `executions` (from one of `only_from`) to `status`, where this worker still
    holds the execution under its current attempt; how many changed (a refusal is one log line)."""
    if not executions:
        return 0
    values = ", ".join(["(%s::bigint, %s::integer)"] * len(executions))
    params: list[Any] = [status, error]
    params += [value for e in executions for value in (e.pk, e.attempts)]
    params += [list(only_from), liveness.worker_name]
    with connection.cursor() as cur:
        cur.execute(SET_STATUS.format(values=values), params)
        changed: int = cur.rowcount
    if changed < len(executions):
        lost = [e.pk for e in executions if not _still_claimed(e)]
        if lost:
            claims_lost(lost, f"their Delivery is left as it is, not {status}")
    return changed


def _still_claimed(execution: StepExecution) -> bool:
    """Only on the rare path where a guarded write changed nothing: was it the claim, or the row's status?"""
    return StepExecution.objects.filter(
        pk=execution.pk, status="running", claimed_by=liveness.worker_name, attempts=execution.attempts
    ).exists()


class DeliveryLedger:
    def __init__(self) -> None:
        self.unmarked: list[Mark] = []  # answers not written yet
        self.latencies: list[float] = []  # seconds from the channel's first command to its answer

    def create(self, **delivery: Any) -> int:
        delivery_id: int = self.begin_create(**delivery).wait()
        return delivery_id

    def begin_create(self, **delivery: Any) -> PendingCreate:
        """Send the insert (with the answers so far as `sent` marks, if any) without waiting for it."""
        return self._begin([delivery], many=False)

    def create_many(self, rows: list[dict[str, Any]]) -> dict[int, int]:
        """Insert several Delivery rows (and the answers so far as `sent` marks) in one statement and
        one commit; returns {execution id: delivery id} once they are durable. A row whose execution
        this worker no longer holds is not inserted (ClaimLost after the others are durable)."""
        ids: dict[int, int] = self._begin(rows, many=True).wait()
        return ids

    def _begin(self, rows: list[dict[str, Any]], many: bool) -> PendingCreate:
        marks, self.unmarked = self.unmarked, []
        values = ", ".join([ROW_VALUES] * len(rows))
        params = [value for row in rows for value in _row(**row)]
        params.append(liveness.worker_name)
        insert = INSERT.format(values=values)
        if marks:
            mark, mark_params = mark_sql(marks)
            sql = (
                f"WITH marked AS ({mark}), {insert} {INSERTED.format(marked='(SELECT count(*) FROM marked)')}"
            )
            params = [*mark_params, *params]
        else:
            sql = f"WITH {insert} {INSERTED.format(marked='0')}"

        def keep_marks() -> None:  # the statement failed: the marks ride on the next one instead
            self.unmarked = marks + self.unmarked

        try:
            return PendingCreate(sql, params, marks, [row["execution_id"] for row in rows], keep_marks, many)
        except BaseException:
            keep_marks()
            raise

    def sent(self, delivery_id: int, provider_id: str, execution: StepExecution) -> None:
        """Record the provider's answer; written with the next insert or by flush()."""
        self.unmarked.append((provider_id[:500], clock.now(), delivery_id, execution.attempts))

    def failed(self, execution: StepExecution, error: str) -> bool:
        """The message of `execution` was refused by the provider, or never left: `failed`, with why."""
        self.flush()
        return bool(set_status([execution], "failed", error, ["sending"]))

    def flush(self) -> None:
        """Write the answers not written yet; ClaimLost (after one log line) if the claim they were made
        under is gone, so that the batch goes no further (no children, no settle of its own)."""
        if self.unmarked:
            marks = self.unmarked
            sql, params = mark_sql(marks)
            with connection.cursor() as cur:
                cur.execute(sql, params)
                marked = cur.rowcount
            self.unmarked = []
            refused_marks(marked, marks)
            if marked < len(marks):
                raise ClaimLost(
                    f"worker {liveness.worker_name!r} no longer holds the executions it answered for"
                )


class PendingCreate:
    """A Delivery insert, committed by the time `wait()` returns its id.

    The statement runs on Django's own cursor, in autocommit (so the connection's execute wrappers, e.g.
    the benchmarks' statement counter, and connection.queries see it): it is durable when `execute`
    returns, before the channel's exchange starts. Its outcome (the ids, or the database's error) is
    handed out by `wait()`, which the channel calls before the message leaves.

    An interruption while it runs (RQ's job timeout fires while PostgreSQL commits) propagates from here,
    with the statement still in flight on the connection, and it may still commit. The caller must then
    count the message as never sent (BatchResources.unsent: its `sending` row, if any, becomes `failed`
    "not sent" and the item's retry sends it), as it does when `wait()` is interrupted; the batch's
    interruption path cancels the statement and closes the connection (runs/engine/connections.py).
    """

    def __init__(
        self,
        sql: str,
        params: list[Any],
        marks: list[Mark],
        execution_ids: list[int],
        on_failure: Callable[[], None] = lambda: None,
        many: bool = False,
    ):
        self.many = many  # several rows of (execution id, delivery id): wait() returns them as a dict
        self.marks = marks
        self.execution_ids = execution_ids
        self.done: Any
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
        except DatabaseError as exc:  # the database's answer, handed out by wait() like a result
            # psycopg's own error, as callers expect (UniqueViolation: another worker's row), not
            # Django's wrapper of it.
            self.done = exc.__cause__ if isinstance(exc.__cause__, psycopg.Error) else exc
            on_failure()
            return
        try:
            self.done = self._result(rows)
        except ClaimLost as exc:  # the statement itself went through: its marks are written
            self.done = exc

    def wait(self) -> Any:
        """The new Delivery's id (for `many`, {execution id: delivery id}); raises the database's error,
        and ClaimLost when this worker no longer holds an execution."""
        if isinstance(self.done, BaseException):
            raise self.done
        return self.done

    def _result(self, rows: list[tuple[Any, Any, int]]) -> Any:
        refused_marks(int(rows[0][2]), self.marks)
        ids = {int(execution): int(delivery) for execution, delivery, _ in rows if delivery is not None}
        lost = [pk for pk in self.execution_ids if pk not in ids]
        if lost:
            claims_lost(lost, "no Delivery written and nothing sent for them")
            raise ClaimLost(f"worker {liveness.worker_name!r} no longer holds execution(s) {lost}")
        return ids if self.many else ids[self.execution_ids[0]]


def claims_lost(execution_ids: list[int], so: str) -> None:
    """One log line: this worker's write for these executions was refused, their claim was reclaimed."""
    logger.warning(
        "Worker %r no longer holds execution(s) %s (their claim was reclaimed): %s",
        liveness.worker_name,
        ", ".join(map(str, execution_ids)),
        so,
    )


def _row(
    *,
    tenant_id: int,
    run_id: int,
    execution_id: int,
    channel: str,
    recipient: str,
    status: str,
    content: dict[str, Any],
    attempt: int,
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
        attempt,
    ]
