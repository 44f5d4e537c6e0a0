"""Wait: hold each item for a fixed duration, or until a time read from the item (with an offset).

The engine asks `due_at(config, item, now)` when it creates the wait's execution and stores the answer
as `next_attempt_at`, so the wait lives in PostgreSQL; executing the step then passes the item on.
Test runs with the `skip_waits` option are due at once.

`reread` (with a database trigger): when the wait ends, the trigger's row is read again by primary key
(workflows/steps/row_reread.py). Row deleted → the path ends `filtered`, "row deleted". In "until" mode,
a time column that moved later → the wait goes on until the new time (the execution is pending again).
`still_matches` (an expression over `item`, the row as it is now, and `row`, the same) must be true
for the item to go on, else the path ends `filtered` with the expression. When the wait's item is the
trigger's row itself (no fan-out above it), the item passed on is the row as it is now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.failures import Failure
from integrations.templating import TemplateError, evaluate
from workflows.steps import row_wait
from workflows.steps.base import StepKind, StepPreview, WatchedTable
from workflows.steps.context import StepContext
from workflows.steps.fields import (
    ChoiceField,
    ExpressionField,
    FlagField,
    NumberField,
    TemplateField,
    TextField,
    unit_field,
)
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.references import DataSourceField
from workflows.steps.results import Deferred, Filtered, Routed, Skipped
from workflows.steps.row_reread import reread_row

TABLE_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}")
UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
MAX_WAIT_DAYS = 400


MODES = (
    ("duration", "for a duration"),
    ("until", "until a time in the item"),
    ("row", "until a row matches, at most a while"),
)
DIRECTIONS = (("before", "before"), ("after", "after"))
REREAD_FIELDS = ("reread", "still_matches")
# Each mode's own fields: the panel shows only the chosen mode's, and only they are stored.
MODE_FIELDS = {
    "duration": ("amount", "unit"),
    "until": ("field", "offset_amount", "offset_unit", "offset_direction"),
    "row": ("datasource", "table", "key", "condition", "timeout_amount", "timeout_unit"),
}
# Modes whose items may be read again when the wait ends ("row" reads its row anyway).
REREAD_MODES = ("duration", "until")


@dataclass
class WaitSettings(StepSettings):
    mode: str = "duration"
    amount: float = 0
    unit: str = "days"
    field: str = ""
    offset_amount: float = 0
    offset_unit: str = "days"
    offset_direction: str = "before"
    reread: bool = False
    still_matches: str = ""
    datasource: int | None = None
    table: str = ""
    key: str = "{{ item.id }}"
    condition: str = ""
    timeout_amount: float = 3
    timeout_unit: str = "days"

    def to_json(self) -> dict[str, Any]:
        stored = super().to_json()
        reread = REREAD_FIELDS if self.reread and self.mode in REREAD_MODES else ()
        return {key: stored[key] for key in ("mode", *MODE_FIELDS[self.mode], *reread)}

    def timeout(self) -> timedelta:
        return timedelta(seconds=float(self.timeout_amount) * UNITS[self.timeout_unit])

    def due_at(self, item: dict[str, Any], now: datetime) -> datetime:
        """When the item may go on. Raises Failure when the item has no usable time."""
        if self.mode == "row":
            return now  # its first run registers the wait and reads the row (workflows/steps/row_wait.py)
        if self.mode == "duration":
            return now + timedelta(seconds=float(self.amount) * UNITS[self.unit])
        name = self.field
        if name not in item or item[name] in (None, ""):
            raise Failure(
                f"Wait: the item has no “{name}” to wait for (fields: {', '.join(item) or 'none'}).",
                permanent=True,
            )
        moment = _parse_time(item[name], name)
        offset = timedelta(seconds=float(self.offset_amount or 0) * UNITS[self.offset_unit])
        return moment - offset if self.offset_direction == "before" else moment + offset


class WaitForm(StepForm):
    settings_class = WaitSettings
    redraw_on = ("mode",)

    mode = ChoiceField(
        label="Wait",
        initial="duration",
        choices=MODES,
        required=False,
        error_messages={"invalid_choice": "Choose “duration” or “until”."},
    )
    amount = NumberField(label="Duration", help_text="How many units to wait.")
    unit = unit_field("Unit", "days")
    field = TextField(
        label="Time field", required=False, help_text="The item field holding the time, e.g. trial_ends_at."
    )
    offset_amount = NumberField(label="Offset", initial=0, help_text="e.g. 1 for “1 day before”.")
    offset_unit = unit_field("Offset unit", "days")
    offset_direction = ChoiceField(
        label="Before or after",
        initial="before",
        choices=DIRECTIONS,
        required=False,
        error_messages={"invalid_choice": "Choose “before” or “after”."},
    )
    reread = FlagField(
        label="Read the row again when the wait ends",
        help_text="Database trigger only: the row is fetched by its primary key. Deleted: the path ends "
        "(filtered, “row deleted”). Waiting until a time from the row: a time moved later is followed.",
    )
    still_matches = ExpressionField(
        label="…and go on only if",
        required=False,
        help_text="Optional, over the row as it is now, e.g. item.status != 'paid'.",
    )
    datasource = DataSourceField(label="Data source", help_text="The database holding the row.")
    table = TextField(
        label="Table", required=False, help_text="The row's table, e.g. orders or billing.orders."
    )
    key = TemplateField(
        label="The row's key",
        initial="{{ item.id }}",
        help_text="Its primary key, from the item, e.g. {{ item.id }} or {{ item.order_id }}.",
    )
    condition = ExpressionField(
        label="Until",
        required=False,
        help_text="Over the row as it is now, e.g. row.status == 'paid'. Woken by the row's change, no polling.",
    )
    timeout_amount = NumberField(
        label="At most", initial=3, help_text="Then the item takes the “Timed out” path."
    )
    timeout_unit = unit_field("Unit", "days")

    def mode_chosen(self) -> str:
        mode = self.data.get(self.add_prefix("mode")) or "duration"
        return mode if mode in MODE_FIELDS else "duration"

    def panel_fields(self) -> list[str]:
        mode = self.mode_chosen()
        return ["mode", *MODE_FIELDS[mode], *(REREAD_FIELDS if mode in REREAD_MODES else ())]

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        mode = data.get("mode") or "duration"
        if "mode" not in self.errors:
            data["mode"] = mode
        reread = REREAD_FIELDS if mode in REREAD_MODES else ()
        for name in set(self.fields) - {"mode", *reread, *MODE_FIELDS.get(mode, ())}:
            self.errors.pop(name, None)  # the other mode's fields are neither used nor stored
        for unit in ("unit", "offset_unit", "timeout_unit"):
            data[unit] = data.get(unit) or "days"
        data["offset_direction"] = data.get("offset_direction") or "before"
        if mode == "duration" and self._non_negative("amount", required=True):
            if "unit" not in self.errors and data["amount"] * UNITS[data["unit"]] > MAX_WAIT_DAYS * 86400:
                self.add_error("amount", f"A wait can last at most {MAX_WAIT_DAYS} days.")
        elif mode == "until":
            if not data.get("field"):
                self.add_error("field", "Name the item field that holds the time, e.g. trial_ends_at.")
            self._non_negative("offset_amount", required=False)
        elif mode == "row":
            self._clean_row_mode(data)
        if mode in REREAD_MODES and data.get("still_matches") and not data.get("reread"):
            self.add_error("still_matches", "A condition on the row needs “Read the row again” ticked.")
        return data

    def _clean_row_mode(self, data: dict[str, Any]) -> None:
        if "datasource" not in self.errors and not data.get("datasource"):
            self.add_error("datasource", "Choose the data source that holds the row.")
        table = (data.get("table") or "").strip()
        data["table"] = table
        if not table:
            self.add_error("table", "Name the row's table, e.g. orders.")
        elif not TABLE_NAME.fullmatch(table):
            self.add_error("table", "Write the table as name or schema.name, e.g. orders or billing.orders.")
        if "key" not in self.errors and not (data.get("key") or "").strip():
            data["key"] = "{{ item.id }}"  # the item is the row (a database trigger's)
        if "condition" not in self.errors and not data.get("condition"):
            self.add_error("condition", "Write the condition the row must meet, e.g. row.status == 'paid'.")
        if self._non_negative("timeout_amount", required=True) and "timeout_unit" not in self.errors:
            seconds = data["timeout_amount"] * UNITS[data["timeout_unit"]]
            if seconds <= 0:
                self.add_error("timeout_amount", "Give the longest wait, more than zero, like 3 (days).")
            elif seconds > MAX_WAIT_DAYS * 86400:
                self.add_error("timeout_amount", f"A wait can last at most {MAX_WAIT_DAYS} days.")

    def _non_negative(self, name: str, required: bool) -> bool:
        wrong = "Give a number that is zero or more, like 3."
        if name in self.errors:
            self.errors[name] = self.error_class([wrong])
            return False
        value = self.cleaned_data.get(name)
        if value is None:
            if required:
                self.add_error(name, "Give a number, like 3.")
                return False
            self.cleaned_data[name] = 0
            return True
        if value < 0:
            self.add_error(name, wrong)
            return False
        return True


class Wait(StepKind):
    kind = "wait"
    label = "Wait"
    holds_items = True
    description = (
        "Waits a fixed time, until a time taken from the item (e.g. 1 day before trial_ends_at), or until "
        "a row matches (e.g. the order is paid, at most 3 days), woken by the row's change."
    )
    form_class = WaitForm

    def default_config(self) -> dict[str, Any]:
        return {"mode": "duration", "amount": 1, "unit": "days"}

    def due_at(self, config: dict[str, Any], item: dict[str, Any], now: datetime) -> datetime:
        """When the item may go on. Raises Failure when the item has no usable time."""
        due: datetime = self.settings(config).due_at(item, now)
        return due

    def paths(self, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Waiting for a row has two outcomes, each a path: the row matched, or the wait timed out."""
        return list(row_wait.PATHS) if config.get("mode") == "row" else []

    def watched_rows(self, config: dict[str, Any]) -> list[WatchedTable]:
        if config.get("mode") != "row" or not config.get("table"):
            return []
        schema, table = row_wait.split_table(config["table"])
        return [WatchedTable(config.get("datasource"), schema, table)]

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        if (ctx.step.config or {}).get("mode") == "row":
            return StepPreview(shows="item", content={"waits_until": self.summary(ctx.step.config)})
        return StepPreview(shows="wait", due=self.due_at(ctx.step.config, item, ctx.now))

    def execute(
        self, ctx: StepContext, item: dict[str, Any]
    ) -> list[dict[str, Any]] | Skipped | Filtered | Deferred | Routed:
        settings = self.settings(ctx.step.config)
        if settings.mode == "row":
            return row_wait.wait_for_row(ctx, settings, item, skipping=_skipping(ctx))
        # The engine already held the item until due_at (or skipped that in a test run); computing it
        # again surfaces an item without a usable time as this execution's error.
        due = self.due_at(ctx.step.config, item, ctx.now)
        if _skipping(ctx) and due > ctx.now:
            return Skipped(
                [item], {"skipped": "test run: waits skipped", "would_wait_until": due.isoformat()}
            )
        return reread_at_end(ctx, settings, item) if settings.reread else [item]

    def summary(self, config: dict[str, Any]) -> str:
        reread = config.get("reread") and config.get("mode", "duration") in REREAD_MODES
        return self._summary(config) + (", then reads the row again" if reread else "")

    def _summary(self, config: dict[str, Any]) -> str:
        if config.get("mode") == "row":
            amount, unit = config.get("timeout_amount"), config.get("timeout_unit", "days")
            if amount == 1:
                unit = unit.removesuffix("s")
            return f"until {config.get('condition') or '?'} in {config.get('table') or '?'}, at most {_plain(amount)} {unit}"
        if config.get("mode", "duration") == "duration":
            amount = config.get("amount")
            unit = config.get("unit", "days")
            if amount == 1:
                unit = unit.removesuffix("s")
            return f"for {_plain(amount)} {unit}"
        offset = config.get("offset_amount") or 0
        field = config.get("field") or "?"
        if not offset:
            return f"until {field}"
        return f"until {_plain(offset)} {config.get('offset_unit', 'days')} {config.get('offset_direction', 'before')} {field}"


