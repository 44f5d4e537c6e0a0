"""The digests a run's items joined, as the run page says them: "joins the digest for post 42: 3 items
so far, releases at 14:05", or, once released, when and with how many items.

A run's items name their bucket in the joining execution's output (`joined_digest`, written by
workflows/steps/digest.py); the run that opened a bucket is on the bucket. Both are read per run, so the
page never scans the item table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from runs.models import DigestBucket, DigestItem, Run, StepExecution
from runs.views.presenting import from_now
from workflows.steps.digest import dropped_words

# A run that fanned out to many keys shows this many digests; the rest are counted.
SHOWN_BUCKETS = 10
FIRST_ITEMS = 3
ITEM_CHARS = 90


@dataclass
class RunDigest:
    """One bucket as the run page shows it."""

    bucket_id: int
    key: str
    step_name: str
    count: int
    opened_here: bool
    # "Send the first at once": this run's item opened the window and went on by itself.
    passed_here: bool
    release_at: datetime
    released_at: datetime | None
    first_items: list[str] = field(default_factory=list)
    release_words: str = ""
    # The run whose item opened the bucket: it holds the release (and sends the message).
    opener_run_id: int = 0
    # "Read the rows again at release": "2 dropped at release: 2 row deleted" ("" when none).
    dropped_words: str = ""

    @property
    def joined_elsewhere(self) -> bool:
        """This run's item waits in another run's open digest: this run is done, its item is not."""
        return not self.opened_here and not self.passed_here and self.released_at is None


@dataclass
class RunDigests:
    shown: list[RunDigest]
    more: int = 0

    def fingerprint(self) -> tuple:
        """Changes when an item joins or a bucket releases, so the polled page redraws."""
        return tuple((d.bucket_id, d.count, d.release_at, d.released_at) for d in self.shown)

    @property
    def waiting_elsewhere(self) -> RunDigest | None:
        """The first open digest of another run that holds this run's item (None: none)."""
        return next((d for d in self.shown if d.joined_elsewhere), None)


def run_digests(run: Run, now: datetime) -> RunDigests:
    """The buckets this run's items joined or this run opened, newest first."""
    joined = (
        StepExecution.objects.filter(run=run, step__kind="digest", output__has_key="joined_digest")
        .values_list("output__joined_digest", flat=True)
        .distinct()
    )
    bucket_ids = {int(b) for b in joined if isinstance(b, int) or str(b).isdigit()}
    buckets = (
        DigestBucket.objects.filter(Q(pk__in=bucket_ids) | Q(run=run), tenant_id=run.tenant_id)
        .select_related("step")
        .annotate(
            item_count=Count("items", filter=Q(items__passed=False, items__dropped="")),
            passed_here=Count("items", filter=Q(items__passed=True, items__source__startswith=f"{run.pk}/")),
        )
        .order_by("-opened_at", "-pk")
    )
    total = buckets.count()
    shown = [_present(bucket, run, now) for bucket in buckets[:SHOWN_BUCKETS]]
    return RunDigests(shown=shown, more=max(total - len(shown), 0))


def _present(bucket: DigestBucket, run: Run, now: datetime) -> RunDigest:
    firsts = DigestItem.objects.filter(bucket=bucket, passed=False, dropped="").order_by("joined_at", "id")[
        :FIRST_ITEMS
    ]
    released = bucket.released_at
    return RunDigest(
        bucket_id=bucket.pk,
        key=bucket.key,
        step_name=bucket.step.display_name,
        count=bucket.item_count,  # type: ignore[attr-defined]  # from annotate()
        opened_here=bucket.run_id == run.pk,
        passed_here=bool(bucket.passed_here),  # type: ignore[attr-defined]  # from annotate()
        release_at=bucket.release_at,
        released_at=released,
        first_items=[_item_text(first.item) for first in firsts],
        release_words=_clock(released or bucket.release_at, now)
        + ("" if released else f" ({from_now(bucket.release_at, now)})"),
        opener_run_id=bucket.run_id,
        dropped_words=_dropped_words(bucket) if released else "",
    )


def _dropped_words(bucket: DigestBucket) -> str:
    """What the release's re-read left out, by reason (one small GROUP BY on a released bucket)."""
    rows = (
        DigestItem.objects.filter(bucket=bucket, passed=False)
        .exclude(dropped="")
        .values("dropped")
        .annotate(n=Count("id"))
        .order_by("-n", "dropped")
    )
    reasons = {row["dropped"]: row["n"] for row in rows}
    return dropped_words({"count": sum(reasons.values()), "reasons": reasons})


def _clock(when: datetime, now: datetime) -> str:
    """14:05 today, otherwise 2026-12-09 14:05, in the site's time zone."""
    local, today = timezone.localtime(when), timezone.localtime(now)
    return local.strftime("%H:%M") if local.date() == today.date() else local.strftime("%Y-%m-%d %H:%M")


def _item_text(item: Any) -> str:
    """An item in one short line: its JSON, cut to fit."""
    text = json.dumps(item, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= ITEM_CHARS else text[: ITEM_CHARS - 1] + "…"
