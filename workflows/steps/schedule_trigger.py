"""Schedule trigger: starts a run daily, weekly or monthly at a local time, or on a cron expression.

Config (see integrations/schedule_rules.py for the exact rules, including daylight saving):
`frequency` (daily, weekly, monthly, cron), `time` ("HH:MM", local), `timezone` (IANA, e.g.
"Europe/Berlin"), `weekdays` (weekly: ["mon", ...]), `day_of_month` (monthly: 1..31, or -1..-28
counted from the end, -1 being the last day), `cron` (cron: five fields, evaluated in `timezone`).

Publishing stores the workflow's Schedule row with its next firing (workflows.models.Schedule);
unpublishing deletes it. The periodic job `runs.schedules.fire_due_schedules` starts due runs.
The item is `{"scheduled_at": "<UTC ISO instant>", "local_time": "<local ISO time>", "timezone": ...}`
and the event key is `schedule:<UTC ISO instant>`, so a firing never starts two runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django import forms

from workflows.schedules import clear_schedule, register_schedule
from workflows.steps.base import StepKind
from workflows.steps.common import cancel_key_field, run_label_field
from workflows.steps.fields import ChoiceField, TextField
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.widgets import CheckboxList, NumberInput

if TYPE_CHECKING:
    from workflows.models import Step

FREQUENCIES = (("daily", "Every day"), ("weekly", "Every week"), ("monthly", "Every month"), ("cron", "Cron"))
WEEKDAY_CHOICES = tuple((day, day.capitalize()) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


@dataclass
class ScheduleSettings(StepSettings):
    """Only what the frequency reads is stored (a daily schedule has no weekdays)."""

    frequency: str = "daily"
    timezone: str = "UTC"
    time: str | None = None
    cron: str | None = None
    weekdays: list[str] | None = None
    day_of_month: int | None = None
    run_label: str = ""
    cancel_key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in super().to_json().items() if value not in (None, "")}


# What each frequency reads (and the panel shows), beside the time zone and run label.
FREQUENCY_FIELDS = {
    "daily": ("time",),
    "weekly": ("time", "weekdays"),
    "monthly": ("time", "day_of_month"),
    "cron": ("cron",),
}


def _time(value: Any) -> str:
    try:
        parsed = datetime.strptime(str(value or "").strip(), "%H:%M")
    except ValueError:
        raise forms.ValidationError("Enter a time like 09:00 or 17:30 (24-hour clock).") from None
    return parsed.strftime("%H:%M")


def _cron(value: Any) -> str:
    expression = " ".join(str(value or "").split())
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise forms.ValidationError(
            "Enter five cron fields: minute hour day-of-month month day-of-week, like 0 9 * * 1-5."
        )
    return expression


def _weekdays(value: Any) -> list[str]:
    names = [str(day).strip().lower()[:3] for day in (value or [])] if isinstance(value, list) else []
    valid = [day for day, _ in WEEKDAY_CHOICES]
    if not names or not set(names) <= set(valid):
        raise forms.ValidationError("Choose at least one weekday (mon, tue, wed, thu, fri, sat, sun).")
    return [day for day in valid if day in names]


def _day_of_month(value: Any) -> int:
    try:
        day = int(value)
    except (TypeError, ValueError):
        day = 0
    if not (1 <= day <= 31 or -28 <= day <= -1):
        raise forms.ValidationError("Enter a day from 1 to 31, or -1 (last day) to -28 counted from the end.")
    return day


CHECKS: dict[str, Callable[[Any], Any]] = {
    "time": _time,
    "cron": _cron,
    "weekdays": _weekdays,
    "day_of_month": _day_of_month,
}


class ScheduleForm(StepForm):
    settings_class = ScheduleSettings
    redraw_on = ("frequency",)

    frequency = ChoiceField(
        label="Repeat",
        initial="daily",
        choices=FREQUENCIES,
        required=False,
        error_messages={"invalid_choice": "Choose daily, weekly, monthly or cron."},
    )
    time = TextField(
        label="At (local time)", initial="09:00", required=False, help_text="24-hour clock, like 09:30."
    )
    timezone = TextField(
        label="Time zone", initial="UTC", required=False, help_text="IANA name, like Europe/Berlin."
    )
    # Checked in clean() only for the frequency that reads them, as typed (files give numbers and lists).
    weekdays = forms.Field(
        label="On", initial=["mon"], required=False, widget=CheckboxList(choices=WEEKDAY_CHOICES)
    )
    day_of_month = forms.Field(
        initial=1,
        label="Day of the month",
        required=False,
        widget=NumberInput,
        help_text="-1 is the last day.",
    )
    cron = TextField(
        label="Cron expression",
        required=False,
        help_text="Five fields, like 0 9 * * mon-fri, in the time zone above.",
    )
    run_label = run_label_field()
    cancel_key = cancel_key_field()

    def clean_timezone(self) -> str:
        zone = (self.cleaned_data["timezone"] or "UTC").strip()
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(
                f"“{zone}” is not a time zone name; use one like Europe/Berlin or UTC."
            ) from None
        return zone

    def frequency_chosen(self) -> str:
        frequency = self.raw("frequency") or "daily"
        return frequency if frequency in FREQUENCY_FIELDS else "daily"

    def panel_fields(self) -> list[str]:
        return [
            "frequency",
            *FREQUENCY_FIELDS[self.frequency_chosen()],
            "timezone",
            "run_label",
            "cancel_key",
        ]

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        frequency = data.get("frequency") or "daily"
        if "frequency" not in self.errors:
            data["frequency"] = frequency
        used = FREQUENCY_FIELDS.get(frequency, FREQUENCY_FIELDS["daily"])
        for name in used:
            try:
                data[name] = CHECKS[name](data.get(name))
            except forms.ValidationError as exc:
                self.add_error(name, exc)
        for name in set(CHECKS) - set(used):  # another frequency's settings are neither checked nor stored
            self.errors.pop(name, None)
            data[name] = None
        return data


class ScheduleTrigger(StepKind):
    kind = "schedule_trigger"
    label = "Schedule"
    description = "Starts a run on a schedule: daily, weekly, monthly at a local time, or a cron expression."
    is_trigger = True
    form_class = ScheduleForm

    def default_config(self) -> dict[str, Any]:
        return {"frequency": "daily", "time": "09:00", "timezone": "UTC"}

    def summary(self, config: dict[str, Any]) -> str:
        zone = config.get("timezone") or "UTC"
        if config.get("frequency") == "cron":
            return f"cron {config.get('cron') or '?'} ({zone})"
        return f"{dict(FREQUENCIES).get(str(config.get('frequency')), '').lower()} at {config.get('time') or '?'} {zone}"

    def output_fields(self, step: Step, input_fields: list[str]) -> list[str]:
        return ["scheduled_at", "local_time", "timezone"]

    def on_publish(self, step: Step, previous_step: Step | None) -> None:
        register_schedule(step, self.validate(step.config, step.tenant_id))

    def on_unpublish(self, step: Step) -> None:
        clear_schedule(step.version.workflow_id)
