"""Live → draft, on the same events: per send step, messages and distinct recipients before and after,
the recipients gained and lost (with an event each and why), the newly skipped ones, failures, the
messages a send window would hold, and one sample email's rendered text diff; the events whose path
through the workflow changed; and one row per event and send step for the CSV.

Send steps are matched by key, as the settings diff does (workflows/diff.py): a step copied into the
draft keeps its key. The result is plain JSON, stored in `PublishPreview.result`.
"""

from __future__ import annotations

import difflib
from collections import Counter
from datetime import datetime
from typing import Any

from runs.models import StepExecution
from runs.publish_preview.events import Event
from runs.publish_preview.outcomes import EventOutcome, StepOutcome
from tenants.models import Tenant
from workflows.models import Step
from workflows.steps import ConfigError, get_kind, send_window
from workflows.steps.send_kind import SendKind

EXAMPLES = 5
SAMPLE_LINES = 60


def is_send_step(step: Step) -> bool:
    try:
        return isinstance(get_kind(step.kind), SendKind)
    except ConfigError:
        return False


def compare(
    live: list[Step],
    draft: list[Step],
    events: list[Event],
    before: dict[int, EventOutcome],
    after: dict[int, EventOutcome],
    tenant: Tenant,
    now: datetime,
) -> dict[str, Any]:
    names = {str(s.key): s.display_name for s in live} | {str(s.key): s.display_name for s in draft}
    draft_keys = {str(s.key) for s in draft}
    live_keys = {str(s.key) for s in live}
    order = [s for s in draft if is_send_step(s)] + [
        s for s in live if is_send_step(s) and str(s.key) not in draft_keys
    ]
    configs = {"before": {str(s.key): s.config for s in live}, "after": {str(s.key): s.config for s in draft}}
    compared = [e for e in events if e.run_id in before and e.run_id in after]
    context = _Context(names, draft_keys, live_keys, tenant, now, configs)
    steps = [_send_step(context, step, compared, before, after) for step in order]
    return {
        "compared": len(compared),
        "steps": [entry for entry, _rows in steps],
        "paths": _path_changes(context, compared, before, after),
        "failures": _failures(context, compared, before, after),
        "rows": [row for _entry, rows in steps for row in rows],
    }


class _Context:
    def __init__(self, names, draft_keys, live_keys, tenant, now, configs):
        self.names = names
        self.draft_keys = draft_keys
        self.live_keys = live_keys
        self.tenant = tenant
        self.now = now
        self.configs = configs


def _send_step(ctx: _Context, step: Step, events: list[Event], before, after) -> tuple[dict, list[dict]]:
    key = str(step.key)
    side = {"before": _Side(), "after": _Side()}
    rows: list[dict] = []
    sample = None
    for event in events:
        old = before[event.run_id].steps.get(key, [])
        new = after[event.run_id].steps.get(key, [])
        side["before"].add(ctx, event, old, ctx.configs["before"].get(key))
        side["after"].add(ctx, event, new, ctx.configs["after"].get(key))
        rows.append(_row(ctx, event, step, key, old, new, before[event.run_id], after[event.run_id]))
        if sample is None or (not sample["differs"] and _texts_differ(old, new)):
            candidate = _sample(event, old, new)
            if candidate is not None:
                sample = candidate
    old_r, new_r = side["before"].recipients, side["after"].recipients
    lost = [
        {"recipient": r, "event": e.name, "why": _why_not(ctx, key, r, after[e.run_id])}
        for r, e in _examples(old_r, new_r)
    ]
    gained = [
        {"recipient": r, "event": e.name, "why": _why_not(ctx, key, r, before[e.run_id], side="live")}
        for r, e in _examples(new_r, old_r)
    ]
    newly_skipped = {r: v for r, v in side["after"].skipped.items() if r not in side["before"].skipped}
    entry = {
        "key": key,
        "name": ctx.names.get(key, key),
        "added": key not in ctx.live_keys,
        "removed": key not in ctx.draft_keys,
        "before": side["before"].summary(),
        "after": side["after"].summary(),
        "lost_count": len(set(old_r) - set(new_r)),
        "lost": lost,
        "gained_count": len(set(new_r) - set(old_r)),
        "gained": gained,
        "newly_skipped_count": len(newly_skipped),
        "newly_skipped": [
            {"recipient": r, "event": e.name, "why": reason}
            for r, (e, reason) in list(newly_skipped.items())[:EXAMPLES]
        ],
        "newly_skipped_reasons": dict(Counter(_reason_kind(reason) for _e, reason in newly_skipped.values())),
        "sample": sample,
    }
    return entry, rows


