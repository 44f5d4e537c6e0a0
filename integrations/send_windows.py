"""Weekly send windows in a time zone: when a message may go out, and when the next window opens.

A window spec is text, rules separated by `;`:

    mon-fri 09:00-18:00; sat 10:00-14:00      sending allowed in these spans
    daily 08:00-21:00; not fri 12:00-13:00    `not` marks a span when nothing is sent
    not daily 22:00-06:00                     quiet hours (alone: every other time is allowed)

Days are `mon`..`sun`, ranges (`mon-fri`, `fri-mon`), lists (`sat,sun`) or `daily`. A span whose end is not
after its start crosses midnight and belongs to the day it starts on (`fri 22:00-06:00` runs Friday 22:00
to Saturday 06:00). `24:00` is the end of the day. Spans are wall-clock times in the zone: over a
daylight-saving change "09:00" is 09:00 on that day's clock (08:00 or 07:00 UTC in Berlin), and a time the
clock skips (02:30 on the spring Sunday) is read as the moment after the gap.

An empty spec means any time. Pure functions of (spec, zone, instant): no database, no clock of its own.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RULE = re.compile(
    r"^(?P<not>not\s+)?(?:(?P<days>[a-z,\-\s]+?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$"
)


class WindowError(ValueError):
    """A spec a person must fix; the message says what is wrong."""


@dataclass(frozen=True)
class Span:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int  # minutes after midnight; <= start: crosses midnight
    quiet: bool


@dataclass(frozen=True)
class Window:
    spans: tuple[Span, ...]

    @property
    def always(self) -> bool:
        return not self.spans


def parse(spec: str) -> Window:
    """The window of a spec; WindowError names the rule it cannot read."""
    if not isinstance(spec, str):
        raise WindowError("A send window must be text, e.g. “mon-fri 09:00-18:00”.")
    spans = []
    for raw in spec.split(";"):
        rule = " ".join(raw.strip().lower().split())
        if rule:
            spans.append(_span(rule))
    return Window(tuple(spans))


def _span(rule: str) -> Span:
    match = RULE.match(rule)
    if not match:
        raise WindowError(
            f"“{rule}”: write days and a span, e.g. “mon-fri 09:00-18:00” or “not daily 22:00-06:00”."
        )
    start, end = _minutes(match["start"], rule), _minutes(match["end"], rule)
    if start >= 24 * 60:
        raise WindowError(f"“{rule}”: a span starts before 24:00.")
    if start == end:
        raise WindowError(f"“{rule}”: the span is empty (it starts and ends at {match['start']}).")
    return Span(_days(match["days"] or "daily", rule), start, end, quiet=bool(match["not"]))


def _minutes(text: str, rule: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise WindowError(f"“{rule}”: {text} is not a time of day (00:00 to 24:00).")
    return hours * 60 + minutes


def _days(text: str, rule: str) -> frozenset[int]:
    text = text.replace(" ", "")
    if text in ("daily", "everyday", "mon-sun"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in text.split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(end[:3] not in DAYS or end not in (end[:3], _long(end[:3])) for end in ends):
            raise WindowError(
                f"“{rule}”: “{part}” is not a day; use mon, tue, wed, thu, fri, sat, sun or daily."
            )
        first, last = DAYS.index(ends[0][:3]), DAYS.index(ends[-1][:3])
        day = first
        days.add(day)
        while day != last:
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _long(short: str) -> str:
    return {
        "mon": "monday",
        "tue": "tuesday",
        "wed": "wednesday",
        "thu": "thursday",
        "fri": "friday",
        "sat": "saturday",
        "sun": "sunday",
    }[short]


def zone(name: object) -> ZoneInfo | None:
    """The zone called `name`, or None when there is none by that name (a typo, an offset, nothing)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """The instant of a wall-clock time on `day` (a skipped time: the moment after the gap)."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
    # fold=0 reads a skipped time with the offset before the change (02:30 CET is 03:30 CEST: the moment
    # after the gap), and a repeated one as its first occurrence (PEP 495).
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def _intervals(window: Window, tz: ZoneInfo, around: datetime, quiet: bool, days: int = 9):
    """(start, end) instants of the spans of one sort, from the day before `around` on."""
    first = around.astimezone(tz).date() - timedelta(days=1)
    for offset in range(days):
        day = first + timedelta(days=offset)
        for span in window.spans:
            if span.quiet != quiet or day.weekday() not in span.days:
                continue
            end_day = day if span.end > span.start else day + timedelta(days=1)
            yield _local(day, span.start, tz), _local(end_day, span.end, tz)


def is_open(window: Window, tz: ZoneInfo, at: datetime) -> bool:
    if window.always:
        return True
    allowed = [i for i in _intervals(window, tz, at, quiet=False, days=3)]
    has_allow = any(not span.quiet for span in window.spans)
    inside = not has_allow or any(start <= at < end for start, end in allowed)
    quiet = any(start <= at < end for start, end in _intervals(window, tz, at, quiet=True, days=3))
    return inside and not quiet


@dataclass(frozen=True)
class Opening:
    at: datetime  # when the window opens (UTC)
    closes: datetime | None  # when it closes again (None: not within a week)


def next_opening(window: Window, tz: ZoneInfo, now: datetime) -> Opening | None:
    """None while the window is open at `now`; else when it next opens (within the coming week), or
    an Opening at `now` if it never does (a spec that quiets every hour sends anyway rather than never)."""
    if is_open(window, tz, now):
        return None
    boundaries = sorted(
        {end for _s, end in _intervals(window, tz, now, quiet=True)}
        | {start for start, _e in _intervals(window, tz, now, quiet=False)}
    )
    for candidate in boundaries:
        if candidate > now and is_open(window, tz, candidate):
            return Opening(candidate, _next_close(window, tz, candidate))
    return Opening(now, None)


def _next_close(window: Window, tz: ZoneInfo, opened: datetime) -> datetime | None:
    candidates = sorted(
        {start for start, _e in _intervals(window, tz, opened, quiet=True)}
        | {end for _s, end in _intervals(window, tz, opened, quiet=False)}
    )
    for candidate in candidates:
        if candidate > opened and not is_open(window, tz, candidate):
            return candidate
    return None


def spread(opening: Opening, identity: str, seconds: float) -> datetime:
    """The opening plus a fixed share of the first `seconds` (at most half the window), the same for
    the same message every time, so a thousand messages held for 09:00 do not all go at 09:00:00."""
    room = seconds
    if opening.closes is not None:
        room = min(room, (opening.closes - opening.at).total_seconds() / 2)
    if room <= 0:
        return opening.at
    digest = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big")
    return opening.at + timedelta(seconds=int(digest % int(max(room, 1))))
