"""Data query: SQL against one of the tenant's data sources, read-only, item values as bound parameters.

Placeholders: `{{ item.post_id }}` in the SQL becomes a bound parameter (see integrations/query.py).
Modes:
- `fanout`: every row becomes an item (keyed by `key_column`, `id` by default), streamed from a
  server-side cursor, so the steps below run once per row;
- `first`: the first row's columns are merged into the item;
- `all`: the rows are put into the item under `into` (default `rows`).
Zero rows ends the path in every mode. A fan-out over DATA_QUERY_MAX_ROWS creates nothing: the rows
are counted (up to the cap + 1) before the first item is made, and the step fails with the reason. Rows
that outgrow their count (volatile SQL) are read up to the cap and no further; the error then says how
many items were made. A statement timeout is retried once, then fails (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms

from integrations.failures import Failure
from integrations.models import DataSource
from integrations.query import (
    PLACEHOLDER,
    QueryError,
    check_tenant_sql,
    compile_sql,
    describe_columns,
    fetch_rows,
    parametrized,
    placeholders,
    stream_rows,
)
from integrations.templating import validate_expression
from workflows.steps.base import StepKind, StepPreview
from workflows.steps.common import RetryForm, RetrySettings
from workflows.steps.context import StepContext
from workflows.steps.fields import ChoiceField, TemplateField, TextField
from workflows.steps.forms import StepForm
from workflows.steps.references import DataSourceField
from workflows.steps.results import FanOut
from workflows.steps.widgets import SqlArea

if TYPE_CHECKING:
    from workflows.models import Step

# Rows a preview shows (the total is counted in full).
PREVIEW_ROWS = 10
MODES = (("fanout", "One item per row"), ("first", "Add the first row to the item"), ("all", "Add all rows"))


class SqlField(TemplateField):
    """One read-only SELECT whose {{ placeholders }} become bound parameters."""

    widget = SqlArea
    missing = "Write the SELECT to run, e.g. SELECT id, email FROM users WHERE id = {{ item.user_id }}."

    def __init__(self, **kwargs: Any):
        super().__init__(required=True, error_messages={"required": self.missing}, **kwargs)

    def to_python(self, value: Any) -> str:
        return super().to_python(value).strip().rstrip(";").strip()

    def validate(self, value: Any) -> None:
        forms.CharField.validate(self, value)
        for expression in placeholders(value):
            problem = validate_expression(expression)
            if problem:
                raise forms.ValidationError(
                    f"The placeholder {{{{ {expression} }}}} is not valid: {problem.message}"
                )
        try:
            check_tenant_sql(parametrized(value))
        except QueryError as exc:
            raise forms.ValidationError(exc.message) from None


class NameField(TextField):
    """A column or item field name; empty means the default."""

    def __init__(self, default: str, **kwargs: Any):
        super().__init__(required=False, initial=default, **kwargs)
        self.default = default

    def clean(self, value: Any) -> str:
        name = super().clean(value) or self.default
        if "/" in name:
            raise forms.ValidationError("Give a column or field name (letters, digits, underscores).")
        return name


@dataclass(kw_only=True)
class DataQuerySettings(RetrySettings):
    datasource: int
    sql: str
    mode: str = "fanout"
    key_column: str = "id"
    into: str = "rows"


class DataQueryForm(RetryForm, StepForm):
    settings_class = DataQuerySettings
    redraw_on = ("datasource", "mode")

    datasource = DataSourceField(
        label="Data source", required=True, missing="Choose the data source to query."
    )
    sql = SqlField(
        label="SQL",
        help_text="One SELECT. Use {{ item.field }} for values from the item; they are sent as parameters.",
    )
    mode = ChoiceField(
        label="Result",
        initial="fanout",
        choices=MODES,
        required=False,
        error_messages={"invalid_choice": "Choose fanout, first or all."},
    )
    key_column = NameField(
        label="Key column", default="id", help_text="Fan-out: the column that identifies a row."
    )
    into = NameField(
        label="Put rows into", default="rows", help_text="Mode “all”: the item field that gets the rows."
    )

    def clean_mode(self) -> str:
        return self.cleaned_data["mode"] or "fanout"


class DataQuery(StepKind):
    kind = "data_query"
    label = "Data query"
    description = "Runs a read-only SQL query on a data source: fan out over the rows, or enrich the item."
    form_class = DataQueryForm

    def default_config(self) -> dict[str, Any]:
        return {"mode": "fanout", "key_column": "id", "sql": ""}

    def summary(self, config: dict[str, Any]) -> str:
        sql = " ".join((config.get("sql") or "").split())
        mode = dict(MODES).get(config.get("mode", "fanout"), "")
        return f"{mode}: {sql}" if sql else mode

    def output_fields(self, step: Step, input_fields: list[str]) -> list[str]:
        columns, _ = describe_query(step.tenant_id, step.config)
        mode = step.config.get("mode", "fanout")
        if mode == "fanout":
            return columns
        if mode == "first":
            return _merge(input_fields, columns)
        return _merge(input_fields, [step.config.get("into") or "rows"])

    def live_problems(self, step: Step) -> dict[str, str]:
        _, problem = describe_query(step.tenant_id, step.config)
        return {"sql": problem} if problem else {}

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        """The first rows and the total count of the step's query for this item (read-only)."""
        settings = self.step_settings(ctx)
        sql, params = compile_sql(settings.sql, {"item": item, "run": ctx.run_context})
        check_tenant_sql(sql)
        conn = ctx.query_connection(settings.datasource)
        total = fetch_rows(conn, f"SELECT count(*) AS total FROM ({sql}\n) AS preview", params)[0]["total"]
        rows = fetch_rows(conn, f"SELECT * FROM ({sql}\n) AS preview LIMIT {PREVIEW_ROWS}", params)
        return StepPreview(shows="rows", rows=rows, total=total)

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> list[dict[str, Any]] | FanOut:
        settings = self.step_settings(ctx)
        try:
            sql, params = compile_sql(settings.sql, {"item": item, "run": ctx.run_context})
            conn = ctx.query_connection(settings.datasource)
            if settings.mode == "fanout":
                rows = stream_rows(conn, sql, params)
                return FanOut(_keyed(_checked(rows), settings.key_column or "id"), {"mode": "fanout"})
            fetched = fetch_rows(conn, sql, params)
        except QueryError as exc:
            raise Failure(
                f"Data query: {exc.message}", permanent=exc.permanent, max_attempts=exc.max_attempts
            ) from exc
        if not fetched:
            return []
        if settings.mode == "first":
            return [{**item, **fetched[0]}]
        return [{**item, settings.into or "rows": fetched}]


