"""A run drawn as its workflow: the builder's tree, each step with its items counted by state.

The page draws the version's steps exactly as the builder does (workflows/views/common.py build_tree:
chains, parallel branches, a branch's labelled paths), and on each node the counts of its executions by
state: running, retrying, waiting until …, pending, succeeded, filtered, skipped, failed, cancelled,
and its messages that are uncertain or held. An execution whose message is uncertain counts as uncertain,
not failed: it needs a person's decision (mark as sent, or send again), not a fix. Clicking a node opens its items (one page, ordered by item
key from the UNIQUE(run, step, item_key) index) in the side panel, so a run with 100,000 items costs a
few queries, not one per item or per step.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Max, Min, Q, Sum

from runs.models import Run, StepExecution
from runs.views.presenting import (
    duration,
    execution_state,
    held_for_window,
    item_summary,
    short_time,
    state_class,
)
from workflows.models import Step
from workflows.views.common import build_tree as build_step_tree

ITEMS_PER_STEP = 50
# The order of a node's chips: what is moving first, then how items ended, then what needs a person.
COUNT_ORDER = (
    "running",
    "retrying",
    "waiting",
    "pending",
    "succeeded",
    "filtered",
    "skipped",
    "failed",
    "cancelled",
)
# Message states shown on the node of the step that sent them (they need a person's decision).
DELIVERY_STATES = ("uncertain", "held")
RETRYING = Q(attempts__gt=0) & ~Q(error="")


@dataclass
class TreeFilter:
    """Narrow the side panel: one item's path (`item`), a status (`retrying` too), a page (`after`)."""

    item: str = ""
    status: str = ""
    step_id: int | None = None
    after: str = ""


@dataclass
class Chip:
    state: str  # a CSS class and a status filter
    count: int
    text: str


@dataclass
class SidePanel:
    """The items of one step, for the side panel."""

    step: Step
    executions: list[StepExecution] = field(default_factory=list)
    more_after: str = ""
    chips: list[Chip] = field(default_factory=list)


def item_path(item_key: str) -> list[str]:
    """ "0/42/7" -> ["0", "0/42", "0/42/7"]: the item and its ancestors."""
    parts = item_key.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def item_filter(item: str) -> Q:
    """An item's ancestors, the item itself, and everything fanned out below it."""
    return Q(item_key__in=item_path(item)) | Q(item_key__startswith=item + "/")


def status_filter(status: str, now: datetime | None = None) -> Q:
    if status in DELIVERY_STATES:
        return Q(delivery__status=status)
    if status == "failed":
        return Q(status=status) & ~Q(delivery__status="uncertain")
    if status == "retrying":
        return Q(status=StepExecution.Status.PENDING) & RETRYING
    if status == "waiting" and now is not None:
        return Q(status=StepExecution.Status.PENDING, next_attempt_at__gt=now) & ~RETRYING
    return Q(status=status)


def step_states(run: Run, now: datetime) -> list[dict]:
    """Per (step, status): how many executions, how many retrying or waiting, and when they last moved.

    One GROUP BY over the run's executions feeds both the counts on the tree and the page's change
    fingerprint (runs/views/run_detail.py), so a 100,000-item run is scanned once per request.
    """
    waiting = Q(next_attempt_at__gt=now) & ~RETRYING
    return list(
        run.executions.values("step_id", "status")
        .annotate(
            n=Count("id"),
            retrying=Count("id", filter=RETRYING),
            waiting=Count("id", filter=waiting),
            next_due=Min("next_attempt_at", filter=waiting),
            attempts=Sum("attempts"),
            started=Max("started_at"),
            finished=Max("finished_at"),
        )
        .order_by("step_id", "status")
    )


def delivery_states(run: Run) -> dict[int, dict[str, int]]:
    """Per step: how many of its messages are uncertain or held (one query)."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = (
        run.deliveries.filter(status__in=DELIVERY_STATES)
        .values("step_execution__step_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["step_execution__step_id"]][row["status"]] = row["n"]
    return counts


def step_counts(states: list[dict]) -> tuple[dict[int, dict[str, int]], dict[int, datetime]]:
    """{step id: {state: count}} with pending split into retrying, waiting and pending; and when each
    step's waiting items are next due."""
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    due: dict[int, datetime] = {}
    for row in states:
        by_state = counts[row["step_id"]]
        by_state[row["status"]] = row["n"]
        if row["status"] == StepExecution.Status.PENDING:
            by_state["retrying"] = row["retrying"]
            by_state["waiting"] = row["waiting"]
            by_state["pending"] = row["n"] - row["retrying"] - row["waiting"]
            if row["next_due"]:
                due[row["step_id"]] = row["next_due"]
    return counts, due