def reread_at_end(
    ctx: StepContext, settings: WaitSettings, item: dict[str, Any]
) -> list[dict[str, Any]] | Filtered | Deferred:
    """The wait has ended: read the trigger's row again and decide (see the module's docstring)."""
    row = reread_row(ctx)
    if row is None:
        return Filtered({"filtered": "row deleted"})
    own_row = getattr(ctx.execution, "item_key", "0") == "0"  # the wait's item is the trigger's row
    current = {**item, **row} if own_row else item
    if settings.mode == "until":
        if row.get(settings.field) in (None, ""):
            return Filtered({"filtered": f"row's {settings.field} is empty now"})
        due = settings.due_at({**item, **row}, ctx.now)
        if due > ctx.now:
            return Deferred(due, {"waiting": f"{settings.field} moved", "until": due.isoformat()})
    if settings.still_matches:
        try:
            matches = evaluate(settings.still_matches, {"item": current, "row": row, "run": ctx.run_context})
        except TemplateError as exc:
            raise Failure(f"Wait: the condition on the row: {exc}", permanent=True) from exc
        if not matches:
            return Filtered({"filtered": f"row no longer matches: {settings.still_matches}"})
    return [current]


def _parse_time(value: Any, name: str) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise Failure(f"Wait: “{name}” is {value!r}, which is not a date and time.", permanent=True) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _skipping(ctx: StepContext) -> bool:
    """A test run that skips waits, or a wait someone fast-forwarded ("Skip waits now" marks it)."""
    if (ctx.run.options or {}).get("skip_waits"):
        return True
    output = ctx.execution.output if ctx.execution is not None else None
    return isinstance(output, dict) and bool(output.get("skip_requested"))


def _plain(number: Any) -> str:
    """3.0 -> "3", 1.5 -> "1.5"."""
    return f"{number:g}" if isinstance(number, int | float) else str(number)
