"""When a schedule fires: rules in a local time zone, computed with zoneinfo (and croniter for cron).

A rule is the schedule trigger's cleaned config:

    {"frequency": "daily",   "time": "09:00", "timezone": "Europe/Berlin"}
    {"frequency": "weekly",  "time": "09:00", "timezone": "...", "weekdays": ["mon", "thu"]}
    {"frequency": "monthly", "time": "09:00", "timezone": "...", "day_of_month": 1}    # the 1st
    {"frequency": "monthly", "time": "09:00", "timezone": "...", "day_of_month": -1}   # the last day
    {"frequency": "cron",    "cron": "*/15 9-17 * * mon-fri", "timezone": "America/New_York"}

Daylight saving: a local time that does not exist on the day clocks go forward (02:30 in Berlin on
the last Sunday of March) fires at the same instant as one hour earlier would have in winter time, i.e.
03:30 local; a local time that happens twice when clocks go back fires once, at the first occurrence.
A monthly day that the month does not have (the 31st in April) is skipped, as cron does; use a
negative day ("-1" = last day) for "end of the month".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 400  # a rule with no firing in 400 days is invalid (validation refuses it)


def next_firing(rule: dict, after: datetime) -> datetime:
    """The first firing strictly after `after` (aware), as an aware UTC datetime."""
    zone = ZoneInfo(rule["timezone"])
    if rule["frequency"] == "cron":
        local = after.astimezone(zone)
        return croniter(rule["cron"], local).get_next(datetime).astimezone(UTC)
    start = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(SEARCH_DAYS):
        instant = _firing_on(rule, start + timedelta(days=offset), zone)
        if instant is not None and instant > after:
            return instant
    raise ValueError("This schedule never fires: check its days.")


def previous_firing(rule: dict, at: datetime) -> datetime | None:
    """The last firing at or before `at`, or None when there is none in the last 400 days."""
    zone = ZoneInfo(rule["timezone"])
    if rule["frequency"] == "cron":
        local = (at + timedelta(seconds=1)).astimezone(zone)
        return croniter(rule["cron"], local).get_prev(datetime).astimezone(UTC)
    start = at.astimezone(zone).date() + timedelta(days=1)
    for offset in range(SEARCH_DAYS):
        instant = _firing_on(rule, start - timedelta(days=offset), zone)
        if instant is not None and instant <= at:
            return instant
    return None


def _firing_on(rule: dict, day: date, zone: ZoneInfo) -> datetime | None:
    if not _matches(rule, day):
        return None
    hour, minute = (int(part) for part in rule["time"].split(":"))
    # fold=0: a skipped local time maps forward past the gap, a repeated one to its first occurrence.
    local = datetime.combine(day, time(hour, minute), tzinfo=zone)
    return local.astimezone(UTC)


def _matches(rule: dict, day: date) -> bool:
    frequency = rule["frequency"]
    if frequency == "daily":
        return True
    if frequency == "weekly":
        return WEEKDAYS[day.weekday()] in rule["weekdays"]
    if frequency == "monthly":
        wanted = int(rule["day_of_month"])
        if wanted > 0:
            return day.day == wanted
        last = (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        return day.day == last.day + 1 + wanted
    raise ValueError(f"Unknown frequency {frequency!r}")