class _Side:
    """One version's messages at one send step, over all events."""

    def __init__(self):
        self.messages = 0
        self.recipients: dict[str, Event] = {}  # each distinct recipient, with the first event that sent
        self.skipped: dict[str, tuple[Event, str]] = {}
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.held = 0

    def add(self, ctx: _Context, event: Event, outcomes: list[StepOutcome], config) -> None:
        for outcome in outcomes:
            if outcome.sends:
                self.messages += 1
                self.recipients.setdefault(outcome.recipient, event)
                if config is not None and _held(ctx, config, outcome):
                    self.held += 1
            elif outcome.message == "skipped":
                self.skipped.setdefault(
                    outcome.recipient or f"(no address, {event.name})", (event, outcome.reason)
                )
            elif outcome.status == StepExecution.Status.FAILED or (
                outcome.status in StepExecution.OPEN and outcome.error
            ):
                self.failed += 1
                self.errors[outcome.error or "failed"] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "recipients": len(self.recipients),
            "skipped": len(self.skipped),
            "failed": self.failed,
            "errors": [{"error": e, "count": n} for e, n in self.errors.most_common(3)],
            "held_for_window": self.held,
        }


def _held(ctx: _Context, config: dict, outcome: StepOutcome) -> bool:
    """Whether the step's send window (or the tenant's) would hold this message if it were sent now."""
    identity = send_window.identity(0, 0, outcome.item_key)
    return send_window.hold_for(config or {}, outcome.item, ctx.tenant, ctx.now, identity) is not None


def _examples(have: dict[str, Event], other: dict[str, Event]) -> list[tuple[str, Event]]:
    return [(r, e) for r, e in have.items() if r not in other][:EXAMPLES]


def _why_not(ctx: _Context, key: str, recipient: str, outcome: EventOutcome, side: str = "draft") -> str:
    """Why this event's run on one version sent nothing to `recipient` at the step."""
    version = "the draft" if side == "draft" else "the live version"
    if key not in (ctx.draft_keys if side == "draft" else ctx.live_keys):
        return f"The step is not in {version}."
    here = outcome.steps.get(key, [])
    for o in here:
        if o.message == "skipped" and o.recipient == recipient:
            return o.reason
    sent = [o.recipient for o in here if o.sends]
    if len(sent) == 1:
        return f"Sent to {sent[0]} instead."
    if sent:
        return f"Not among the {len(sent)} messages the step made for this event in {version}."
    for o in here:
        if o.message == "skipped":
            return o.reason
        if o.error:
            return o.error
    for step_key, outcomes in outcome.steps.items():
        if any(o.status == StepExecution.Status.FILTERED for o in outcomes):
            return f"Stopped at “{ctx.names.get(step_key, step_key)}” in {version}."
        if any(o.status == StepExecution.Status.FAILED for o in outcomes):
            error = next(o.error for o in outcomes if o.status == StepExecution.Status.FAILED)
            return f"“{ctx.names.get(step_key, step_key)}” failed: {error}"
    return f"The event did not reach the step in {version}."


def _reason_kind(reason: str) -> str:
    lowered = reason.lower()
    for word in ("unsubscribed", "suppressed", "budget", "no address", "empty"):
        if word in lowered:
            return word
    return "other"


def _texts_differ(old: list[StepOutcome], new: list[StepOutcome]) -> bool:
    a = next((o for o in old if o.sends), None)
    b = next((o for o in new if o.sends), None)
    return a is not None and b is not None and _lines(a) != _lines(b)


