"""Digest buckets: joining one without a lock, and releasing it exactly once through the ledger.

A bucket is a unique row per (tenant, step, key, generation); the step belongs to one workflow version
and a key's next window is the next generation. `join_bucket` writes the bucket with INSERT … ON
CONFLICT DO UPDATE … WHERE released_at IS NULL: the conflict path locks the row for the rest of the
join's transaction, so a release either waits for the join (and then sees its item) or has already
committed (and the join finds no open row and opens the next generation). The item row is unique per
joining execution, so a retried join adds nothing.

The join that opens a bucket also writes the release: one StepExecution of the digest step in the
opening run, item key `digest/<bucket id>`, due at the release time. The ledger's unique key makes it
exist once; its lease and claim fencing make it run to completion once (a killed worker's claim is
reclaimed by the sweeper and run again, and `release_bucket` is idempotent: the bucket stays closed and
its items are read again, the children's unique item keys keep the message single).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from runs.engine.enqueue import schedule_next
from runs.models import DigestBucket, DigestItem, Run, StepExecution
from workflows.models import Step

if TYPE_CHECKING:
    from workflows.steps.digest import DigestSettings

RELEASE_PREFIX = "digest/"

# One statement for a batch of keys (sorted, so two workers lock the buckets in the same order).
UPSERT_MANY = (
    "INSERT INTO runs_digestbucket (tenant_id, step_id, key, generation, settings, run_id, opened_at, release_at)"
    " SELECT %s, %s, k.key, k.generation, %s::jsonb, %s, %s, %s"
    " FROM unnest(%s::text[], %s::int[]) AS k(key, generation) ORDER BY k.key"
    " ON CONFLICT (tenant_id, step_id, key, generation) DO UPDATE SET key = EXCLUDED.key"
    " WHERE runs_digestbucket.released_at IS NULL"
    " RETURNING id, key, (xmax = 0) AS opened, opened_at, release_at, settings, run_id"
)
# What the batch's sources already joined (a retried execution), and each key's latest window: one read.
LOOKUP = (
    "SELECT 'joined', i.source, b.id, b.key, b.generation, b.release_at, i.passed, false"
    " FROM runs_digestitem i JOIN runs_digestbucket b ON b.id = i.bucket_id"
    " WHERE i.source = ANY(%s) AND b.tenant_id = %s AND b.step_id = %s"
    " UNION ALL (SELECT DISTINCT ON (key) 'latest', '', id, key, generation, release_at, false,"
    " released_at IS NOT NULL FROM runs_digestbucket"
    " WHERE tenant_id = %s AND step_id = %s AND key = ANY(%s) ORDER BY key, generation DESC)"
)
# Add the items and count each bucket's items in one statement: the count reads the rows as they were
# before this statement (one snapshot), plus the rows it added.
ADD_AND_COUNT = (
    "WITH added AS (INSERT INTO runs_digestitem (bucket_id, source, item, joined_at, passed, dropped)"
    " SELECT a.bucket_id, a.source, a.item::jsonb, %s, a.passed, ''"
    " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bool[]) AS a(bucket_id, source, item, passed)"
    " ON CONFLICT (bucket_id, source) DO NOTHING RETURNING bucket_id, passed),"
    " before AS (SELECT bucket_id, count(*) AS n FROM runs_digestitem"
    " WHERE bucket_id = ANY(%s) AND NOT passed GROUP BY bucket_id)"
    " SELECT b.id, coalesce((SELECT n FROM before WHERE before.bucket_id = b.id), 0)"
    " + (SELECT count(*) FROM added WHERE added.bucket_id = b.id AND NOT added.passed)"
    " FROM unnest(%s::bigint[]) AS b(id)"
)
COUNT_EARLIER = "SELECT bucket_id, count(*) FROM runs_digestitem WHERE bucket_id = ANY(%s) AND NOT passed GROUP BY bucket_id"


@dataclass(frozen=True)
class BucketJoin:
    """What joining did: the bucket, whether this item opened it, its items so far and when it releases."""

    bucket_id: int
    key: str
    opened: bool
    count: int
    release_at: datetime
    # False when this source had already joined (a retried execution): nothing was added.
    added: bool = True
    # "Send the first at once": this item opened the window and goes on now; the digest does not carry it.
    passed: bool = False


@dataclass(frozen=True)
class JoinRequest:
    """One item to join: `source` names the joining execution (`<run>/<step>/<item key>`), so a retry
    joins nothing twice; `run_id` is the joining run (it holds the release when its item opens a bucket);
    `parent_id` its execution, the release's parent."""

    source: str
    key: str
    item: dict[str, Any]
    run_id: int
    parent_id: int | None = None


