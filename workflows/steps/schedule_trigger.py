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

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from workflows.schedules import clear_schedule, register_schedule
from workflows.steps.base import ConfigError, Field, StepKind
from workflows.steps.common import RUN_LABEL_FIELD, clean_run_label

FREQUENCIES = (("daily", "Every day"), ("weekly", "Every week"), ("monthly", "Every month"), ("cron", "Cron"))
WEEKDAY_CHOICES = tuple((day, day.capitalize()) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


class ScheduleTrigger(StepKind):
    kind = "schedule_trigger"
    label = "Schedule"
    description = "Starts a run on a schedule: daily, weekly, monthly at a local time, or a cron expression."
    is_trigger = True
    fields = (
        Field("frequency", "Repeat", widget="select", choices=FREQUENCIES, required=True, default="daily"),
        Field("time", "At (local time)", default="09:00", help="24-hour clock, like 09:30."),
        Field("timezone", "Time zone", default="UTC", required=True, help="IANA name, like Europe/Berlin."),
        Field("weekdays", "On", widget="multiselect", choices=WEEKDAY_CHOICES, default=["mon"]),
        Field("day_of_month", "Day of the month", widget="number", default=1, help="-1 is the last day."),
        Field("cron", "Cron expression", help="Five fields, like 0 9 * * mon-fri, in the time zone above."),
        RUN_LABEL_FIELD,
    )

    def default_config(self) -> dict[str, Any]:
        return {"frequency": "daily", "time": "09:00", "timezone": "UTC"}

    def summary(self, config: dict[str, Any]) -> str:
        zone = config.get("timezone") or "UTC"
        if config.get("frequency") == "cron":
            return f"cron {config.get('cron') or '?'} ({zone})"
        return f"{dict(FREQUENCIES).get(str(config.get('frequency')), '').lower()} at {config.get('time') or '?'} {zone}"

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, str] = {}
        frequency = config.get("frequency") or "daily"
        if frequency not in dict(FREQUENCIES):
            errors["frequency"] = "Choose daily, weekly, monthly or cron."
        zone = str(config.get("timezone") or "UTC").strip()
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"“{zone}” is not a time zone name; use one like Europe/Berlin or UTC."
        cleaned: dict[str, Any] = {"frequency": frequency, "timezone": zone}
        if frequency == "cron":
            cleaned["cron"] = _cron(config.get("cron"), errors)
        else:
            cleaned["time"] = _time(config.get("time"), errors)
        if frequency == "weekly":
            cleaned["weekdays"] = _weekdays(config.get("weekdays"), errors)
        if frequency == "monthly":
            cleaned["day_of_month"] = _day_of_month(config.get("day_of_month"), errors)
        clean_run_label(config, errors, cleaned)
        if errors:
            raise ConfigError(errors)
        return cleaned

    def output_fields(self, step, input_fields: list[str]) -> list[str]:
        return ["scheduled_at", "local_time", "timezone"]

    def on_publish(self, step, previous_step) -> None:
        register_schedule(step, self.validate(step.config))

    def on_unpublish(self, step) -> None:
        clear_schedule(step.version.workflow_id)


def _time(value: Any, errors: dict[str, str]) -> str:
    try:
        parsed = datetime.strptime(str(value or "").strip(), "%H:%M")
    except ValueError:
        errors["time"] = "Enter a time like 09:00 or 17:30 (24-hour clock)."
        return ""
    return parsed.strftime("%H:%M")


def _cron(value: Any, errors: dict[str, str]) -> str:
    expression = " ".join(str(value or "").split())
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        errors["cron"] = (
            "Enter five cron fields: minute hour day-of-month month day-of-week, like 0 9 * * 1-5."
        )
    return expression


def _weekdays(value: Any, errors: dict[str, str]) -> list[str]:
    names = [str(day).strip().lower()[:3] for day in (value or [])] if isinstance(value, list) else []
    valid = [day for day, _ in WEEKDAY_CHOICES]
    if not names or not set(names) <= set(valid):
        errors["weekdays"] = "Choose at least one weekday (mon, tue, wed, thu, fri, sat, sun)."
    return [day for day in valid if day in names]


def _day_of_month(value: Any, errors: dict[str, str]) -> int:
    try:
        day = int(value)
    except (TypeError, ValueError):
        day = 0
    if not (1 <= day <= 31 or -28 <= day <= -1):
        errors["day_of_month"] = "Enter a day from 1 to 31, or -1 (last day) to -28 counted from the end."
    return day