def _lines(outcome: StepOutcome | None) -> list[str]:
    if outcome is None:
        return []
    content = outcome.content
    head = [f"{label}: {content.get(name, '')}" for name, label in (("to", "To"), ("subject", "Subject"))]
    body = str(content.get("text") or content.get("body") or "").splitlines()
    return [*head, "", *body]


def _sample(event: Event, old: list[StepOutcome], new: list[StepOutcome]) -> dict[str, Any] | None:
    """One email as each version renders it for this event, and the unified diff between them."""
    a = next((o for o in old if o.sends), None)
    b = next((o for o in new if o.sends), None)
    if a is None and b is None:
        return None
    diff = list(difflib.unified_diff(_lines(a), _lines(b), "live", "draft", lineterm="", n=2))
    return {
        "event": event.name,
        "differs": bool(diff) and a is not None and b is not None,
        "diff": diff[:SAMPLE_LINES],
    }


def _state(outcomes: list[StepOutcome]) -> str:
    if not outcomes:
        return "not reached"
    parts = []
    for o in outcomes:
        if o.sends:
            parts.append(f"sends to {o.recipient}")
        elif o.message == "skipped":
            parts.append(o.reason)
        elif o.error:
            parts.append(f"{o.status}: {o.error}")
        else:
            parts.append(o.status)
    return "; ".join(parts)


def _row(ctx, event: Event, step: Step, key, old, new, before: EventOutcome, after: EventOutcome) -> dict:
    old_to = {o.recipient for o in old if o.sends}
    new_to = {o.recipient for o in new if o.sends}
    change = "same"
    if old_to - new_to and not new_to - old_to:
        change = "lost"
    elif new_to - old_to and not old_to - new_to:
        change = "gained"
    elif old_to != new_to:
        change = "recipient changed"
    elif _texts_differ(old, new):
        change = "content changed"
    elif (
        before.reached() & ctx.live_keys & ctx.draft_keys != after.reached() & ctx.live_keys & ctx.draft_keys
    ):
        change = "path changed"
    return {
        "event_run": event.run_id,
        "event": event.name,
        "step": ctx.names.get(key, key),
        "before": _state(old),
        "after": _state(new),
        "change": change,
    }


def _path_changes(ctx: _Context, events: list[Event], before, after) -> dict[str, Any]:
    """Events that reach a different set of the steps both versions have (a step only one version has
    is reached or not by every event alike: counting it would flag them all)."""
    common = ctx.draft_keys & ctx.live_keys

    def path(outcome: EventOutcome) -> set[str]:
        return outcome.reached() & common

    changed = [e for e in events if path(before[e.run_id]) != path(after[e.run_id])]
    return {
        "count": len(changed),
        "examples": [
            {
                "event": e.name,
                "no_longer": sorted(
                    ctx.names.get(k, k) for k in path(before[e.run_id]) - path(after[e.run_id])
                ),
                "now": sorted(ctx.names.get(k, k) for k in path(after[e.run_id]) - path(before[e.run_id])),
            }
            for e in changed[:EXAMPLES]
        ],
    }


def _failures(ctx: _Context, events: list[Event], before, after) -> list[dict[str, Any]]:
    """Per step (any kind) that failed for some event on either version: how many on each, and the most
    common error of the draft (else of the live version); those that fail more on the draft first."""
    counts: dict[str, dict[str, Any]] = {}
    for side, outcomes in (("before", before), ("after", after)):
        for event in events:
            for key, items in outcomes[event.run_id].steps.items():
                for o in items:
                    if o.status != StepExecution.Status.FAILED:
                        continue
                    entry = counts.setdefault(
                        key, {"step": ctx.names.get(key, key), "before": 0, "after": 0, "errors": Counter()}
                    )
                    entry[side] += 1
                    if side == "after" or not entry["errors"]:
                        entry["errors"][o.error] += 1
    result = []
    for entry in sorted(counts.values(), key=lambda e: e["before"] - e["after"]):
        errors = entry.pop("errors")
        entry["error"] = errors.most_common(1)[0][0] if errors else ""
        result.append(entry)
    return result
