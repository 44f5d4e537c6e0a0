"""Digest: collect items per key over a window and release one item that carries them all.

Each item joins the open bucket of its key (runs/engine/digest.py: a unique row joined with INSERT … ON
CONFLICT, released through the ledger, so one bucket sends one message). The window is fixed from the
first item, sliding (released after a quiet time, at most a maximum after the first item), or aligned
to a daily time in a time zone. "Release early at N items" makes the release due at the N-th item.

The released item is `{"digest": {"key", "count", "first", "last", "items", ...}}`: templates below read
`item.digest.count`, `item.digest.first.title` and loop over `item.digest.items`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integrations.failures import Failure
from integrations.templating import render_header
from workflows.steps.base import StepKind, StepPreview
from workflows.steps.context import StepContext
from workflows.steps.digest_reread import judge_entries
from workflows.steps.fields import ChoiceField, ExpressionField, FlagField, NumberField, TextField, unit_field
from workflows.steps.forms import StepForm, StepSettings
from workflows.steps.results import Filtered, Skipped
from workflows.steps.send_kind import rendered, template_context

UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
WINDOWS = (
    ("fixed", "fixed, from the first item"),
    ("sliding", "after a quiet time (with a maximum)"),
    ("daily", "every day at a time"),
)
WINDOW_FIELDS = {
    "fixed": ("amount", "unit"),
    "sliding": ("amount", "unit", "max_amount", "max_unit"),
    "daily": ("at", "timezone"),
}
COMMON_FIELDS = ("key", "window", "release_at_count")
OPTION_FIELDS = ("first_at_once", "reread", "still_matches")
MAX_WINDOW_DAYS = 400


@dataclass
class DigestSettings(StepSettings):
    key: str = "{{ item.email }}"
    window: str = "fixed"
    amount: float = 1
    unit: str = "hours"
    max_amount: float = 0
    max_unit: str = "hours"
    at: str = "09:00"
    timezone: str = "UTC"
    release_at_count: int = 0
    first_at_once: bool = False
    reread: bool = False
    still_matches: str = ""

    def to_json(self) -> dict[str, Any]:
        stored = super().to_json()
        kept = {name: stored[name] for name in (*COMMON_FIELDS, *WINDOW_FIELDS.get(self.window, ()))}
        if self.first_at_once:  # only when on, so configs written before the option read the same
            kept["first_at_once"] = True
        if self.reread:
            kept["reread"] = True
            kept["still_matches"] = self.still_matches
        return kept

    def release_at(self, opened_at: datetime, now: datetime) -> datetime:
        """When a bucket opened at `opened_at` releases, as seen at `now` (a sliding window moves)."""
        if self.window == "daily":
            return next_daily(opened_at, self.at, self.timezone)
        length = timedelta(seconds=float(self.amount) * UNITS.get(self.unit, 3600))
        if self.window == "sliding":
            latest = opened_at + timedelta(
                seconds=float(self.max_amount or 0) * UNITS.get(self.max_unit, 3600)
            )
            quiet = now + length
            return min(quiet, latest) if self.max_amount else quiet
        return opened_at + length


def next_daily(after: datetime, at: str, zone: str) -> datetime:
    """The first `at` (HH:MM, wall time in `zone`) strictly after `after`."""
    tz = ZoneInfo(zone)
    hours, minutes = (int(part) for part in at.split(":"))
    local = after.astimezone(tz)
    candidate = datetime.combine(local.date(), time(hours, minutes), tzinfo=tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), time(hours, minutes), tzinfo=tz)
    return candidate


class DigestForm(StepForm):
    settings_class = DigestSettings
    redraw_on = ("window",)

    key = TextField(
        label="Digest key",
        required=False,
        help_text="Items with the same key share a digest, e.g. {{ item.email }} or {{ item.post_id }}.",
    )
    window = ChoiceField(
        label="Release",
        initial="fixed",
        choices=WINDOWS,
        required=False,
        error_messages={"invalid_choice": "Choose fixed, sliding or daily."},
    )
    amount = NumberField(
        label="Window", help_text="How long after the first item (or, sliding, after the last)."
    )
    unit = unit_field("Unit", "hours")
    max_amount = NumberField(
        label="At most",
        initial=0,
        help_text="Sliding: release at most this long after the first item (0: no maximum).",
    )
    max_unit = unit_field("Unit of the maximum", "hours")
    at = TextField(label="Time of day", required=False, help_text="HH:MM, e.g. 09:00.")
    timezone = TextField(label="Time zone", required=False, help_text="e.g. Europe/Berlin.")
    release_at_count = NumberField(
        label="Release early at",
        initial=0,
        help_text="Release as soon as the digest holds this many items (0: never early).",
    )
    first_at_once = FlagField(
        label="Send the first at once, digest the rest",
        help_text="The first item of a key in a window goes on by itself right away; later ones join the digest.",
    )
    reread = FlagField(
        label="Read the rows again at release",
        help_text="Database trigger only: each item's row is fetched again by its primary key when the digest "
        "releases; items whose row was deleted are left out (the run page says how many and why).",
    )
    still_matches = ExpressionField(
        label="…and keep an item only if",
        required=False,
        help_text="Optional, over the row as it is now, e.g. item.status != 'done'.",
    )

    def window_chosen(self) -> str:
        window = self.data.get(self.add_prefix("window")) or "fixed"
        return window if window in WINDOW_FIELDS else "fixed"

    def panel_fields(self) -> list[str]:
        return ["key", "window", *WINDOW_FIELDS[self.window_chosen()], "release_at_count", *OPTION_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        window = data.get("window") or "fixed"
        if "window" not in self.errors:
            data["window"] = window
        for name in set(self.fields) - {*COMMON_FIELDS, *OPTION_FIELDS, *WINDOW_FIELDS.get(window, ())}:
            self.errors.pop(name, None)
        data["key"] = (data.get("key") or "").strip() or "{{ item.email }}"
        for unit in ("unit", "max_unit"):
            data[unit] = data.get(unit) or "hours"
        if (
            window in ("fixed", "sliding")
            and self._positive("amount")
            and "unit" not in self.errors
            and data["amount"] * UNITS[data["unit"]] > MAX_WINDOW_DAYS * 86400
        ):
            self.add_error("amount", f"A digest window can last at most {MAX_WINDOW_DAYS} days.")
        if window == "sliding":
            self._non_negative("max_amount")
        if window == "daily":
            self._clean_daily(data)
        data["still_matches"] = (data.get("still_matches") or "").strip()
        if data["still_matches"] and not data.get("reread"):
            self.add_error("still_matches", "A condition on the row needs “Read the rows again” ticked.")
        if self._non_negative("release_at_count"):
            count = data.get("release_at_count") or 0
            if count != int(count):
                self.add_error("release_at_count", "Give a whole number of items, like 50.")
            else:
                data["release_at_count"] = int(count)
        return data

    def _clean_daily(self, data: dict[str, Any]) -> None:
        at = (data.get("at") or "").strip()
        parts = at.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[0]) > 23 or int(parts[1]) > 59:
            self.add_error("at", "Give a time of day as HH:MM, like 09:00.")
        else:
            data["at"] = f"{int(parts[0]):02d}:{int(parts[1]):02d}"
        zone = (data.get("timezone") or "").strip() or "UTC"
        try:
            ZoneInfo(zone)
            data["timezone"] = zone
        except (ZoneInfoNotFoundError, ValueError):
            self.add_error("timezone", f"“{zone}” is not a time zone; use a name like Europe/Berlin.")

    def _positive(self, name: str) -> bool:
        if name in self.errors or self.cleaned_data.get(name) is None or self.cleaned_data[name] <= 0:
            self.errors.pop(name, None)
            self.add_error(name, "Give a number above zero, like 1.")
            return False
        return True

    def _non_negative(self, name: str) -> bool:
        value = self.cleaned_data.get(name)
        if name in self.errors or (value is not None and value < 0):
            self.errors.pop(name, None)
            self.add_error(name, "Give a number that is zero or more.")
            return False
        if value is None:
            self.cleaned_data[name] = 0
        return True


class Digest(StepKind):
    kind = "digest"
    label = "Digest"
    description = "Collects items per key over a window and passes on one item that carries them all."
    form_class = DigestForm

    def default_config(self) -> dict[str, Any]:
        return {
            "key": "{{ item.email }}",
            "window": "fixed",
            "amount": 1,
            "unit": "hours",
            "release_at_count": 0,
        }

    def digest_key(self, ctx: StepContext, item: dict[str, Any]) -> str:
        settings = self.step_settings(ctx)
        key = rendered("Digest key", render_header, settings.key, template_context(ctx, item)).strip()
        if not key:
            raise Failure(
                f"Digest: the key “{settings.key}” is empty for this item (fields: {', '.join(item) or 'none'}).",
                permanent=True,
            )
        return key

    def execute(self, ctx: StepContext, item: dict[str, Any]) -> list[dict[str, Any]] | Skipped | Filtered:
        bucket = ctx.digest_release_bucket()
        if bucket is not None:
            return self.release(ctx, bucket)
        if ctx.run.is_test:
            # A test run joins no real digest (and waits no window): it says what would happen and
            # passes the item on as a digest of one, so the tester sees the message below.
            key = self.digest_key(ctx, item)
            would = self.preview(ctx, item).decision  # the preview reads the open bucket, writes nothing
            return Skipped(
                [at_once(key, None, item, ctx.now)],
                {"skipped": "test run: joins no digest", "would": f"in a real run, the item {would}"},
            )
        settings = self.step_settings(ctx)
        joined = ctx.resources.cache.pop(("digest-joined", getattr(ctx.execution, "pk", None)), None)
        if joined is None:  # not joined with its batch (its key failed there, or a call outside a batch)
            joined = ctx.join_digest(
                ctx.step, item, self.digest_key(ctx, item), first_passes=settings.first_at_once
            )
        if joined.passed:
            # The first of its window goes on now, shaped like a digest of one, so one template serves both.
            return [at_once(joined.key, joined.bucket_id, item, ctx.now)]
        return Skipped(
            [],
            {
                "joined_digest": joined.bucket_id,
                "key": joined.key,
                "items_so_far": joined.count,
                "releases_at": joined.release_at.isoformat(),
                "opened": joined.opened,
            },
        )

    def prepare_batch(self, ctx: StepContext, executions: list[Any]) -> None:
        """Join the batch's items in one go (a handful of statements for the batch, not per item);
        `execute` then reads each item's join. An item whose key cannot be rendered is left to `execute`,
        which fails it with the message; a release execution or a test run joins nothing here."""
        if ctx.run.is_test:
            return
        requests = {}
        for execution in executions:
            if ctx.digest_release_bucket_of(execution.item_key) is not None:
                continue
            try:
                key = self.digest_key(ctx, execution.input)
            except Failure:
                continue
            requests[execution.pk] = ctx.digest_join_request(execution, key)
        if not requests:
            return
        settings = self.step_settings(ctx)
        joined = ctx.join_digests(ctx.step, list(requests.values()), first_passes=settings.first_at_once)
        for pk, request in requests.items():
            ctx.resources.cache[("digest-joined", pk)] = joined[request.source]

    def release(self, ctx: StepContext, bucket: int) -> list[dict[str, Any]] | Filtered:
        """The release execution: the bucket's items (re-read first when the step says so) as one item."""
        settings = self.step_settings(ctx)
        judge = None
        if settings.reread:
            condition = settings.still_matches

            def judge(entries: list[Any]) -> list[tuple[dict[str, Any] | None, str]]:
                return judge_entries(ctx, condition, entries)

        released = ctx.release_digest(bucket, judge)
        if released is None:
            return Filtered({"filtered": "digest gone (its run was deleted)"})
        digest = released["digest"]
        if not digest["count"]:
            # An empty digest sends nothing, and says why its path ends here.
            return Filtered({"filtered": empty_words(digest), "digest_bucket": bucket, **_dropped(digest)})
        return [released]

    def preview(self, ctx: StepContext, item: dict[str, Any]) -> StepPreview:
        settings = self.step_settings(ctx)
        key = self.digest_key(ctx, item)
        count, release_at = ctx.digest_state(ctx.step, key)
        window_open = release_at is not None
        if release_at is None:
            release_at = settings.release_at(ctx.now, ctx.now)
        releases = release_at.strftime("%Y-%m-%d %H:%M %Z").strip()
        if settings.first_at_once and not window_open:
            return StepPreview(
                shows="digest",
                decision=f"goes on at once, the first for {key} in this window; later items join the digest,"
                f" released at {releases}",
                due=ctx.now,
                content=at_once(key, None, item, ctx.now),
            )
        return StepPreview(
            shows="digest",
            decision=f"joins the digest for {key}: {count + 1} item{'s' if count else ''} so far, releases at {releases}",
            due=release_at,
            content=item,
        )

    def summary(self, config: dict[str, Any]) -> str:
        key = config.get("key") or "{{ item.email }}"
        window = config.get("window", "fixed")
        if window == "daily":
            return f"per {key}, daily at {config.get('at')} {config.get('timezone', 'UTC')}"
        amount = config.get("amount")
        text = f"per {key}, {_span(amount, config.get('unit', 'hours'))}"
        if window == "sliding":
            text += " of quiet"
            if config.get("max_amount"):
                text += f", at most {_span(config['max_amount'], config.get('max_unit', 'hours'))}"
        if config.get("release_at_count"):
            text += f", or {config['release_at_count']} items"
        if config.get("first_at_once"):
            text += ", first at once"
        if config.get("reread"):
            text += ", rows read again at release"
        return text


