"""Database trigger: a row inserted or updated in the customer's table starts a run.

Config: `datasource` (a DataSource id of the tenant), `schema` (default "public"), `table`,
`operations` (any of "insert", "update", "delete") and `watch_columns` (updates fire only when one of these
changed; empty means "when any column changed").

The item is the new row as a JSON object (column → value, as PostgreSQL's `to_jsonb` writes it:
timestamps as ISO strings, numerics as numbers). For an update the item also carries `_old`, the row
before the update, so `item.status` is the new value and `item._old.status` the old one. Inserts have no
`_old` key. A delete's item is the deleted row, with `_old` (the same row) and `_deleted: true`, so a
cancel key like `order:{{ item.id }}` works for every operation. (Columns literally named `_old` or
`_deleted` are shadowed.)

The event key of a run is `db:<data source id>:<event log id>`.

Publishing installs the triggers in the customer's database (integrations/datasources/triggers.py) and
unpublishing removes them; both raise PublishError with the reason when the database cannot be reached,
so the workflow's published state always matches what is installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from django import forms
from django.db.models import F

from integrations.datasources import (
    DataSourceUnavailable,
    TriggerSpec,
    install_trigger,
    list_columns,
    list_schemas,
    list_tables,
    remove_trigger,
)
from integrations.datasources.logical import install_capture
from integrations.models import DataSource
from workflows.steps.base import PublishError, StepKind, WatchedTable
from workflows.steps.common import cancel_key_field, run_label_field
from workflows.steps.fields import FlagField, PickerField, PickerListField, TextField
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.references import DataSourceField, reference_id
from workflows.steps.search_fields import SearchFieldsField
from workflows.steps.widgets import CheckboxList

if TYPE_CHECKING:
    from workflows.models import Step

OPERATIONS = (("insert", "Row inserted"), ("update", "Row updated"), ("delete", "Row deleted"))


@dataclass(kw_only=True)
class DatabaseTriggerSettings(StepSettings):
    omitted_when_empty = (
        "run_label",
        "cancel_key",
        "cancel_when_column",
        "cancel_when_value",
        "cancel_when_deleted",
        "search_fields",
    )

    datasource: int
    schema: str = "public"
    table: str
    operations: list[str] = field(default_factory=lambda: ["insert"])
    watch_columns: list[str] = field(default_factory=list)
    run_label: str = ""
    cancel_key: str = ""
    cancel_when_column: str = ""
    cancel_when_value: str = ""
    cancel_when_deleted: bool = False
    search_fields: list[dict[str, Any]] = field(default_factory=list)


def cancels_on(
    config: dict[str, Any], op: str, new_row: dict[str, Any], old_row: dict[str, Any] | None
) -> bool:
    """Whether this change of a row cancels the workflow's runs for it: the row was deleted (with
    `cancel_when_deleted`), or `cancel_when_column` became `cancel_when_value` (it was something else)."""
    if op == "DELETE":
        return bool(config.get("cancel_when_deleted"))
    column = config.get("cancel_when_column")
    if not column or not isinstance(new_row, dict) or column not in new_row:
        return False
    wanted = str(config.get("cancel_when_value", ""))
    before = (old_row or {}).get(column) if op == "UPDATE" else None
    return _as_text(new_row[column]) == wanted and _as_text(before) != wanted


def _as_text(value: Any) -> str:
    """A JSON value as the text a person types: true, 3, paid ("" for null)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DatabaseTriggerForm(StepForm):
    settings_class = DatabaseTriggerSettings
    redraw_on = ("datasource", "schema", "table")

    datasource = DataSourceField(
        label="Data source",
        required=True,
        missing="Choose the data source whose table this workflow watches.",
    )
    schema = PickerField(label="Schema", initial="public", required=False)
    table = PickerField(label="Table", error_messages={"required": "Choose the table to watch."})
    operations = forms.Field(
        label="When a row is", initial=["insert"], required=False, widget=CheckboxList(choices=OPERATIONS)
    )
    watch_columns = PickerListField(
        label="Only when these columns change",
        required=False,
        help_text="For updates: leave empty to start a run whenever any column changes.",
    )
    run_label = run_label_field()
    cancel_key = cancel_key_field()
    cancel_when_column = TextField(
        label="Cancel its runs when column",
        required=False,
        help_text="With a cancel key: when this column of the row becomes the value below (e.g. status), "
        "the runs for that row are cancelled, and so is their work still to come.",
    )
    cancel_when_value = TextField(label="…becomes", required=False, help_text="e.g. cancelled")
    cancel_when_deleted = FlagField(label="…or the row is deleted")
    search_fields = SearchFieldsField()

    def clean_schema(self) -> str:
        return self.cleaned_data["schema"] or "public"

    def clean_operations(self) -> list[str]:
        operations = self.cleaned_data["operations"] or ["insert"]
        if isinstance(operations, str):
            operations = [operations]
        if not isinstance(operations, list) or not set(operations) <= dict(OPERATIONS).keys():
            raise forms.ValidationError("Choose any of insert, update and delete.")
        return [value for value, _ in OPERATIONS if value in operations]

    def clean_watch_columns(self) -> list[str]:
        watch = self.cleaned_data["watch_columns"] or []
        if not all(isinstance(c, str) and c.strip() for c in watch):
            raise forms.ValidationError("Watched columns must be a list of column names.")
        return [c.strip() for c in watch]

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data.get("watch_columns") and "update" not in data.get("operations", ["update"]):
            self.add_error(
                "watch_columns", "Watched columns only apply to updates: add “update” or clear them."
            )
        data["cancel_when_column"] = (data.get("cancel_when_column") or "").strip()
        data["cancel_when_value"] = data.get("cancel_when_value") or ""
        cancels = data["cancel_when_column"] or data.get("cancel_when_deleted")
        if cancels and not (data.get("cancel_key") or "").strip() and "cancel_key" not in self.errors:
            self.add_error(
                "cancel_key", "Cancelling from the row needs a cancel key, e.g. order:{{ item.id }}."
            )
        if data.get("cancel_when_value") and not data["cancel_when_column"]:
            self.add_error("cancel_when_column", "Name the column that takes this value, e.g. status.")
        return data

    def load_options(self) -> None:
        """The schemas, tables and columns of the chosen data source (asked of its database)."""
        pk = reference_id(self.raw("datasource"))
        source = None
        if self.tenant_id is not None and pk is not None:
            source = DataSource.objects.filter(tenant_id=self.tenant_id, pk=pk).first()
        if source is None:
            for name in ("schema", "table", "watch_columns"):
                self.options_errors[name] = "Choose a data source first."
            return
        schema, table = self.raw("schema") or "public", self.raw("table")
        try:
            # The source's watched schemas first (what its setup SQL granted), then any other it may use.
            usable = list_schemas(source)
            ordered = [name for name in source.schemas if name in usable]
            ordered += [name for name in usable if name not in ordered]
            self.fields["schema"].widget.choices = [("", "Choose…")] + [(n, n) for n in ordered]
            tables = [(t.name, t.qualified_name) for t in list_tables(source, schema)]
            self.fields["table"].widget.choices = [("", "Choose…"), *tables]
            if not table:
                self.options_errors["watch_columns"] = "Choose a table first."
                return
            self.fields["watch_columns"].widget.choices = [
                (c.name, f"{c.name} ({c.type})") for c in list_columns(source, schema, table)
            ]
        except DataSourceUnavailable as exc:
            for name in ("schema", "table", "watch_columns"):
                self.options_errors.setdefault(name, str(exc))