@dataclass
class _Bucket:
    id: int
    key: str
    opened: bool
    opened_at: datetime
    release_at: datetime
    settings: Any
    run_id: int


def join_bucket(
    ctx: Any, step: Step, item: dict[str, Any], key: str, *, first_passes: bool = False
) -> BucketJoin:
    """Add `item` to the open bucket of digest `step` for `key`, opening one when there is none.

    `ctx` is the engine's StepContext of the execution that hands the item over (its run and execution
    name the item's source, so a retry joins nothing twice); `step` is a digest step of the same version.
    The window comes from the digest step's settings (workflows/steps/digest.py `DigestSettings`).
    `first_passes` ("send the first at once"): an item that opens the window is remembered as passed
    (`BucketJoin.passed`) and not counted; only the later items of the window make the digest.
    """
    execution = ctx.execution if ctx.execution is not None and ctx.execution.pk else None
    request = JoinRequest(_source(ctx), key, item, ctx.run.pk, execution.pk if execution else None)
    return join_buckets(ctx.run.tenant_id, step, [request], ctx.now, first_passes=first_passes)[
        request.source
    ]


def join_buckets(
    tenant_id: int, step: Step, requests: list[JoinRequest], now: datetime, *, first_passes: bool = False
) -> dict[str, BucketJoin]:
    """Join many items at once (a batch of one digest step), in a handful of statements whatever their
    number: one read (earlier joins of these sources, each key's latest window), one upsert of every
    key's bucket, one insert of every item that also counts them, one insert of the new buckets' releases
    and, for sliding windows or "release early", two updates. Returns {source: BucketJoin}.

    The opening item's run holds a new bucket's release; with several runs in one batch (the engine's
    batches are per run, so only when called directly) each bucket names the run of its first item.
    """
    from workflows.steps.digest import DigestSettings

    settings = DigestSettings.from_json(step.config or {})
    requests = [
        JoinRequest(r.source[:600], str(r.key)[:500], r.item, r.run_id, r.parent_id) for r in requests
    ]
    results: dict[str, BucketJoin] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        earlier, generations = _lookup(cursor, tenant_id, step.pk, requests)
        fresh = [r for r in requests if r.source not in earlier]
        buckets = _upsert(cursor, tenant_id, step, settings, fresh, generations, now)
        passing = _passing(fresh, buckets) if first_passes else set()
        counts = _add_items(cursor, fresh, buckets, passing, now)
        _write_releases(tenant_id, step, fresh, buckets)
        moved = _move_releases(cursor, step, buckets, counts, now)
        openers: dict[str, str] = {}
        for request in fresh:
            openers.setdefault(request.key, request.source)
        for request in fresh:
            bucket = buckets[request.key]
            release_at = moved.get(bucket.id, bucket.release_at)
            results[request.source] = BucketJoin(
                bucket.id,
                request.key,
                bucket.opened and openers[request.key] == request.source,
                counts.get(bucket.id, 0),
                release_at,
                passed=request.source in passing,
            )
        results.update(_earlier_joins(cursor, earlier))
        # RQ wakes a new or moved release on time; with Redis down, the sweeper queues it once it is due.
        wake = {(b.run_id, step.pk) for b in buckets.values() if b.opened or b.id in moved}
        for run_id, step_id in sorted(wake):
            transaction.on_commit(functools.partial(schedule_next, run_id, step_id), robust=True)
    return results


