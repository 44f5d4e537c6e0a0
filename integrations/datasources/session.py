"""Connections to a customer's database that work through a transaction-mode pooler.

Supabase's pooler (Supavisor, port 6543) and PgBouncer in `pool_mode = transaction` hand each
transaction to whichever server connection is free. So nothing Rowbell relies on may live in the
session:

- no startup `options` (`-c statement_timeout=…`): PgBouncer refuses the connection ("unsupported
  startup parameter: options"), and with `ignore_startup_parameters = options` drops them silently;
- no prepared statements: psycopg prepares a query after five runs, and a statement prepared on one
  server connection is missing — or already exists — on the next ("prepared statement "_pg3_0" already
  exists"); `prepare_threshold=None` turns that off;
- limits are set per transaction instead (`SET LOCAL statement_timeout`, `SET TRANSACTION READ ONLY`),
  first in every transaction that needs them, so they hold through any pooler and cannot leak to the
  next client of the same server connection;
- LISTEN/NOTIFY is only a wake-up hint: through a pooler a notification reaches whichever client holds
  that server connection, or nobody. Polling the event log is what finds events.

Every connection to a customer database (the listener, the connection check, introspection, trigger
installation and tenant SQL) is opened with `POOL_SAFE` and limited with `limited_transaction` or
`limit_transaction`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import psycopg
from django.conf import settings

# Keyword arguments of psycopg.connect for every connection to a customer's database.
POOL_SAFE: dict[str, Any] = {"prepare_threshold": None}


def limit_transaction(
    conn: psycopg.Connection,
    *,
    statement_timeout_ms: int,
    read_only: bool = False,
    repeatable_read: bool = False,
) -> None:
    """First in a transaction: its statements time out after `statement_timeout_ms`, and it cannot write
    when `read_only`. Both end with the transaction, whatever pooler is in between."""
    characteristics = []
    if repeatable_read:
        characteristics.append("ISOLATION LEVEL REPEATABLE READ")
    if read_only:
        characteristics.append("READ ONLY")
    statements = [f"SET TRANSACTION {', '.join(characteristics)}"] if characteristics else []
    statements.append(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
    conn.execute("; ".join(statements))


@contextmanager
def limited_transaction(
    conn: psycopg.Connection, *, statement_timeout_ms: int, read_only: bool = False
) -> Iterator[psycopg.Connection]:
    """A transaction (committed at the end, rolled back on error) with `limit_transaction`'s limits."""
    with conn.transaction():
        limit_transaction(conn, statement_timeout_ms=statement_timeout_ms, read_only=read_only)
        yield conn


def looks_pooled(url: str) -> bool:
    """Whether a connection URL names a known transaction-mode pooler (Supabase's on port 6543, or a
    host called `…pooler…`). Only a hint for the page: the connection check measures what works."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return port == 6543 or "pooler" in (parts.hostname or "")


def listener_transaction(conn: psycopg.Connection) -> contextlib.AbstractContextManager:
    """One of the listener's transactions (log claims, slot reads and advances), with
    LISTENER_STATEMENT_TIMEOUT set inside it: the server cancels one stuck behind a lock or an overloaded
    server, and the source is then "reconnecting" with the reason rather than silently stalled."""
    timeout = float(getattr(settings, "LISTENER_STATEMENT_TIMEOUT", 30.0))
    return limited_transaction(conn, statement_timeout_ms=round(timeout * 1000))
