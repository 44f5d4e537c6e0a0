"""Customer databases for tests, created ahead and dropped behind on a thread of their own.

About 200 tests each get a new, empty PostgreSQL database standing in for a customer's (the
`tenant_database` fixture). CREATE DATABASE copies template1 (0.3 s on a quiet machine), and DROP DATABASE
waits for a checkpoint of the whole server (0.5 s, seconds on a busy disk). Neither is what a test is
about, so this thread creates the next test's database while the current test runs, and drops a test's
database after it, while the next one runs. A test still gets a database nobody has used, and every
database is dropped before the run ends (`close`, called at the end of the session).
"""

from __future__ import annotations

import sys
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress

import psycopg

PREFIX = "rowbell_customer_"


def _create(admin_url: str) -> str:
    name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class CustomerDatabases:
    # Drops on threads of their own, so that a drop waiting for its checkpoint never holds up the next
    # test's database; several at once, since concurrent drops share one checkpoint.
    DROPPERS = 3

    def __init__(self) -> None:
        self._creator: ThreadPoolExecutor | None = None
        self._droppers: ThreadPoolExecutor | None = None
        self._spare: dict[str, Future[str]] = {}  # admin URL -> the next database's creation
        self._drops: list[Future[None]] = []

    def take(self, admin_url: str) -> str:
        """The name of a new, empty database on the server of `admin_url`; the next one starts being made."""
        if self._creator is None:
            self._creator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="create-customer-db")
        spare = self._spare.pop(admin_url, None)
        name = None
        if spare is not None:
            try:
                name = spare.result()
            except psycopg.Error:  # made again below, where its error (if it persists) fails the test
                name = None
        if name is None:
            name = _create(admin_url)
        self._spare[admin_url] = self._creator.submit(_create, admin_url)
        return name

    def drop_later(self, admin_url: str, name: str) -> None:
        if self._droppers is None:
            self._droppers = ThreadPoolExecutor(self.DROPPERS, thread_name_prefix="drop-customer-db")
        self._drops = [drop for drop in self._drops if not drop.done() or drop.exception()]
        self._drops.append(self._droppers.submit(_drop, admin_url, name))

    def close(self) -> None:
        """Drop the spare databases and wait for every drop; report the drops that failed."""
        for admin_url, spare in self._spare.items():
            with suppress(psycopg.Error):  # a spare that could not be made has nothing to drop
                self.drop_later(admin_url, spare.result())
        self._spare.clear()
        for drop in self._drops:
            if drop.exception() is not None:
                print(f"Could not drop a test's customer database: {drop.exception()}", file=sys.stderr)
        self._drops.clear()
        for pool in (self._creator, self._droppers):
            if pool is not None:
                pool.shutdown(wait=True)
        self._creator = self._droppers = None


DATABASES = CustomerDatabases()