def _lookup(
    cursor: CursorWrapper, tenant_id: int, step_id: int, requests: list[JoinRequest]
) -> tuple[dict[str, tuple[Any, ...]], dict[str, int]]:
    """({source: (bucket id, key, release_at, passed)} of earlier joins, {key: next generation to try})."""
    cursor.execute(
        LOOKUP,
        [
            [r.source for r in requests],
            tenant_id,
            step_id,
            tenant_id,
            step_id,
            sorted({r.key for r in requests}),
        ],
    )
    earlier: dict[str, tuple[int, str, datetime, bool]] = {}
    generations: dict[str, int] = {}
    for what, source, bucket_id, key, generation, release_at, passed, released in cursor.fetchall():
        if what == "joined":
            earlier[source] = (bucket_id, key, release_at, passed)
        else:
            generations[key] = generation + 1 if released else generation
    return earlier, generations


def _upsert(
    cursor: CursorWrapper,
    tenant_id: int,
    step: Step,
    settings: DigestSettings,
    fresh: list[JoinRequest],
    generations: dict[str, int],
    now: datetime,
) -> dict[str, _Bucket]:
    """Every key's open bucket, opened where there is none; a key whose window released meanwhile tries
    its next generation (the loop ends: a released row never reopens)."""
    openers: dict[str, JoinRequest] = {}
    for request in fresh:
        openers.setdefault(request.key, request)
    buckets: dict[str, _Bucket] = {}
    wanted = {key: generations.get(key, 1) for key in openers}
    while wanted:
        by_run: dict[int, list[str]] = {}
        for key in sorted(wanted):
            by_run.setdefault(openers[key].run_id, []).append(key)
        for run_id, keys in by_run.items():
            cursor.execute(
                UPSERT_MANY,
                [
                    tenant_id,
                    step.pk,
                    _json(settings.to_json()),
                    run_id,
                    now,
                    settings.release_at(now, now),
                    keys,
                    [wanted[key] for key in keys],
                ],
            )
            for bucket_id, key, opened, opened_at, release_at, stored, owner in cursor.fetchall():
                buckets[key] = _Bucket(bucket_id, key, bool(opened), opened_at, release_at, stored, owner)
        wanted = {key: generation + 1 for key, generation in wanted.items() if key not in buckets}
    return buckets


def _passing(fresh: list[JoinRequest], buckets: dict[str, _Bucket]) -> set[str]:
    """ "Send the first at once": the first item of each bucket this batch opened goes on by itself."""
    passing: dict[str, str] = {}
    for request in fresh:
        if buckets[request.key].opened:
            passing.setdefault(request.key, request.source)
    return set(passing.values())


def _add_items(
    cursor: CursorWrapper,
    fresh: list[JoinRequest],
    buckets: dict[str, _Bucket],
    passing: set[str],
    now: datetime,
) -> dict[int, int]:
    """Insert the items; {bucket id: items it holds now (passed ones not counted)}."""
    if not fresh:
        return {}
    ids = sorted({b.id for b in buckets.values()})
    cursor.execute(
        ADD_AND_COUNT,
        [
            now,
            [buckets[r.key].id for r in fresh],
            [r.source for r in fresh],
            [_json(r.item) for r in fresh],
            [r.source in passing for r in fresh],
            ids,
            ids,
        ],
    )
    return {bucket_id: count for bucket_id, count in cursor.fetchall()}


def _earlier_joins(cursor: CursorWrapper, earlier: dict[str, tuple[Any, ...]]) -> dict[str, BucketJoin]:
    """Retried executions: what they joined the first time, with their bucket's count now."""
    if not earlier:
        return {}
    cursor.execute(COUNT_EARLIER, [sorted({row[0] for row in earlier.values()})])
    counts = dict(cursor.fetchall())
    return {
        source: BucketJoin(
            bucket_id, key, False, counts.get(bucket_id, 0), release_at, added=False, passed=passed
        )
        for source, (bucket_id, key, release_at, passed) in earlier.items()
    }


