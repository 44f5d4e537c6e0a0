"""Throttle: at most N items per key per window; the overflow is dropped or deferred, never failed.

The window is fixed (aligned to the epoch, so every worker computes the same one) and lasts a duration
from the settings or, when `window_field` is set, the number of seconds in that item field. Each item
that passes holds one of the window's N slots (workflows/steps/throttle_slots.py: unique rows in
PostgreSQL, counted under the execution's id, so a retried or killed worker counts nothing twice).

Overflow policies: "drop" ends the item's path as `skipped` with `throttled` and the reason in its
output; "defer" holds the execution until the next window starts and tries again then; "fold" hands the
item to the digest step named in `fold_into` (runs/engine/digest.py through `ctx.join_digest`), whose
release sends one message with all of them. Test runs and
previews take no slot: they say what would happen ("would be throttled: 3 of 3 used, next slot 16:00").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from integrations.failures import Failure
from integrations.templating import render_header
from workflows.steps import throttle_slots
from workflows.steps.base import StepKind, StepPreview
from workflows.steps.context import StepContext
from workflows.steps.digest import DigestSettings
from workflows.steps.fields import ChoiceField, NumberField, TemplateField, TextField, unit_field
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.results import Deferred, Skipped
from workflows.steps.send_kind import rendered, template_context

if TYPE_CHECKING:
    from workflows.models import Step

UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
POLICIES = (
    ("drop", "drop it (marked throttled)"),
    ("defer", "defer it to the next free slot"),
    ("fold", "fold it into a digest step"),
)
MAX_WINDOW_SECONDS = 400 * 86400
MAX_LIMIT = 100_000
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class ThrottleSettings(StepSettings):
    limit: int = 1
    amount: float = 1
    unit: str = "hours"
    key: str = "{{ item.email }}"
    window_field: str = ""
    policy: str = "drop"
    fold_into: str = ""

    omitted_when_empty = ("window_field", "fold_into")

    def window_seconds(self, item: dict[str, Any]) -> float:
        if not self.window_field:
            return float(self.amount) * UNITS[self.unit]
        value = item.get(self.window_field)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise Failure(
                f"Throttle: the item has no “{self.window_field}” with the window's seconds.", permanent=True
            )
        try:
            seconds = float(value)
        except ValueError:
            raise Failure(
                f"Throttle: “{self.window_field}” is {value!r}, not a number of seconds.", permanent=True
            ) from None
        if not 1 <= seconds <= MAX_WINDOW_SECONDS:
            raise Failure(
                f"Throttle: “{self.window_field}” is {value!r}; a window lasts 1 second to 400 days.",
                permanent=True,
            )
        return seconds


def window_of(settings: ThrottleSettings, ctx: StepContext, item: dict[str, Any]) -> throttle_slots.Window:
    seconds = settings.window_seconds(item)
    elapsed = (ctx.now - EPOCH).total_seconds()
    start = EPOCH + timedelta(seconds=(elapsed // seconds) * seconds)
    key = rendered("Key", render_header, settings.key, template_context(ctx, item)).strip()
    end = start + timedelta(seconds=seconds)
    return throttle_slots.Window(ctx.run.tenant_id, ctx.step.key, key[:500], start, int(settings.limit), end)


def _next_slot(window: throttle_slots.Window, settings: ThrottleSettings, item: dict[str, Any]) -> datetime:
    return window.start + timedelta(seconds=settings.window_seconds(item))


class ThrottleForm(StepForm):
    settings_class = ThrottleSettings
    redraw_on = ("policy",)

    limit = NumberField(label="At most", help_text="How many items per key may pass in one window.")
    amount = NumberField(label="Per window of", help_text="The window's length in units.")
    unit = unit_field("Unit", "hours")
    window_field = TextField(
        label="Window from the item",
        required=False,
        help_text="Optional: an item field holding the window in seconds (overrides the duration).",
    )
    key = TemplateField(label="Per key", help_text="Whose items are counted together, e.g. {{ item.email }}.")
    policy = ChoiceField(
        label="Over the limit",
        initial="drop",
        choices=POLICIES,
        required=False,
        error_messages={"invalid_choice": "Choose “drop”, “defer” or “fold”."},
    )
    fold_into = TextField(
        label="Digest step",
        required=False,
        help_text="Fold: the name of a digest step in this workflow that collects the overflow.",
    )

    def panel_fields(self) -> list[str]:
        """The digest's name only matters, and shows, when the overflow is folded."""
        shown = ["limit", "amount", "unit", "window_field", "key", "policy"]
        return [*shown, "fold_into"] if self.data.get(self.add_prefix("policy")) == "fold" else shown

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        data["unit"] = data.get("unit") or "hours"
        data["policy"] = data.get("policy") or "drop"
        limit = data.get("limit")
        if "limit" not in self.errors:
            if limit is None or limit != int(limit) or not 1 <= limit <= MAX_LIMIT:
                self.add_error("limit", f"Give a whole number from 1 to {MAX_LIMIT:,}, like 3.")
            else:
                data["limit"] = int(limit)
        if data.get("amount") is None and "amount" not in self.errors:
            data["amount"] = 1  # one unit (an hour by default), like the settings' default
        amount = data["amount"] if "amount" not in self.errors else None
        if "amount" not in self.errors and not data.get("window_field"):
            if amount is None or amount <= 0:
                self.add_error("amount", "Give a duration above zero, like 1.")
            elif "unit" not in self.errors and amount * UNITS[data["unit"]] > MAX_WINDOW_SECONDS:
                self.add_error("amount", "A window lasts at most 400 days.")
        if data["policy"] == "fold" and not (data.get("fold_into") or "").strip():
            self.add_error("fold_into", "Name the digest step that collects what is over the limit.")
        elif data["policy"] != "fold":
            data["fold_into"] = ""
        if not (data.get("key") or "").strip() and "key" not in self.errors:
            self.add_error("key", "Say whose items count together, e.g. {{ item.email }}.")
        return data


