"""Wait: hold each item for a fixed duration, or until a time read from the item (with an offset).

The engine asks `due_at(config, item, now)` when it creates the wait's execution and stores the answer
as `next_attempt_at`, so the wait lives in PostgreSQL; executing the step then passes the item on.
Test runs with the `skip_waits` option are due at once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.failures import Failure
from workflows.steps.base import ConfigError, Field, StepKind, StepPreview
from workflows.steps.context import StepContext
from workflows.steps.results import Skipped

UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
UNIT_CHOICES = (("minutes", "minutes"), ("hours", "hours"), ("days", "days"))
MAX_WAIT_DAYS = 400


class Wait(StepKind):
    kind = "wait"
    label = "Wait"
    holds_items = True
    description = "Waits a fixed time, or until a time taken from the item (e.g. 1 day before trial_ends_at)."
    fields = (
        Field(
            "mode",
            "Wait",
            widget="select",
            required=True,
            default="duration",
            choices=(("duration", "for a duration"), ("until", "until a time in the item")),
        ),
        Field("amount", "Duration", widget="number", help="How many units to wait (mode: duration)."),
        Field("unit", "Unit", widget="select", choices=UNIT_CHOICES, default="days"),
        Field(
            "field", "Time field", help="The item field holding the time, e.g. trial_ends_at (mode: until)."
        ),
        Field("offset_amount", "Offset", widget="number", default=0, help="e.g. 1 for “1 day before”."),
        Field("offset_unit", "Offset unit", widget="select", choices=UNIT_CHOICES, default="days"),
        Field(
            "offset_direction",
            "Before or after",
            widget="select",
            default="before",
            choices=(("before", "before"), ("after", "after")),
        ),
    )

    def default_config(self) -> dict[str, Any]:
        return {"mode": "duration", "amount": 1, "unit": "days"}

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        mode = config.get("mode", "duration")
        if mode == "duration":
            cleaned = {"mode": mode, "unit": config.get("unit", "days")}
            cleaned["amount"] = _number(config.get("amount"), "amount", errors, required=True)
            _unit(cleaned["unit"], "unit", errors)
            if not errors and cleaned["amount"] * UNITS[cleaned["unit"]] > MAX_WAIT_DAYS * 86400:
                errors["amount"] = f"A wait can last at most {MAX_WAIT_DAYS} days."
        elif mode == "until":
            field = config.get("field")
            if not isinstance(field, str) or not field.strip():
                errors["field"] = "Name the item field that holds the time, e.g. trial_ends_at."
            cleaned = {
                "mode": mode,
                "field": (field or "").strip() if isinstance(field, str) else field,
                "offset_amount": _number(config.get("offset_amount", 0), "offset_amount", errors),
                "offset_unit": config.get("offset_unit", "days"),
                "offset_direction": config.get("offset_direction", "before"),
            }
            _unit(cleaned["offset_unit"], "offset_unit", errors)
            if cleaned["offset_direction"] not in ("before", "after"):
                errors["offset_direction"] = "Choose “before” or “after”."
        else:
            raise ConfigError({"mode": "Choose “duration” or “until”."})
        if errors:
            raise ConfigError(errors)
        return cleaned

    def due_at(self, config: dict[str, Any], item: dict[str, Any], now: datetime) -> datetime:
        """When the item may go on. Raises Failure when the item has no usable time."""
        if config.get("mode", "duration") == "duration":
            return now + timedelta(seconds=float(config["amount"]) * UNITS[config.get("unit", "days")])
        name = config["field"]
        if name not in item or item[name] in (None, ""):
            raise Failure(
                f"Wait: the item has no “{name}” to wait for (fields: {', '.join(item) or 'none'}).",
                permanent=True,
            )
        moment = _parse_time(item[name], name)
        offset = timedelta(
            seconds=float(config.get("offset_amount") or 0) * UNITS[config.get("offset_unit", "days")]
        )
        return moment - offset if config.get("offset_direction", "before") == "before" else moment + offset

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        return StepPreview(shows="wait", due=self.due_at(ctx.step.config, item, ctx.now))

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> list[dict[str, Any]] | Skipped:
        # The engine already held the item until due_at (or skipped that in a test run); computing it
        # again surfaces an item without a usable time as this execution's error.
        due = self.due_at(ctx.step.config, item, ctx.now)
        if _skipping(ctx) and due > ctx.now:
            return Skipped(
                [item], {"skipped": "test run: waits skipped", "would_wait_until": due.isoformat()}
            )
        return [item]

    def summary(self, config: dict[str, Any]) -> str:
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


def _number(value: Any, field: str, errors: dict[str, str], required: bool = False) -> float:
    if value in (None, ""):
        if required:
            errors[field] = "Give a number, like 3."
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        errors[field] = "Give a number that is zero or more, like 3."
        return 0
    return value


def _unit(value: Any, field: str, errors: dict[str, str]) -> None:
    if value not in UNITS:
        errors[field] = "Choose minutes, hours or days."


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
