"""Empty the test database after a transactional test with DELETE instead of Django's flush.

Django's TransactionTestCase ends each test with `manage.py flush`: one TRUNCATE of every table, then the
post_migrate signal re-creates the content types and permissions it just removed. On PostgreSQL a TRUNCATE
makes new files for every table and index and syncs them at commit, so that one statement takes 0.1-0.3 s
on a quiet machine (seconds when the disk is busy), and the signal costs another 0.15 s of CPU; a few hundred
engine, browser and constraint tests pay both. Deleting the rows of tables that are nearly empty takes a
few milliseconds, and leaving the content types and permissions in place is the state the signal would
rebuild anyway.

What stays the same: every table Django's flush empties is empty afterwards (tests/test_suite_isolation.py
checks it), sequences are not reset (flush's `reset_sequences=False`), and a test that asks for something
else (reset_sequences, serialized_rollback, available_apps) gets Django's own flush.
"""

from __future__ import annotations

from functools import cache

from django.db import connections, transaction
from django.test import TransactionTestCase

# Rows that post_migrate would write back right after a flush: kept instead of deleted and re-created.
KEPT_TABLES = frozenset({"django_content_type", "auth_permission"})


def flush(alias: str = "default") -> None:
    """Delete every row of every Django table of `alias` except KEPT_TABLES, in one transaction."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        # Django's foreign keys are DEFERRABLE: checked at commit, when the referencing rows are gone too.
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        for table in _deletion_order(alias):
            cursor.execute(f"DELETE FROM {quote(table)}")


def _tables(alias: str) -> set[str]:
    connection = connections[alias]
    return set(connection.introspection.django_table_names(only_existing=True, include_views=False))


def _deletion_order(alias: str) -> list[str]:
    """The tables to empty, referencing tables before the tables they reference (so that a foreign key
    made NOT DEFERRABLE by hand does not fail either). Read once per database: migrations ran before."""
    return _order_for(alias, frozenset(_tables(alias) - KEPT_TABLES))


@cache
def _order_for(alias: str, tables: frozenset[str]) -> list[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid <> confrelid"
        )
        references = [(child.strip('"'), parent.strip('"')) for child, parent in cursor.fetchall()]
    referenced_by: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in references:
        if child in tables and parent in tables:
            referenced_by[parent].add(child)
    order: list[str] = []
    placed: set[str] = set()

    def place(table: str, path: frozenset[str]) -> None:
        if table in placed or table in path:  # a cycle: deferred constraints cover it
            return
        for child in sorted(referenced_by[table]):
            place(child, path | {table})
        placed.add(table)
        order.append(table)

    for table in sorted(tables):
        place(table, frozenset())
    return order


_django_fixture_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown(self: TransactionTestCase) -> None:
    if self.available_apps is not None or self.serialized_rollback or self.reset_sequences:
        return _django_fixture_teardown(self)
    for alias in self._databases_names(include_mirrors=False):
        if connections[alias].vendor != "postgresql":
            return _django_fixture_teardown(self)
    for alias in self._databases_names(include_mirrors=False):
        flush(alias)


def install() -> None:
    """Make every transactional test (pytest-django's transactional_db, live_server) end with `flush`."""
    TransactionTestCase._fixture_teardown = _fixture_teardown