def _write_releases(
    tenant_id: int, step: Step, fresh: list[JoinRequest], buckets: dict[str, _Bucket]
) -> None:
    """One release execution per bucket this batch opened, in the opening run (unique by item key)."""
    parents: dict[str, int | None] = {}
    for request in fresh:
        parents.setdefault(request.key, request.parent_id)
    releases = [
        StepExecution(
            tenant_id=tenant_id,
            run_id=bucket.run_id,
            step=step,
            parent_id=parents.get(bucket.key),
            item_key=f"{RELEASE_PREFIX}{bucket.id}",
            input={"digest_bucket": bucket.id},
            next_attempt_at=bucket.release_at,
        )
        for bucket in buckets.values()
        if bucket.opened
    ]
    if releases:
        StepExecution.objects.bulk_create(releases, ignore_conflicts=True)


def _move_releases(
    cursor: CursorWrapper, step: Step, buckets: dict[str, _Bucket], counts: dict[int, int], now: datetime
) -> dict[int, datetime]:
    """A sliding window moves the release later (never past its maximum); `release early at N` makes it
    due now. Buckets keep the settings they opened with. Two statements for the whole batch."""
    from workflows.steps.digest import DigestSettings

    moved: dict[int, datetime] = {}
    for bucket in buckets.values():
        if bucket.opened:
            continue
        settings = DigestSettings.from_json(_loaded(bucket.settings))
        wanted = settings.release_at(bucket.opened_at, now)
        if settings.release_at_count and counts.get(bucket.id, 0) >= settings.release_at_count:
            wanted = now
        if wanted != bucket.release_at:
            moved[bucket.id] = wanted
    if moved:
        values = [(bucket_id, at) for bucket_id, at in moved.items()]
        cursor.execute(
            "UPDATE runs_digestbucket b SET release_at = v.at FROM unnest(%s::bigint[], %s::timestamptz[])"
            " AS v(id, at) WHERE b.id = v.id",
            [[v[0] for v in values], [v[1] for v in values]],
        )
        runs = {bucket.id: bucket.run_id for bucket in buckets.values()}
        cursor.execute(
            "UPDATE runs_stepexecution e SET next_attempt_at = v.at"
            " FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS v(run_id, item_key, at)"
            " WHERE e.run_id = v.run_id AND e.step_id = %s AND e.item_key = v.item_key AND e.status = 'pending'",
            [
                [runs[v[0]] for v in values],
                [f"{RELEASE_PREFIX}{v[0]}" for v in values],
                [v[1] for v in values],
                step.pk,
            ],
        )
    return moved


@dataclass(frozen=True)
class ReleasedEntry:
    """An item of a releasing bucket as a re-read sees it: the item, its run's trigger payload, and
    whether the item is that row itself (it joined straight from the trigger, item key "0")."""

    item: dict[str, Any]
    payload: Any
    own_row: bool


# What a re-read says of each entry, in order: the item to carry (None: drop it) and the reason to drop.
Judge = Callable[[list[ReleasedEntry]], list[tuple[dict[str, Any] | None, str]]]


