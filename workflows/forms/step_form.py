"""A step's form, drawn generically from its kind's `fields`, and the config read back from a POST.

Every widget maps to plain HTML controls; pickers (data source, table, columns) get their options from
the tenant's data sources and their introspection, so a new step kind needs no builder change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import QueryDict

from consent.choices import consent_options
from integrations.datasources import DataSourceUnavailable, list_columns, list_schemas, list_tables
from integrations.json_input import NUL, JsonInputError, load_json
from integrations.models import DataSource, Sender
from workflows.models import Step
from workflows.steps import ConfigError, get_kind
from workflows.steps.base import Field
from workflows.steps.common import RETRY_FIELDS
from workflows.variables import unknown_variables_warning

LIST_WIDGETS = {"multiselect", "columns"}
TEXT_AREAS = {"textarea", "sql", "template", "json"}
# Shown folded under "Retries": most steps never change them.
ADVANCED_FIELDS = {spec.name for spec in RETRY_FIELDS}
# PostgreSQL cannot store a NUL character: a field that has one keeps its saved value and says why.
NUL_ERROR = "This contains a NUL character (\\0), which cannot be saved: remove it. The saved value is kept."


@dataclass
class BoundField:
    spec: Field
    value: Any
    error: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    options_error: str = ""
    default_label: str = ""  # a sender picker's empty choice: what "the default" is
    warning: str = ""  # e.g. an unknown variable: saved anyway, but worth a look

    @property
    def widget(self) -> str:
        return self.spec.widget

    @property
    def text(self) -> str:
        """The value as the control shows it."""
        if self.value is None:
            return ""
        if self.widget == "json":
            return self.value if isinstance(self.value, str) else json.dumps(self.value, indent=2)
        return str(self.value)

    @property
    def selected(self) -> set[str]:
        if isinstance(self.value, list):
            return {str(v) for v in self.value}
        return {str(self.value)} if self.value not in (None, "") else set()

    @property
    def missing_choice(self) -> str:
        """A saved value the options no longer offer (kept visible rather than silently dropped)."""
        if self.value in (None, "") or isinstance(self.value, list):
            return ""
        return "" if self.text in {value for value, _ in self.options} else self.text

    @property
    def rows(self) -> int:
        minimum = 1 if self.widget == "template" else 4
        return min(14, max(minimum, self.text.count("\n") + 1))

    @property
    def is_advanced(self) -> bool:
        return self.spec.name in ADVANCED_FIELDS

    @property
    def is_textarea(self) -> bool:
        return self.widget in TEXT_AREAS

    @property
    def takes_variables(self) -> bool:
        return self.widget in ("template", "sql", "expression")

    @property
    def paths(self) -> list[dict[str, Any]]:
        """A paths widget's rows, each with its index (the names its inputs post under)."""
        rows = self.value if isinstance(self.value, list) else []
        return [{**row, "index": index} for index, row in enumerate(rows) if isinstance(row, dict)]


def field_warning(bound: BoundField, known: list[str]) -> str:
    """What to point out about a field that saved fine: variables the item does not have here."""
    if bound.widget in ("template", "sql"):
        return unknown_variables_warning(bound.value, known)
    if bound.widget == "expression":
        return unknown_variables_warning(bound.value, known, expression=True)
    if bound.widget == "paths" and known:
        for row in bound.paths:
            label = row.get("label") or f"Path {row['index'] + 1}"
            if row.get("match") == "expression":
                found = unknown_variables_warning(row.get("expression") or "", known, expression=True)
            else:
                name = str(row.get("field") or "").split(".")[0]
                found = f"Unknown variable item.{name}." if name and name not in known else ""
            if found:
                return f"Path “{label}”: {found}"
    return ""


def config_from_post(step: Step, data: QueryDict) -> tuple[dict[str, Any], dict[str, str]]:
    """The posted config and the values that could not be read (kept as typed, so nothing is lost)."""
    config = dict(step.config)
    errors: dict[str, str] = {}
    for spec in get_kind(step.kind).fields:
        key = f"config-{spec.name}"
        if any(NUL in value for value in data.getlist(key)):
            errors[spec.name] = NUL_ERROR
        elif spec.widget in LIST_WIDGETS:
            config[spec.name] = [v for v in data.getlist(key) if v != ""]
        elif spec.widget == "checkbox":
            config[spec.name] = data.get(key) in ("on", "true", "1")
        elif spec.widget == "paths":
            if f"{key}-count" in data:
                config[spec.name] = _paths_from_post(data, key)
        elif key not in data:
            continue
        elif spec.widget == "secret" and not data.get(key):
            continue  # secrets are never shown back: an empty box keeps the saved one
        else:
            config[spec.name] = _convert(spec, data.get(key, ""), errors)
    return config, errors


