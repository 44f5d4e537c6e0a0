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
Cron expressions are read on the local wall clock, with the same rule: on the day clocks go back the
repeated hour fires once (its first occurrence), and a time in the skipped hour fires right after it.
A monthly day that the month does not have (the 31st in April) is skipped, as cron does; use a
negative day ("-1" = last day) for "end of the month".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEARCH_DAYS = 400  # a rule with no firing in 400 days is invalid (validation refuses it)
# Wall-clock search starts this far before the instant, since a DST shift moves wall time by up to 1 h.
CRON_MARGIN = timedelta(hours=2)
CRON_MAX_STEPS = 10_000


def next_firing(rule: dict, after: datetime) -> datetime:
    """The first firing strictly after `after` (aware), as an aware UTC datetime."""
    zone = ZoneInfo(rule["timezone"])
    if rule["frequency"] == "cron":
        return _cron_next(rule["cron"], zone, after)
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
        return _cron_previous(rule["cron"], zone, at)
    start = at.astimezone(zone).date() + timedelta(days=1)
    for offset in range(SEARCH_DAYS):
        instant = _firing_on(rule, start - timedelta(days=offset), zone)
        if instant is not None and instant <= at:
            return instant
    return None


def _cron_next(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    # croniter walks naive local wall-clock times; each is then placed in the zone with fold=0, the same
    # rule as daily schedules. (Given aware datetimes, croniter fires twice in the repeated hour.)
    wall = after.astimezone(zone).replace(tzinfo=None) - CRON_MARGIN
    walker = croniter(expression, wall)
    for _ in range(CRON_MAX_STEPS):
        instant = _place(walker.get_next(datetime), zone)
        if instant > after:
            return instant
    raise ValueError("This cron expression does not fire in the next days.")


def _cron_previous(expression: str, zone: ZoneInfo, at: datetime) -> datetime | None:
    wall = at.astimezone(zone).replace(tzinfo=None) + CRON_MARGIN
    walker = croniter(expression, wall)
    for _ in range(CRON_MAX_STEPS):
        instant = _place(walker.get_prev(datetime), zone)
        if instant <= at:
            return instant
    return None


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


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
