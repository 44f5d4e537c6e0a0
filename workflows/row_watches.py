"""Row watches: the capture of a table's updates and deletes, for steps that follow a row (not start runs).

A wait "until the row matches" and a database trigger's "cancel when the row becomes …" need to hear
about a row's changes even when no workflow starts runs from that table, or only from its inserts. The
kinds say which tables (`StepKind.watched_rows`); publishing a version installs one `RowWatch` per table
(shared by every workflow of the tenant that needs it): the same row triggers as a workflow's (update and
delete, calling rowbell.capture_row), numbered `RowWatch.trigger_id`, so the listener claims their log rows
with the rest and hands them to runs/row_changes.py.

A watch is removed once no published version needs it and no wait on one of its rows is still open
(`drop_unused`, after each publish and unpublish, best effort: a database that cannot be reached keeps
its trigger until the next one, and the listener sweeps its log rows as orphans meanwhile).
"""

from __future__ import annotations

import logging

import psycopg
from django.db.models import F

from integrations import clock
from integrations.datasources import (
    DataSourceUnavailable,
    TriggerSpec,
    connect_datasource,
    install_trigger,
    remove_trigger,
)
from integrations.datasources.connection import describe_error
from integrations.datasources.rows import one_row
from integrations.models import DataSource
from workflows.models import RowWait, RowWatch, Step, WorkflowVersion
from workflows.steps import ConfigError, get_kind
from workflows.steps.base import PublishError, WatchedTable
from workflows.steps.row_reread import PRIMARY_KEY_SQL

log = logging.getLogger(__name__)

OPERATIONS = ("update", "delete")


def needed_tables(steps) -> list[tuple[Step, WatchedTable]]:
    """(step, table) for every table the given steps listen to."""
    found = []
    for step in steps:
        try:
            kind = get_kind(step.kind)
        except ConfigError:
            continue
        found += [(step, table) for table in kind.watched_rows(step.config or {})]
    return found


def install_for(version: WorkflowVersion) -> list[RowWatch]:
    """Make sure every table the version's steps listen to is watched; PublishError naming the step
    when a table cannot be watched (no such data source or table, no single-column primary key, or the
    database cannot be reached)."""
    watches = []
    for step, table in needed_tables(version.steps.all()):
        try:
            watches.append(ensure_watch(version.tenant_id, table))
        except DataSourceUnavailable as exc:
            raise PublishError({step.pk: {"table": str(exc)}}) from exc
    return watches


def ensure_watch(tenant_id: int, table: WatchedTable) -> RowWatch:
    """The table's watch, created and installed (again: installing is idempotent) in its database."""
    datasource = DataSource.objects.filter(tenant_id=tenant_id, pk=table.datasource).first()
    if datasource is None:
        raise DataSourceUnavailable("This data source does not exist (any more): choose another one.")
    key_column = primary_key_column(datasource, table.schema, table.table)
    watch, _created = RowWatch.objects.get_or_create(
        datasource=datasource,
        schema=table.schema,
        table=table.table,
        defaults={"tenant_id": tenant_id, "key_column": key_column},
    )
    if watch.key_column != key_column:
        RowWatch.objects.filter(pk=watch.pk).update(key_column=key_column)
        watch.key_column = key_column
    spec = TriggerSpec(
        schema=table.schema, table=table.table, operations=OPERATIONS, notify=datasource.notify_enabled
    )
    install_trigger(datasource, watch.trigger_id, spec)
    return watch


def primary_key_column(datasource: DataSource, schema: str, table: str) -> str:
    """The table's one primary-key column; DataSourceUnavailable (with the reason) otherwise."""
    try:
        with connect_datasource(datasource, autocommit=True, application_name="rowbell-check") as conn:
            exists = one_row(conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)))[0]
            columns = [row[0] for row in conn.execute(PRIMARY_KEY_SQL, (schema, table)).fetchall()]
    except psycopg.Error as exc:
        raise DataSourceUnavailable(describe_error(exc, datasource.connection_url or "")) from exc
    if exists is None:
        raise DataSourceUnavailable(f"There is no table {schema}.{table} in this data source.")
    if len(columns) != 1:
        raise DataSourceUnavailable(
            f"{schema}.{table} needs a primary key of one column for Rowbell to follow its rows "
            f"(it has {len(columns) or 'none'})."
        )
    return columns[0]


def needed_by_published(tenant_id: int) -> set[tuple[int, str, str]]:
    """(data source id, schema, table) of every table a published version of the tenant listens to."""
    steps = Step.objects.filter(tenant_id=tenant_id, version__workflow__published_version=F("version"))
    return {
        (int(table.datasource), table.schema, table.table)
        for _step, table in needed_tables(steps)
        if str(table.datasource).isdigit()
    }


def drop_unused(tenant_id: int) -> int:
    """Remove the tenant's watches nothing needs any more (see the module's docstring); how many."""
    needed = needed_by_published(tenant_id)
    # A wait whose timeout passed is decided at its next claim without the capture (and one whose run was
    # cancelled never will be): only waits still inside their timeout keep a watch.
    open_waits = set(
        RowWait.objects.filter(tenant_id=tenant_id, outcome="", timeout_at__gt=clock.now()).values_list(
            "watch_id", flat=True
        )
    )
    dropped = 0
    for watch in RowWatch.objects.filter(tenant_id=tenant_id).select_related("datasource"):
        if (watch.datasource_id, watch.schema, watch.table) in needed or watch.pk in open_waits:
            continue
        try:
            remove_trigger(watch.datasource, watch.trigger_id)
        except DataSourceUnavailable as exc:
            log.warning("Row watch %s kept: its trigger could not be removed (%s)", watch.pk, exc)
            continue
        watch.delete()  # with its decided waits (the executions' outputs say how they ended)
        dropped += 1
    return dropped


def watch_ids_by_source() -> dict[int, list[int]]:
    """{data source id: the trigger ids of its watches}: what the listener claims besides workflows."""
    found: dict[int, list[int]] = {}
    for watch in RowWatch.objects.only("pk", "datasource_id"):
        found.setdefault(watch.datasource_id, []).append(watch.trigger_id)
    return found
