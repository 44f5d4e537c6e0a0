"""Which row triggers should exist in a data source: those of its published database-trigger workflows.

integrations.datasources installs, removes and inspects triggers from plain data (a workflow id and a
TriggerSpec); what to ask it for is decided here, from the published versions.
"""

from __future__ import annotations

from django.db.models import F, QuerySet

from integrations.datasources import DataSourceUnavailable, TriggerSpec, triggers_installed
from integrations.datasources.logical import install_capture
from integrations.datasources.triggers import replace_triggers_at_boundary
from integrations.models import DataSource
from workflows import row_watches
from workflows.models import RowWatch, Step
from workflows.steps import get_kind
from workflows.steps.base import WatchedTable
from workflows.steps.database_trigger import DatabaseTrigger


def published_triggers(datasource_id: int | None = None) -> QuerySet[Step]:
    """Root database-trigger steps of currently published versions (optionally of one data source)."""
    steps = Step.objects.filter(
        kind=DatabaseTrigger.kind,
        parent__isnull=True,
        version__workflow__published_version=F("version"),
    ).select_related("version__workflow")
    if datasource_id is not None:
        steps = steps.filter(config__datasource=datasource_id)
    return steps


def watched_tables(datasource: DataSource) -> list[tuple[str, str]]:
    """(schema, table) of every published database trigger on this data source."""
    seen = []
    for step in published_triggers(datasource_id=datasource.pk):
        pair = (step.config.get("schema", "public"), step.config.get("table", ""))
        if pair not in seen:
            seen.append(pair)
    return seen


def reinstall_triggers(datasource: DataSource) -> int:
    """Install again every published trigger on this data source (after its NOTIFY option changed)."""
    steps = list(published_triggers(datasource.pk))
    for step in steps:
        get_kind(step.kind).on_publish(step, step)
    for watch in RowWatch.objects.filter(datasource=datasource):  # their triggers call the same function
        row_watches.ensure_watch(datasource.tenant_id, WatchedTable(datasource.pk, watch.schema, watch.table))
    return len(steps)


def triggers_up_to_date(datasource: DataSource) -> bool:
    """Whether every published trigger on this data source is installed on its table, calling the function
    its NOTIFY setting picks. Raises DataSourceUnavailable when the database cannot be reached."""
    specs = {
        step.version.workflow_id: trigger_spec(step, datasource.notify_enabled)
        for step in published_triggers(datasource.pk)
    }
    return triggers_installed(datasource, specs)


def trigger_spec(step: Step, notify: bool) -> TriggerSpec:
    config = step.config
    return TriggerSpec(
        schema=config.get("schema", "public"),
        table=config.get("table", ""),
        operations=tuple(config.get("operations", ["insert"])),
        watch_columns=tuple(config.get("watch_columns", [])),
        notify=notify,
    )


def trigger_specs(datasource: DataSource) -> dict[int, TriggerSpec]:
    """What each published database trigger on this data source watches, by workflow id."""
    return {
        step.version.workflow_id: trigger_spec(step, datasource.notify_enabled)
        for step in published_triggers(datasource.pk)
    }


# `slot_until_lsn` while a switch back to row triggers is installing them: the slot's changes wait.
SWITCHING = "switching"


def switch_capture(datasource: DataSource, mode: str) -> None:
    """Move the data source's capture between row triggers and logical decoding, without starting a run
    twice or losing one while the customer keeps writing.

    To logical: the slot is created first (it sees every commit from then on), then the triggers are
    dropped in one transaction whose WAL position is the boundary: the slot delivers the changes committed
    from it on, and the rows the triggers logged before it are drained from the log as usual. Back to
    triggers: the triggers are installed the same way, the slot delivers what was committed before that
    boundary, and the listener drops the slot once it has read that far.
    """
    if datasource.capture_mode == mode:
        return
    specs = trigger_specs(datasource)
    if mode == DataSource.CaptureMode.LOGICAL:
        if datasource.slot_until_lsn:
            raise DataSourceUnavailable(
                "The last switch back to row triggers is still reading the slot's last changes; "
                "try again in a few seconds."
            )
        install_capture(datasource, list(dict.fromkeys((spec.schema, spec.table) for spec in specs.values())))
        boundary = replace_triggers_at_boundary(datasource, install={}, remove=list(specs))
        changes = {"capture_mode": mode, "slot_from_lsn": boundary, "slot_until_lsn": ""}
    else:
        # Said first: a listener that peeked the slot before this switch is recorded must not take the
        # changes committed after the new triggers as its own (runs/listener.py reads this after peeking).
        DataSource.objects.filter(pk=datasource.pk).update(slot_until_lsn=SWITCHING)
        try:
            boundary = replace_triggers_at_boundary(datasource, install=specs, remove=[])
        except DataSourceUnavailable:
            DataSource.objects.filter(pk=datasource.pk).update(slot_until_lsn="")
            raise
        changes = {"capture_mode": mode, "slot_until_lsn": boundary}
    DataSource.objects.filter(pk=datasource.pk).update(**changes)
    for name, value in changes.items():
        setattr(datasource, name, value)