def at_once(key: str, bucket_id: int | None, item: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The item that opened its window with "send the first at once", as a digest of one."""
    return {
        "digest": {
            "key": key,
            "bucket": bucket_id,
            "count": 1,
            "first": item,
            "last": item,
            "items": [item],
            "opened_at": now.isoformat(),
            "released_at": now.isoformat(),
            "at_once": True,
        }
    }


def dropped_words(dropped: dict[str, Any]) -> str:
    """ "3 dropped at release: 2 row deleted, 1 row no longer matches: item.done" ("" when none)."""
    reasons = dropped.get("reasons") or {}
    if not dropped.get("count"):
        return ""
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda pair: -pair[1]))
    return f"{dropped['count']} dropped at release: {parts}"


def empty_words(digest: dict[str, Any]) -> str:
    words = dropped_words(digest.get("dropped") or {})
    return f"empty digest, nothing sent ({words})" if words else "empty digest, nothing sent"


def _dropped(digest: dict[str, Any]) -> dict[str, Any]:
    return {"dropped": digest["dropped"]} if "dropped" in digest else {}


def _span(amount: Any, unit: str) -> str:
    """ "1 hour", "2 hours", "1.5 hours": the unit in the singular for exactly one."""
    text = _plain(amount)
    return f"{text} {unit[:-1] if text == '1' and unit.endswith('s') else unit}"


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