def release_bucket(bucket_id: int, now: datetime, judge: Judge | None = None) -> dict[str, Any] | None:
    """Close the bucket (once) and return the released item: key, count, first, last and all items.

    Idempotent: a release run again after its worker was killed reads the same closed bucket.
    None when the bucket does not exist (deleted with its run). With `judge` (the digest's "read the
    rows again"), the items it drops are marked on their rows with the reason, and the released item
    says how many were dropped and why (`dropped`: {"count", "reasons": {reason: n}}).
    """
    with transaction.atomic():
        bucket = DigestBucket.objects.select_for_update().filter(pk=bucket_id).first()
        if bucket is None:
            return None
        if bucket.released_at is None:
            bucket.released_at = now
            bucket.save(update_fields=["released_at"])
    rows = list(
        bucket.items.filter(passed=False).order_by("joined_at", "id").values_list("id", "source", "item")
    )
    items = [row[2] for row in rows]
    dropped: dict[str, int] = {}
    if judge is not None:
        items, dropped = _judged(rows, judge)
    released = {
        "key": bucket.key,
        "bucket": bucket.pk,
        "count": len(items),
        "first": items[0] if items else {},
        "last": items[-1] if items else {},
        "items": items,
        "opened_at": bucket.opened_at.isoformat(),
        "released_at": bucket.released_at.isoformat() if bucket.released_at else None,
    }
    if judge is not None:
        released["dropped"] = {"count": sum(dropped.values()), "reasons": dropped}
    return {"digest": released}


def _judged(rows: list[tuple[int, str, Any]], judge: Judge) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Ask the re-read about every item; mark the dropped ones (a release run again marks afresh)."""
    run_ids = {_source_run(source) for _, source, _ in rows} - {None}
    payloads = dict(Run.objects.filter(pk__in=run_ids).values_list("pk", "payload"))
    entries = [
        ReleasedEntry(item, payloads.get(_source_run(source)), source.split("/", 2)[2:] == ["0"])
        for _, source, item in rows
    ]
    verdicts = judge(entries)
    kept: list[dict[str, Any]] = []
    reasons: dict[int, str] = {}
    for (item_id, _, _), (item, reason) in zip(rows, verdicts, strict=True):
        if item is None:
            reasons[item_id] = reason[:300]
        else:
            kept.append(item)
    with transaction.atomic():
        DigestItem.objects.filter(pk__in=[row[0] for row in rows]).exclude(dropped="").update(dropped="")
        for reason in set(reasons.values()):
            ids = [item_id for item_id, why in reasons.items() if why == reason]
            DigestItem.objects.filter(pk__in=ids).update(dropped=reason)
    counted: dict[str, int] = {}
    for reason in reasons.values():
        counted[reason] = counted.get(reason, 0) + 1
    return kept, counted


def _source_run(source: str) -> int | None:
    """The run of a joining execution's source ("<run>/<step>/<item key>", or "run/<run>" for a test)."""
    head = source.removeprefix("run/").split("/", 1)[0]
    return int(head) if head.isdigit() else None


def open_bucket_state(tenant_id: int, step_id: int, key: str) -> tuple[int, datetime | None]:
    """Items so far and release time of the open bucket of `step_id` for `key` ((0, None) when none)."""
    bucket = (
        DigestBucket.objects.filter(tenant_id=tenant_id, step_id=step_id, key=key[:500], released_at=None)
        .order_by("-generation")
        .first()
    )
    if bucket is None:
        return 0, None
    return bucket.items.filter(passed=False).count(), bucket.release_at


def release_bucket_id(item_key: str) -> int | None:
    """The bucket a release execution releases, from its item key."""
    if not item_key.startswith(RELEASE_PREFIX):
        return None
    tail = item_key[len(RELEASE_PREFIX) :]
    return int(tail) if tail.isdigit() else None


def _source(ctx: Any) -> str:
    execution = ctx.execution
    if execution is None or execution.pk is None:
        return f"run/{ctx.run.pk}"
    return source_of(execution)


def source_of(execution: Any) -> str:
    """The joining execution as a digest item's source: unique per item, the same on a retry."""
    return f"{execution.run_id}/{execution.step_id}/{execution.item_key}"[:600]


def _loaded(value: Any) -> Any:
    """A jsonb column read through a raw cursor (Django's connection hands it over as text)."""
    import json

    return json.loads(value) if isinstance(value, str) else value


def _json(value: Any) -> str:
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    return json.dumps(value, cls=DjangoJSONEncoder)
