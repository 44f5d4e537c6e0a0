"""Database trigger: a row inserted or updated in the customer's table starts a run.

Config: `datasource` (a DataSource id of the tenant), `schema` (default "public"), `table`,
`operations` (["insert"], ["update"] or both) and `watch_columns` (updates fire only when one of these
changed; empty means "when any column changed").

The item is the new row as a JSON object (column → value, as PostgreSQL's `to_jsonb` writes it:
timestamps as ISO strings, numerics as numbers). For an update the item also carries `_old`, the row
before the update, so `item.status` is the new value and `item._old.status` the old one. Inserts have no
`_old` key. (A column literally named `_old` is shadowed by it.)

The event key of a run is `db:<data source id>:<event log id>`.

Publishing installs the triggers in the customer's database (integrations/datasources/triggers.py) and
unpublishing removes them; both raise PublishError with the reason when the database cannot be reached,
so the workflow's published state always matches what is installed.
"""

from __future__ import annotations

from typing import Any

from integrations.datasources import (
    DataSourceUnavailable,
    TriggerSpec,
    install_trigger,
    list_columns,
    remove_trigger,
)
from integrations.models import DataSource
from workflows.steps.base import ConfigError, Field, PublishError, StepKind, WatchedTable
from workflows.steps.common import RUN_LABEL_FIELD, clean_run_label

OPERATIONS = (("insert", "Row inserted"), ("update", "Row updated"))


class DatabaseTrigger(StepKind):
    kind = "database_trigger"
    label = "Database trigger"
    description = "Starts a run when a row is inserted into (or updated in) a table of your database."
    is_trigger = True
    fields = (
        Field("datasource", "Data source", widget="datasource", required=True),
        Field("schema", "Schema", widget="schema", default="public", required=True),
        Field("table", "Table", widget="table", required=True),
        Field("operations", "When a row is", widget="multiselect", choices=OPERATIONS, default=["insert"]),
        Field(
            "watch_columns",
            "Only when these columns change",
            widget="columns",
            help="For updates: leave empty to start a run whenever any column changes.",
            default=[],
        ),
        RUN_LABEL_FIELD,
    )

    def default_config(self) -> dict[str, Any]:
        return {"schema": "public", "operations": ["insert"], "watch_columns": []}

    def summary(self, config: dict[str, Any]) -> str:
        happened = {"insert": "inserted", "update": "updated"}
        ops = " or ".join(happened.get(op, op) for op in config.get("operations") or ["insert"])
        return f"when a row is {ops} in {config.get('schema') or 'public'}.{config.get('table') or '?'}"

    def watched_table(self, config: dict[str, Any]) -> WatchedTable:
        return WatchedTable(
            config.get("datasource"), config.get("schema") or "public", config.get("table") or ""
        )

    def describe_trigger(self, config: dict[str, Any]) -> str:
        ops = " and ".join(config.get("operations") or ["insert"])
        return f"a row trigger ({ops}) on {config.get('schema') or 'public'}.{config.get('table', '?')}"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        datasource = config.get("datasource")
        try:
            datasource = int(datasource)  # type: ignore[arg-type]  # None and junk raise TypeError/ValueError
        except (TypeError, ValueError):
            errors["datasource"] = "Choose the data source whose table this workflow watches."
        schema = _name(config.get("schema") or "public", "schema", errors, "Enter the table's schema.")
        table = _name(config.get("table"), "table", errors, "Choose the table to watch.")
        operations = config.get("operations") or ["insert"]
        if isinstance(operations, str):
            operations = [operations]
        valid = {value for value, _ in OPERATIONS}
        if not isinstance(operations, list) or not set(operations) <= valid or not operations:
            errors["operations"] = "Choose insert, update, or both."
        watch = config.get("watch_columns") or []
        if not isinstance(watch, list) or not all(isinstance(c, str) and c.strip() for c in watch):
            errors["watch_columns"] = "Watched columns must be a list of column names."
        elif watch and "update" not in operations:
            errors["watch_columns"] = "Watched columns only apply to updates: add “update” or clear them."
        labelled: dict[str, Any] = {}
        clean_run_label(config, errors, labelled)
        if errors:
            raise ConfigError(errors)
        return {
            "datasource": datasource,
            "schema": schema,
            "table": table,
            "operations": [value for value, _ in OPERATIONS if value in operations],
            "watch_columns": [c.strip() for c in watch],
            **labelled,
        }

    def output_fields(self, step, input_fields: list[str]) -> list[str]:
        """The watched table's columns (plus `_old` for updates); falls back to nothing when unreachable."""
        datasource = _datasource(step)
        if datasource is None:
            return []
        try:
            names = [
                column.name
                for column in list_columns(datasource, step.config["schema"], step.config["table"])
            ]
        except DataSourceUnavailable:
            return []
        return [*names, "_old"] if "update" in step.config.get("operations", []) else names

    def on_publish(self, step, previous_step) -> None:
        config = self.validate(step.config)
        datasource = _datasource(step)
        if datasource is None:
            _fail(step, "datasource", "This data source does not exist (any more): choose another one.")
        previous_ds = _datasource(previous_step) if previous_step is not None else None
        spec = TriggerSpec(
            schema=config["schema"],
            table=config["table"],
            operations=tuple(config["operations"]),
            watch_columns=tuple(config["watch_columns"]),
            notify=datasource.notify_enabled,
        )
        try:
            if previous_ds is not None and previous_ds.pk != datasource.pk:
                remove_trigger(previous_ds, step.version.workflow_id)
            install_trigger(datasource, step.version.workflow_id, spec)
        except DataSourceUnavailable as exc:
            _fail(step, "table", str(exc))

    def on_unpublish(self, step) -> None:
        datasource = _datasource(step)
        if datasource is None:  # deleted data source: nothing left for Rowbell to remove
            return
        try:
            remove_trigger(datasource, step.version.workflow_id)
        except DataSourceUnavailable as exc:
            _fail(step, "datasource", f"{exc} The workflow stays published; try again later.")


def _name(value: Any, field: str, errors: dict[str, str], message: str) -> str:
    if not isinstance(value, str) or not value.strip():
        errors[field] = message
        return ""
    return value.strip()


def _datasource(step):
    try:
        return DataSource.objects.filter(tenant_id=step.tenant_id).get(pk=int(step.config.get("datasource")))
    except (DataSource.DoesNotExist, TypeError, ValueError):
        return None


def _fail(step, field: str, message: str) -> None:
    raise PublishError({step.id: {field: message}})
