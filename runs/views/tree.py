"""A run drawn as its step tree: every branch, and under each step the executions of its items.

Each step shows its counts by status and one page of executions (ordered by item key, read from the
UNIQUE(run, step, item_key) index), so a run with 100,000 items costs a few queries per step, not per item.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Max, Q, Sum

from runs.models import Run, StepExecution
from runs.views.presenting import duration, execution_state, state_class
from workflows.models import Step
from workflows.steps import ConfigError, get_kind

ITEMS_PER_STEP = 50
COUNT_ORDER = ("running", "retrying", "pending", "succeeded", "failed", "cancelled")


@dataclass
class TreeFilter:
    """Narrow the tree: one item's path (`item`), a status (`retrying` too), the page of one step."""

    item: str = ""
    status: str = ""
    step_id: int | None = None
    after: str = ""


@dataclass
class StepNode:
    step: Step
    counts: dict[str, int] = field(default_factory=dict)
    executions: list[StepExecution] = field(default_factory=list)
    more_after: str = ""
    children: list[StepNode] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def title(self) -> str:
        """The step's name, else its kind's label ("Send email"), else the raw kind."""
        if self.step.name:
            return self.step.name
        try:
            return get_kind(self.step.kind).label
        except ConfigError:
            return self.step.kind

    @property
    def count_items(self) -> list[tuple[str, int]]:
        return ordered_counts(self.counts)


def ordered_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    return [(status, counts[status]) for status in COUNT_ORDER if counts.get(status)]


def item_path(item_key: str) -> list[str]:
    """ "0/42/7" -> ["0", "0/42", "0/42/7"]: the item and its ancestors."""
    parts = item_key.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def item_filter(item: str) -> Q:
    """An item's ancestors, the item itself, and everything fanned out below it."""
    return Q(item_key__in=item_path(item)) | Q(item_key__startswith=item + "/")


def status_filter(status: str) -> Q:
    if status == "retrying":
        return Q(status=StepExecution.Status.PENDING, attempts__gt=0) & ~Q(error="")
    return Q(status=status)


def step_states(run: Run) -> list[dict]:
    """Per (step, status): how many executions, how many retrying, and when they last moved.

    One GROUP BY over the run's executions feeds both the counts on the tree and the page's change
    fingerprint (runs/views/run_detail.py), so a 100,000-item run is scanned once per request.
    """
    return list(
        run.executions.values("step_id", "status")
        .annotate(
            n=Count("id"),
            retrying=Count("id", filter=Q(attempts__gt=0) & ~Q(error="")),
            attempts=Sum("attempts"),
            started=Max("started_at"),
            finished=Max("finished_at"),
            due=Max("next_attempt_at"),
        )
        .order_by("step_id", "status")
    )


def step_counts(states: list[dict]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for row in states:
        by_status = counts[row["step_id"]]
        by_status[row["status"]] = row["n"]
        if row["status"] == StepExecution.Status.PENDING and row["retrying"]:
            by_status["retrying"] = row["retrying"]
            by_status["pending"] = row["n"] - row["retrying"]
            if not by_status["pending"]:
                del by_status["pending"]
    return counts


def step_executions(run: Run, step: Step, wanted: TreeFilter, now: datetime) -> tuple[list, str]:
    """One page of a step's executions in item-key order, and the key to continue after."""
    qs = run.executions.filter(step=step).select_related("delivery")
    if wanted.item:
        qs = qs.filter(item_filter(wanted.item))
    if wanted.status:
        qs = qs.filter(status_filter(wanted.status))
    if wanted.after and wanted.step_id == step.pk:
        qs = qs.filter(item_key__gt=wanted.after)
    rows = list(qs.order_by("item_key")[: ITEMS_PER_STEP + 1])
    more = rows[ITEMS_PER_STEP - 1].item_key if len(rows) > ITEMS_PER_STEP else ""
    rows = rows[:ITEMS_PER_STEP]
    for execution in rows:
        execution.step = step  # already loaded: saves a query per row
        execution.state_text = execution_state(execution, now)
        execution.state_class = state_class(execution)
        execution.took = duration(execution.started_at, execution.finished_at, now)
    return rows, more


def build_tree(
    run: Run, wanted: TreeFilter, now: datetime, states: list[dict] | None = None
) -> list[StepNode]:
    """The version's steps as nested nodes (roots first), each with its counts and executions."""
    steps = list(run.version.steps.order_by("position", "id"))
    counts = step_counts(step_states(run) if states is None else states)
    nodes = {step.pk: StepNode(step=step, counts=counts.get(step.pk, {})) for step in steps}
    roots: list[StepNode] = []
    for step in steps:
        node = nodes[step.pk]
        node.executions, node.more_after = step_executions(run, step, wanted, now)
        parent = nodes.get(step.parent_id)
        (parent.children if parent else roots).append(node)
    return roots
