"""Keeping Django's own PostgreSQL connection usable after a job was interrupted.

A job timeout (RQ's SIGALRM), or any exception, can strike while a statement is in flight: in a
pipelined Delivery insert (`PendingCreate.wait`, runs/engine/ledger.py), or inside psycopg waiting for
an answer. The connection is then still busy with that statement, and every later statement on it
fails with "another command is already in progress". `reset_if_busy()` cancels the statement (best
effort: it may have committed already, which the Delivery protocol reports as uncertain, never as a
second send) and closes the connection; Django opens a new one on the next query.
"""

from __future__ import annotations

import contextlib
import logging

from django.db import connection
from psycopg import pq

logger = logging.getLogger(__name__)


def is_busy() -> bool:
    """True when the connection is open but not idle (a statement in flight, a broken transaction)."""
    raw = connection.connection
    if raw is None:
        return False
    if raw.closed:
        return True
    status = raw.pgconn.transaction_status
    if connection.in_atomic_block:
        return status not in (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS)
    return bool(status != pq.TransactionStatus.IDLE)


def reset_if_busy() -> bool:
    """Cancel what is in flight and close the connection when it is not idle; True if it did."""
    if not is_busy():
        return False
    raw = connection.connection
    with contextlib.suppress(Exception):
        if not raw.closed and raw.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            raw.cancel_safe(timeout=2.0)
    logger.warning("Closing a database connection left busy by an interrupted job")
    try:
        connection.close()  # inside an atomic block Django marks it, and the block's exit rolls back
    except Exception:
        connection.connection = None
    return True