def chips_for(
    counts: dict[str, int], deliveries: dict[str, int], due, now: datetime, skipped_word: str = "skipped"
) -> list[Chip]:
    chips = []
    if deliveries.get("uncertain"):
        counts = {**counts, "failed": max(0, counts.get("failed", 0) - deliveries["uncertain"])}
    for state in COUNT_ORDER:
        n = counts.get(state)
        if n:
            text = (
                f"{n} waiting until {short_time(due, now)}" if state == "waiting" and due else f"{n} {state}"
            )
            if state == "skipped":
                text = f"{n} {skipped_word}"
            chips.append(Chip(state, n, text))
    for state in DELIVERY_STATES:
        if deliveries.get(state):
            chips.append(Chip(state, deliveries[state], f"{deliveries[state]} {state}"))
    return chips


def run_tree(run: Run, states: list[dict], now: datetime) -> tuple[list[dict], dict[int, Step]]:
    """The version's steps as the builder's chains, each step carrying `chips` and `reached`, and each
    reached path of a branch its `count` of items."""
    steps = list(run.version.steps.order_by("position", "id"))
    counts, due = step_counts(states)
    deliveries = delivery_states(run)
    for step in steps:
        step.chips = chips_for(
            counts.get(step.pk, {}),
            deliveries.get(step.pk, {}),
            due.get(step.pk),
            now,
            _skipped_word(run, step),
        )
        step.reached = bool(counts.get(step.pk))
        step.has_failures = any(chip.state in ("failed", "uncertain") for chip in step.chips)
    chains = build_step_tree(steps)
    choosers = [step.pk for step in steps if step.paths and step.reached]
    if choosers:
        count_paths(chains, path_counts(run, choosers))
    return chains, {step.pk: step for step in steps}


def _skipped_word(run: Run, step: Step) -> str:
    """A real run's digest step "skips" an item by holding it in a bucket: the chip says so."""
    return "joined a digest" if step.kind == "digest" and not run.is_test else "skipped"


def path_counts(run: Run, step_ids: list[int]) -> dict[tuple[int, str], int]:
    """{(branch step id, path label): items that took it}, from the branches' outputs (one query)."""
    rows = (
        run.executions.filter(step_id__in=step_ids, status=StepExecution.Status.SUCCEEDED)
        .values("step_id", "output__path")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        (row["step_id"], row["output__path"]): row["n"]
        for row in rows
        if isinstance(row["output__path"], str)
    }


def count_paths(chains: list[dict], counts: dict[tuple[int, str], int]) -> None:
    """Put each reached branch path's count on its chain (`count`), all the way down."""
    for chain in chains:
        for branch in chain["branches"]:
            anchor = branch.get("anchor")
            if anchor is not None and anchor.reached:
                branch["count"] = counts.get((anchor.pk, branch["label"]), 0)
        count_paths(chain["branches"], counts)


def step_executions(run: Run, step: Step, wanted: TreeFilter, now: datetime) -> tuple[list, str]:
    """One page of a step's executions in item-key order, and the key to continue after."""
    qs = run.executions.filter(step=step).select_related("delivery")
    if wanted.item:
        qs = qs.filter(item_filter(wanted.item))
    if wanted.status:
        qs = qs.filter(status_filter(wanted.status, now))
    if wanted.after and wanted.step_id == step.pk:
        qs = qs.filter(item_key__gt=wanted.after)
    rows = list(qs.order_by("item_key")[: ITEMS_PER_STEP + 1])
    more = rows[ITEMS_PER_STEP - 1].item_key if len(rows) > ITEMS_PER_STEP else ""
    rows = rows[:ITEMS_PER_STEP]
    for execution in rows:
        execution.step = step  # already loaded: saves a query per row
        execution.state_text = execution_state(execution, now)
        execution.state_class = state_class(execution, now)
        execution.window_hold = held_for_window(execution, now)
        if _is_uncertain(execution):
            execution.state_text = execution.state_class = "uncertain"
        execution.took = duration(execution.started_at, execution.finished_at, now)
        # The trigger's item is what the run's label (its own template) names; others say it themselves.
        execution.who = (run.label if execution.item_key == "0" else "") or item_summary(execution.input)
    return rows, more


def _is_uncertain(execution: StepExecution) -> bool:
    try:
        return execution.delivery.status == "uncertain"
    except StepExecution.delivery.RelatedObjectDoesNotExist:
        return False


def side_panel(run: Run, steps: dict[int, Step], wanted: TreeFilter, now: datetime) -> SidePanel | None:
    """The selected step's items: the one asked for, else the first step with failures, else none."""
    if wanted.step_id is None:
        step = next((s for s in steps.values() if s.has_failures), None)
    else:
        step = steps.get(wanted.step_id)  # ?step=0 closes the panel
    if step is None:
        return None
    executions, more = step_executions(run, step, wanted, now)
    return SidePanel(step=step, executions=executions, more_after=more, chips=step.chips)
