"""How runs, executions and deliveries read on the page: words, not raw status codes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from integrations import clock, send_windows
from runs.engine.labels import default_label, is_plain
from runs.models import Run, StepExecution

SUMMARY_CHARS = 80


def max_attempts(step_config: dict[str, Any]) -> int:
    """The engine's retry limit for a step (its own setting, else the project default)."""
    return int(step_config.get("max_attempts") or settings.ENGINE_MAX_ATTEMPTS)


def short_time(when: datetime, now: datetime) -> str:
    """14:05:09 today, otherwise Nov 25 14:05:09, in the site's time zone (retries are seconds apart)."""
    local, today = timezone.localtime(when), timezone.localtime(now)
    return local.strftime("%H:%M:%S") if local.date() == today.date() else local.strftime("%b %d %H:%M:%S")


def from_now(when: datetime, now: datetime) -> str:
    """ "in 4 s", "in 3 min", "in 2 h", "due now"."""
    seconds = (when - now) / timedelta(seconds=1)
    if seconds < 1:
        return "due now"
    if seconds < 60:
        return f"in {seconds:.0f} s"
    if seconds < 3600:
        return f"in {seconds // 60:.0f} min"
    if seconds < 36 * 3600:
        return f"in {seconds // 3600:.0f} h"
    days = round(seconds / 86400)
    return f"in {days} day{'s' if days != 1 else ''}"


def waiting_until(due: datetime, now: datetime) -> str:
    """A run or an item that only waits: "Waiting until Dec 10 15:52 (in 3 days)", in the site's zone."""
    return f"Waiting until {timezone.localtime(due).strftime('%b %d %H:%M')} ({from_now(due, now)})"


def held_for_window(execution: StepExecution, now: datetime) -> str:
    """ "held for send window until Mon 09:00 Europe/Berlin (in 14 h)", with why that zone when the
    data named none or a wrong one; "" when the execution is not held for its window."""
    hold = (execution.output or {}).get("held_for_window") if isinstance(execution.output, dict) else None
    due = execution.next_attempt_at
    if (
        execution.status != StepExecution.Status.PENDING
        or not isinstance(hold, dict)
        or not due
        or due <= now
    ):
        return ""
    tz = send_windows.zone(hold.get("zone")) or send_windows.zone("UTC")
    # The opening, as the window reads ("Mon 09:00"); the message itself leaves in the minutes after.
    try:
        opens = datetime.fromisoformat(hold["opens"])
    except (KeyError, TypeError, ValueError):
        opens = due
    text = f"held for send window until {opens.astimezone(tz):%a %H:%M} {tz} ({from_now(due, now)})"
    note = hold.get("zone_note")
    return f"{text}; {note}" if isinstance(note, str) and note else text


def is_retrying(execution: StepExecution) -> bool:
    return (
        execution.status == StepExecution.Status.PENDING and execution.attempts > 0 and bool(execution.error)
    )


def execution_state(execution: StepExecution, now: datetime | None = None) -> str:
    """What an execution is doing, e.g. "retrying, attempt 3 of 10, next at 14:05:09 (in 4 s)"."""
    now = now or clock.now()
    due = execution.next_attempt_at
    if held_for_window(execution, now):
        return "held for send window"  # the item's own line says until when, in which zone
    if is_retrying(execution):
        text = f"retrying, attempt {execution.tries + 1} of {max_attempts(execution.step.config)}"
        return f"{text}, next at {short_time(due, now)} ({from_now(due, now)})" if due else text
    if execution.status == StepExecution.Status.PENDING and due and due > now:
        return f"waiting until {short_time(due, now)}"
    return execution.get_status_display().lower()


def state_class(execution: StepExecution, now: datetime | None = None) -> str:
    """A CSS class: retrying and waiting executions look different from running or pending ones."""
    if is_retrying(execution):
        return "retrying"
    due = execution.next_attempt_at
    if execution.status == StepExecution.Status.PENDING and due and due > (now or clock.now()):
        return "waiting"
    return execution.status


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    """ "1.2 s", "3 min 4 s", "2 h 5 min"; an open interval runs until now."""
    if start is None:
        return ""
    seconds = ((end or now or clock.now()) - start) / timedelta(seconds=1)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def run_duration(run: Run, now: datetime | None = None) -> str:
    return duration(run.created_at, run.finished_at, now)


def attempt_rows(execution: StepExecution) -> list[dict[str, Any]]:
    """The execution's attempt history (`attempt_log`), newest first, for the run page."""
    rows = []
    entries = (
        [e for e in execution.attempt_log if isinstance(e, dict)]
        if isinstance(execution.attempt_log, list)
        else []
    )
    finished = execution.attempts - (1 if execution.status == StepExecution.Status.RUNNING else 0)
    first = finished - len(entries) + 1
    for number, entry in enumerate(entries, start=first):
        took = entry.get("took")
        rows.append(
            {
                "number": max(number, 1),
                "at": _moment(entry.get("at")),
                "took": f"{took:.2f} s" if isinstance(took, int | float) else "",
                "outcome": entry.get("outcome", ""),
                "error": entry.get("error", ""),
            }
        )
    return rows[::-1]


def _moment(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def item_summary(item: Any) -> str:
    """Whom or what an item is about, in one short line, whatever its shape: its email or name (the run
    label's default), else a field whose name says it names someone (`full_name`, `work_email`), else
    its first plain field as "key: value"; a list or a bare value says what it is."""
    if isinstance(item, dict):
        text = default_label(item) or _first_plain_field(item)
    elif isinstance(item, list):
        text = f"a list of {len(item)}"
    elif item is None:
        text = ""
    else:
        text = str(item)
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _first_plain_field(item: dict[str, Any]) -> str:
    for key, value in item.items():
        if is_plain(value):
            return f"{key}: {value}"
    return ""