PATH_KEYS = ("id", "label", "match", "field", "operator", "value", "expression")


def _paths_from_post(data: QueryDict, key: str) -> list[dict[str, Any]]:
    """Rows posted as config-paths-<n>-<key>, in order; a row's keys that were not posted stay out."""
    raw = data.get(f"{key}-count", "")
    count = min(int(raw), 50) if raw.isdigit() else 0
    rows = []
    for index in range(count):
        row = {name: data[f"{key}-{index}-{name}"] for name in PATH_KEYS if f"{key}-{index}-{name}" in data}
        if row.get("id"):
            rows.append(row)
    return rows


def _convert(spec: Field, raw: str, errors: dict[str, str]) -> Any:
    if spec.widget == "number":
        raw = raw.strip()
        if raw == "":
            return None
        try:
            number = float(raw)
        except ValueError:
            errors[spec.name] = "Enter a number."
            return raw
        return int(number) if number.is_integer() else number
    if spec.widget in ("datasource", "sender", "topic"):
        return int(raw) if raw.isdigit() else None
    if spec.widget == "layout":
        return int(raw) if raw.isdigit() else (raw if raw == "none" else None)
    if spec.widget == "json":
        if not raw.strip():
            return None
        try:
            return load_json(raw)
        except json.JSONDecodeError as exc:
            errors[spec.name] = f"This is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}."
            return raw
        except JsonInputError as exc:
            errors[spec.name] = str(exc)
            return raw
    return raw


def step_errors(step: Step) -> dict[str, str]:
    try:
        get_kind(step.kind).validate(step.config)
    except ConfigError as exc:
        return exc.errors
    return {}


def bind_fields(step: Step, tenant, errors: dict[str, str]) -> list[BoundField]:
    kind = get_kind(step.kind)
    config = step.config
    bound = []
    for spec in kind.fields:
        value = config.get(spec.name, spec.default)
        item = BoundField(spec, value, errors.get(spec.name, ""))
        item.options = [(str(v), label) for v, label in spec.choices]
        if spec.widget == "datasource":
            sources = DataSource.objects.for_tenant(tenant).order_by("name")
            item.options = [(str(s.pk), s.name) for s in sources]
        elif spec.widget == "sender":
            _sender_options(item, tenant)
        elif spec.widget in ("topic", "layout"):
            item.options = consent_options(spec.widget, tenant)
        elif spec.widget in ("schema", "table", "columns"):
            _introspect(item, tenant, config)
        bound.append(item)
    return bound


def _sender_options(item: BoundField, tenant) -> None:
    """The tenant's senders; the empty choice names the default (the tenant's, or the platform's address)."""
    senders = list(Sender.objects.for_tenant(tenant).order_by("name"))
    item.options = [(str(s.pk), f"{s.name} — {s.from_address}") for s in senders]
    default = next((s for s in senders if s.is_default), None)
    shown = f"{default.name} — {default.from_address}" if default else settings.DEFAULT_FROM_EMAIL
    item.default_label = f"Default: {shown}"


def _introspect(item: BoundField, tenant, config: dict[str, Any]) -> None:
    source = DataSource.objects.for_tenant(tenant).filter(pk=_int(config.get("datasource"))).first()
    if source is None:
        item.options_error = "Choose a data source first."
        return
    schema = config.get("schema") or "public"
    try:
        if item.widget == "schema":
            # The source's watched schemas first (what its setup SQL granted), then any other it may use.
            usable = list_schemas(source)
            ordered = [name for name in source.schemas if name in usable]
            ordered += [name for name in usable if name not in ordered]
            item.options = [(name, name) for name in ordered]
        elif item.widget == "table":
            item.options = [(t.name, t.qualified_name) for t in list_tables(source, schema)]
        elif config.get("table"):
            item.options = [
                (c.name, f"{c.name} ({c.type})") for c in list_columns(source, schema, config["table"])
            ]
        else:
            item.options_error = "Choose a table first."
    except DataSourceUnavailable as exc:
        item.options_error = str(exc)


def with_single_datasource(kind, config: dict[str, Any], tenant_id: int) -> dict[str, Any]:
    """A new step of a kind with a data-source picker starts with the tenant's data source chosen when it
    has exactly one (and, for a schema picker, its first watched schema)."""
    names = {spec.name for spec in kind.fields}
    if "datasource" not in names or config.get("datasource"):
        return config
    # only(): the connection URL is not needed, so it is not decrypted.
    sources = list(DataSource.objects.filter(tenant_id=tenant_id).only("pk", "schemas")[:2])
    if len(sources) != 1:
        return config
    config = {**config, "datasource": sources[0].pk}
    if "schema" in names and sources[0].schemas:
        config["schema"] = sources[0].schemas[0]
    return config


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
