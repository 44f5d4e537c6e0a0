"""What each rehearsal run did, read back in two statements: per event, per step (by key), the step's
outcome and, for a send step, its message (captured, or skipped with the reason)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from consent.models import normalize_address
from runs.models import Delivery, StepExecution


@dataclass
class StepOutcome:
    status: str  # the execution's status (succeeded, filtered, skipped, failed, pending, ...)
    error: str = ""
    message: str = ""  # "captured" (would be sent), "skipped" (not sent, `reason` says why), or ""
    recipient: str = ""
    reason: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    item: dict[str, Any] = field(default_factory=dict)
    item_key: str = ""

    @property
    def sends(self) -> bool:
        return self.message == Delivery.Status.CAPTURED


@dataclass
class EventOutcome:
    """One event's rehearsal: each step key it reached, with every item's outcome there (a fan-out gives
    a step several)."""

    steps: dict[str, list[StepOutcome]] = field(default_factory=dict)

    def reached(self) -> set[str]:
        """The steps that did their work for at least one item (not filtered out, not failed)."""
        done = {StepExecution.Status.SUCCEEDED, StepExecution.Status.SKIPPED}
        return {key for key, outcomes in self.steps.items() if any(o.status in done for o in outcomes)}


def read_outcomes(runs: dict[int, int]) -> dict[int, EventOutcome]:
    """{source run id: EventOutcome} for the rehearsal runs {source run id: run id}."""
    by_run = {run_id: source for source, run_id in runs.items()}
    result: dict[int, EventOutcome] = {source: EventOutcome() for source in runs}
    deliveries = {
        d["step_execution_id"]: d
        for d in Delivery.objects.filter(run_id__in=by_run).values(
            "step_execution_id", "status", "recipient", "content", "error"
        )
    }
    rows = (
        StepExecution.objects.filter(run_id__in=by_run)
        .order_by("id")
        .values("id", "run_id", "step__key", "status", "error", "input", "item_key")
    )
    for row in rows.iterator(chunk_size=2000):
        delivery = deliveries.get(row["id"])
        outcome = StepOutcome(status=row["status"], error=row["error"], item=row["input"] or {})
        outcome.item_key = row["item_key"]
        if delivery is not None and delivery["status"] in (Delivery.Status.CAPTURED, Delivery.Status.SKIPPED):
            outcome.message = delivery["status"]
            outcome.recipient = normalize_address(delivery["recipient"])
            outcome.content = delivery["content"] or {}
            outcome.reason = delivery["error"] if delivery["status"] == Delivery.Status.SKIPPED else ""
        result[by_run[row["run_id"]]].steps.setdefault(str(row["step__key"]), []).append(outcome)
    return result
