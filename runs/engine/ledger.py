"""Writing Delivery rows for a batch of sends with one statement (one commit) per message.

A message's Delivery is inserted as `sending` before the provider is called; after the provider
answers, the `sent` mark is not written on its own but together with the next message's insert, in
one statement (`WITH marked AS (UPDATE ... 'sent') INSERT ... 'sending'`). Both become durable in the
same commit, before that next message is sent, so the guarantee is unchanged: a worker killed
between a provider's answer and the statement leaves exactly that one message `sending` (reported
uncertain later), and nothing else. The last mark of a batch is flushed before the batch settles.

`begin()` sends that statement without waiting for its answer (libpq's asynchronous send, still one
autocommit statement), so the email channel does MAIL FROM and RCPT TO while PostgreSQL commits;
`wait()` returns once the commit is durable, and the channel calls it before DATA. If the statement
fails, the previous message's mark it carried is kept and written by the next statement.
"""

from __future__ import annotations

import functools
import json
import select
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from runs.engine import clock

INSERT = (
    "INSERT INTO runs_delivery (tenant_id, run_id, step_execution_id, channel, recipient, status, content,"
    " provider_id, error, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, '', '', %s) RETURNING id"
)
MARK = "UPDATE runs_delivery SET status = 'sent', provider_id = %s, sent_at = %s, error = '' WHERE id = %s"


# The same two statements with libpq's $n placeholders, for begin() (parameters sent as text).
MARK_PQ = "UPDATE runs_delivery SET status = 'sent', provider_id = $1, sent_at = $2::timestamptz, error = '' WHERE id = $3"


def insert_pq(first: int) -> str:
    n = [f"${first + i}" for i in range(8)]
    return (
        "INSERT INTO runs_delivery (tenant_id, run_id, step_execution_id, channel, recipient, status, content,"
        f" provider_id, error, created_at) VALUES ({n[0]}, {n[1]}, {n[2]}, {n[3]}, {n[4]}, {n[5]},"
        f" {n[6]}::jsonb, '', '', {n[7]}::timestamptz) RETURNING id"
    )


class Written:
    """A Delivery row already written (or claimed): wait() is its id."""

    def __init__(self, delivery_id: int):
        self.delivery_id = delivery_id

    def wait(self) -> int:
        return self.delivery_id

    def collect(self) -> None:
        pass


class InFlight:
    """An insert sent to PostgreSQL and not yet answered: wait() blocks until it is committed.

    The statement runs in autocommit, so PostgreSQL answers only once its commit is durable
    (synchronous_commit is untouched): after wait() returns, the row is `sending` on disk.
    """

    def __init__(self, pgconn, on_error=None):
        self.pgconn = pgconn
        self.on_error = on_error  # called once if the statement failed
        self.delivery_id: int | None = None
        self.error: str | None = None
        self.done = False

    def collect(self) -> None:
        """Read every result of the statement (the connection is usable again afterwards)."""
        if self.done:
            return
        from psycopg import pq

        pg = self.pgconn
        try:
            while True:
                while pg.is_busy():
                    select.select([pg.socket], [], [])
                    pg.consume_input()
                result = pg.get_result()
                if result is None:
                    break
                if result.status == pq.ExecStatus.TUPLES_OK and result.ntuples:
                    self.delivery_id = int(result.get_value(0, 0))
                elif result.status != pq.ExecStatus.TUPLES_OK:
                    self.error = (result.error_message or b"").decode(errors="replace") or "database error"
        except Exception as exc:  # the connection broke
            self.error = str(exc) or type(exc).__name__
            connection.errors_occurred = True
        self.done = True
        if self.error is not None and self.on_error is not None:
            self.on_error()

    def wait(self) -> int:
        self.collect()
        if self.error is not None or self.delivery_id is None:
            from django.db import DatabaseError

            connection.errors_occurred = True
            raise DatabaseError(f"Writing the delivery failed: {self.error}")
        return self.delivery_id


class DeliveryLedger:
    def __init__(self) -> None:
        self.unmarked: tuple[str, Any, int] | None = None  # (provider_id, sent_at, delivery id)

    def create(
        self,
        *,
        tenant_id: int,
        run_id: int,
        execution_id: int,
        channel: str,
        recipient: str,
        status: str,
        content: dict[str, Any],
    ) -> int:
        params = [
            tenant_id,
            run_id,
            execution_id,
            channel,
            recipient[:500],
            status,
            json.dumps(content, cls=DjangoJSONEncoder),
            clock.now(),
        ]
        with connection.cursor() as cur:
            if self.unmarked is not None:
                cur.execute(f"WITH marked AS ({MARK}) {INSERT}", [*self.unmarked, *params])
                self.unmarked = None
            else:
                cur.execute(INSERT, params)
            return cur.fetchone()[0]

    def begin(self, **fields) -> Written | InFlight:
        """Like create(), but returns as soon as the statement is sent; `.wait()` gives the id once the
        row is committed. The caller must wait() or collect() before using the database again. Falls back
        to create() inside a transaction (where the commit would come later anyway)."""
        connection.ensure_connection()
        raw = connection.connection
        pgconn = getattr(raw, "pgconn", None)
        if connection.in_atomic_block or not connection.get_autocommit() or pgconn is None:
            return Written(self.create(**fields))
        from psycopg import pq

        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return Written(self.create(**fields))
        params = [
            fields["tenant_id"],
            fields["run_id"],
            fields["execution_id"],
            fields["channel"],
            fields["recipient"][:500],
            fields["status"],
            json.dumps(fields["content"], cls=DjangoJSONEncoder),
            clock.now().isoformat(),
        ]
        carried = self.unmarked
        if carried is not None:
            provider_id, sent_at, delivery_id = carried
            sql = f"WITH marked AS ({MARK_PQ}) {insert_pq(4)}"
            params = [provider_id, sent_at.isoformat(), delivery_id, *params]
        else:
            sql = insert_pq(1)
        self.unmarked = None

        def send(sql, params, many, context):
            pgconn.send_query_params(sql.encode(), [str(p).encode() for p in params])
            while pgconn.flush():  # 1 while data is left to write (non-blocking connection)
                select.select([], [pgconn.socket], [])

        # Through Django's execute wrappers, so statement counters still see this statement.
        execute = send
        for wrapper in reversed(connection.execute_wrappers):
            execute = functools.partial(wrapper, execute)
        execute(sql, params, False, {"connection": connection, "cursor": None})

        def restore() -> None:  # the failed statement carried the previous mark: write it later
            if carried is not None and self.unmarked is None:
                self.unmarked = carried

        return InFlight(pgconn, on_error=restore)

    def sent(self, delivery_id: int, provider_id: str) -> None:
        """Record the provider's answer; written with the next insert or by flush()."""
        self.flush()
        self.unmarked = (provider_id[:500], clock.now(), delivery_id)

    def failed(self, delivery_id: int, error: str) -> None:
        self.flush()
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE runs_delivery SET status = 'failed', error = %s WHERE id = %s", [error, delivery_id]
            )

    def flush(self) -> None:
        if self.unmarked is not None:
            with connection.cursor() as cur:
                cur.execute(MARK, list(self.unmarked))
            self.unmarked = None
