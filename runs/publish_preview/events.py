"""The events a preview replays: the payloads of the workflow's last N real runs, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runs.models import Run
from workflows.models import Workflow

DEFAULT_EVENTS = 200
MAX_EVENTS = 1000


@dataclass(frozen=True)
class Event:
    run_id: int  # the real run it comes from (the preview's runs are keyed by it)
    label: str  # whom it is about, as the activity log shows it
    payload: dict[str, Any]

    @property
    def name(self) -> str:
        return self.label or f"run {self.run_id}"


def clamp_events(value: Any) -> int:
    """A requested number of events as one the preview accepts (1 … MAX_EVENTS); ValueError for junk."""
    number = int(value)
    if number < 1 or number > MAX_EVENTS:
        raise ValueError(f"Preview between 1 and {MAX_EVENTS} events.")
    return number


def recent_events(workflow: Workflow, limit: int) -> list[Event]:
    """The last `limit` real (not test) runs' payloads; a payload that is not an object is skipped."""
    rows = (
        Run.objects.filter(workflow=workflow, is_test=False)
        .order_by("-created_at", "-id")
        .values_list("id", "label", "payload")[:limit]
    )
    return [Event(pk, label, payload) for pk, label, payload in rows if isinstance(payload, dict)]