def describe_query(tenant_id: int, config: dict[str, Any]) -> tuple[list[str], str]:
    """(column names, error message) of a data query's SQL; the error is "" when it is fine.

    The columns come from PostgreSQL itself: the SQL is described (wrapped in `LIMIT 0`, every
    placeholder bound as NULL) through integrations.query's read-only connection, like every tenant
    query, which also catches SQL errors while the person is still typing, before anything runs.
    """
    sql = (config.get("sql") or "").strip().rstrip(";")
    pk = _int(config.get("datasource"))
    source = DataSource.objects.filter(tenant_id=tenant_id, pk=pk).first() if pk is not None else None
    if not sql or source is None:
        return [], ""
    count = len(PLACEHOLDER.findall(sql))
    text = parametrized(sql)
    try:
        return describe_columns(source.connection_url, text, [None] * count), ""
    except QueryError as exc:
        return [], exc.message
    except Exception as exc:  # psycopg's errors: the message is what the person needs to see
        return [], _first_line(exc)


def _merge(first: list[str], second: list[str]) -> list[str]:
    return first + [name for name in second if name not in first]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _checked(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:

    try:
        yield from rows
    except QueryError as exc:
        raise Failure(
            f"Data query: {exc.message}", permanent=exc.permanent, max_attempts=exc.max_attempts
        ) from exc


def _keyed(rows: Iterator[dict[str, Any]], key_column: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for index, row in enumerate(rows):
        if key_column not in row:
            raise Failure(
                f"Data query: the rows have no “{key_column}” column to key items by; "
                f"select it or set the key column to one of: {', '.join(row)}.",
                permanent=True,
            )
        key = row[key_column]
        yield (str(key) if key is not None else f"#{index}"), row
