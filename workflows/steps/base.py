"""What every step kind shares: its name, config validation, and how it runs one item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class ConfigError(Exception):
    """A step's config is not usable. `errors` maps each field to a message a person can act on."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


@dataclass(frozen=True)
class Field:
    """One config field, described once so the builder can draw its form and validation can name it.

    widget: text, textarea, sql, template, expression (a condition over `item`: the variable chips insert
    `item.name` into it), paths (a branch's ordered paths; `choices` are its operators), number,
    checkbox, select, multiselect, json, secret,
    datasource (a DataSource id of the tenant), schema (a schema of the chosen data source),
    table (a table of the chosen data source, in the chosen schema),
    columns (column names of the chosen table).
    """

    name: str
    label: str
    widget: str = "text"
    required: bool = False
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    default: Any = None


class StepKind:
    """One kind of step. Subclasses live one per module under workflows/steps/ and register themselves."""

    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    is_trigger: ClassVar[bool] = False
    fields: ClassVar[tuple[Field, ...]] = ()

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        """Return the cleaned config, or raise ConfigError naming each bad field."""
        return dict(config)

    def default_config(self) -> dict[str, Any]:
        return {}

    def output_fields(self, step, input_fields: list[str]) -> list[str]:
        """Names available to the steps below this one (the builder's variable picker)."""
        return input_fields

    def execute(self, ctx, item: dict[str, Any]) -> Any:
        """Run the step on one item; return a list of items (see workflows/steps/results.py).

        `ctx` is a runs.engine.context.StepContext (run, step, execution, now, per-batch resources).
        Raise integrations.failures.Failure(message, permanent=...) for errors. The default passes the item through, which is
        what a trigger does: its item is the event's payload.
        """
        return [item]

    def summary(self, config: dict[str, Any]) -> str:
        """One short line saying what the step does with these settings, for the builder's nodes."""
        return ""

    def sample_item(self, config: dict[str, Any]) -> dict[str, Any]:
        """A trigger's example item, typed by the person (test runs and previews start from it)."""
        return {}

    def paths(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """The labelled paths a step's children sit on, as (id, label) in order (a branch's paths).

        Empty for ordinary kinds, whose children are parallel branches that all get every item.
        Each child of a step with paths carries its path's id in `Step.path`.
        """
        return []

    def on_publish(self, step, previous_step) -> None:
        """Called when a version whose tree holds this step is published (install triggers here)."""

    def on_unpublish(self, step) -> None:
        """Called when the version holding this step stops being the published one."""


def require(config: dict[str, Any], field: str, errors: dict[str, str], message: str | None = None) -> Any:
    """Read a required, non-blank field, recording a message when it is missing."""
    value = config.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        errors[field] = message or "This field is required."
    return value