class Throttle(StepKind):
    kind = "throttle"
    label = "Throttle"
    description = (
        "Lets at most N items per key through in each window; drops, defers or folds the rest into a digest."
    )
    form_class = ThrottleForm

    def default_config(self) -> dict[str, Any]:
        return {"limit": 3, "amount": 1, "unit": "hours", "key": "{{ item.email }}", "policy": "drop"}

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> Any:
        settings: ThrottleSettings = self.step_settings(ctx)
        window = window_of(settings, ctx, item)
        if ctx.run.is_test or ctx.execution is None:
            return Skipped(
                [item], {"skipped": "test run: no slot taken", "would": _would(window, settings, item)}
            )
        slot = throttle_slots.take(window, ctx.execution.pk, ctx.now)
        if slot is not None:
            return [item]
        next_slot = _next_slot(window, settings, item)
        reason = (
            f"{window.limit} of {window.limit} used for “{window.key}” in the window from "
            f"{window.start:%Y-%m-%d %H:%M}Z; next slot {next_slot:%Y-%m-%d %H:%M}Z"
        )
        summary = {"throttled": reason, "key": window.key, "next_slot": next_slot.isoformat()}
        if settings.policy == "defer":
            return Deferred(next_slot, {**summary, "deferred_until": next_slot.isoformat()})
        if settings.policy == "fold":
            return Skipped([], {**summary, **_fold(ctx, settings, item)})
        return Skipped([], summary)

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        settings: ThrottleSettings = self.settings(ctx.step.config)
        try:
            decision = _would(window_of(settings, ctx, item), settings, item)
            if settings.policy == "fold" and decision.startswith("would be throttled"):
                decision += "; " + _fold_preview(ctx, settings, item)
        except Failure as exc:
            return StepPreview(shows="throttle", error=exc.message)
        return StepPreview(shows="throttle", decision=decision)

    def summary(self, config: dict[str, Any]) -> str:
        limit = config.get("limit", "?")
        if config.get("window_field"):
            per = f"per {config['window_field']} seconds"
        else:
            amount = config.get("amount", 1)
            unit = config.get("unit", "hours")
            per = f"per {unit.removesuffix('s')}" if amount == 1 else f"per {amount:g} {unit}"
        if config.get("policy") == "fold":
            return f"at most {limit} {per}, then fold into {config.get('fold_into', '?')}"
        return f"at most {limit} {per}, then {config.get('policy', 'drop')}"


def _would(window: throttle_slots.Window, settings: ThrottleSettings, item: dict[str, Any]) -> str:
    used = throttle_slots.used(window)
    next_slot = _next_slot(window, settings, item)
    if used < window.limit:
        return (
            f"would pass: {used} of {window.limit} used for “{window.key}”, window resets {next_slot:%H:%M}Z"
        )
    then = {
        "drop": "dropped",
        "defer": f"deferred to {next_slot:%Y-%m-%d %H:%M}Z",
        "fold": f"folded into “{settings.fold_into}”",
    }[settings.policy]
    return (
        f"would be throttled: {used} of {window.limit} used for “{window.key}”, next slot "
        f"{next_slot:%H:%M}Z ({then})"
    )


def fold_target(ctx: StepContext, settings: ThrottleSettings) -> Step:
    """The digest step of this version named in `fold_into`; a permanent failure naming it when missing."""
    target: Step | None = ctx.step.version.steps.filter(kind="digest", name=settings.fold_into).first()
    if target is None:
        raise Failure(
            f"Throttle: there is no digest step named “{settings.fold_into}” in this workflow to fold into.",
            permanent=True,
        )
    return target


def _digest_key(ctx: StepContext, target: Step, item: dict[str, Any]) -> str:
    """The key the digest step itself would give the item (its own key template)."""
    template = DigestSettings.from_json(target.config or {}).key
    key = rendered("Digest key", render_header, template, template_context(ctx, item)).strip()
    if not key:
        raise Failure(f"Throttle: the digest key “{template}” is empty for this item.", permanent=True)
    return key


def _fold(ctx: StepContext, settings: ThrottleSettings, item: dict[str, Any]) -> dict[str, Any]:
    """Hand the item to the digest (through the ledger: a retried execution joins nothing twice)."""
    target = fold_target(ctx, settings)
    joined = ctx.join_digest(target, item, _digest_key(ctx, target, item))
    return {
        "folded_into": target.name,
        "joined_digest": joined.bucket_id,
        "items_so_far": joined.count,
        "releases_at": joined.release_at.isoformat(),
    }


def _fold_preview(ctx: StepContext, settings: ThrottleSettings, item: dict[str, Any]) -> str:
    target = fold_target(ctx, settings)
    key = _digest_key(ctx, target, item)
    count, release_at = ctx.digest_state(target, key)
    if release_at is None:
        return f"would open a digest in “{target.name}” for {key}"
    return f"joins the digest in “{target.name}” for {key}: {count} items so far, releases at {release_at:%H:%M}Z"