class DatabaseTrigger(StepKind):
    kind = "database_trigger"
    label = "Database trigger"
    description = (
        "Starts a run when a row is inserted into, updated in or deleted from a table of your database."
    )
    is_trigger = True
    form_class = DatabaseTriggerForm

    def default_config(self) -> dict[str, Any]:
        return {"schema": "public", "operations": ["insert"], "watch_columns": []}

    def summary(self, config: dict[str, Any]) -> str:
        happened = {"insert": "inserted", "update": "updated", "delete": "deleted"}
        ops = " or ".join(happened.get(op, op) for op in config.get("operations") or ["insert"])
        return f"when a row is {ops} in {config.get('schema') or 'public'}.{config.get('table') or '?'}"

    def watched_table(self, config: dict[str, Any]) -> WatchedTable:
        return WatchedTable(
            config.get("datasource"), config.get("schema") or "public", config.get("table") or ""
        )

    def watched_rows(self, config: dict[str, Any]) -> list[WatchedTable]:
        """Cancelling from the row's state needs its updates and deletes, whatever starts the runs."""
        if config.get("cancel_when_column") or config.get("cancel_when_deleted"):
            return [self.watched_table(config)]
        return []

    def describe_trigger(self, config: dict[str, Any]) -> str:
        ops = " and ".join(config.get("operations") or ["insert"])
        return f"a row trigger ({ops}) on {config.get('schema') or 'public'}.{config.get('table', '?')}"

    def output_fields(self, step: Step, input_fields: list[str]) -> list[str]:
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
        operations = step.config.get("operations", [])
        if "delete" in operations:
            return [*names, "_old", "_deleted"]
        return [*names, "_old"] if "update" in operations else names

    def on_publish(self, step: Step, previous_step: Step | None) -> None:
        settings = self.settings(self.validate(step.config))
        datasource = _datasource(step)
        if datasource is None:
            _fail(step, "datasource", "This data source does not exist (any more): choose another one.")
        previous_ds = _datasource(previous_step) if previous_step is not None else None
        spec = TriggerSpec(
            schema=settings.schema,
            table=settings.table,
            operations=tuple(settings.operations),
            watch_columns=tuple(settings.watch_columns),
            notify=datasource.notify_enabled,
        )
        try:
            if previous_ds is not None and previous_ds.pk != datasource.pk:
                remove_trigger(previous_ds, step.version.workflow_id)
            if datasource.capture_mode == DataSource.CaptureMode.LOGICAL:
                # Before the publish commits: a change is decoded with the publication as it was then.
                install_capture(datasource, _published_tables(datasource, extra=(spec.schema, spec.table)))
            else:
                install_trigger(datasource, step.version.workflow_id, spec)
        except DataSourceUnavailable as exc:
            _fail(step, "table", str(exc))

    def on_unpublish(self, step: Step) -> None:
        datasource = _datasource(step)
        if datasource is None:  # deleted data source: nothing left for Rowbell to remove
            return
        try:
            remove_trigger(datasource, step.version.workflow_id)
        except DataSourceUnavailable as exc:
            _fail(step, "datasource", f"{exc} The workflow stays published; try again later.")


def _published_tables(datasource: DataSource, extra: tuple[str, str]) -> list[tuple[str, str]]:
    """The tables the data source's published database triggers watch, and `extra`, once each."""
    from workflows.models import Step

    steps = Step.objects.filter(
        kind=DatabaseTrigger.kind,
        parent__isnull=True,
        version__workflow__published_version=F("version"),
        config__datasource=datasource.pk,
    )
    tables = [(step.config.get("schema", "public"), step.config.get("table", "")) for step in steps]
    return list(dict.fromkeys([*tables, extra]))


def _datasource(step: Step) -> DataSource | None:
    try:
        found: DataSource = DataSource.objects.filter(tenant_id=step.tenant_id).get(
            pk=int(step.config.get("datasource"))
        )
    except (DataSource.DoesNotExist, TypeError, ValueError):
        return None
    return found


def _fail(step: Step, field: str, message: str) -> NoReturn:
    raise PublishError({step.id: {field: message}})
