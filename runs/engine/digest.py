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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from runs.engine.enqueue import schedule_next
from runs.models import DigestBucket, DigestItem, Run, StepExecution
from workflows.models import Step

RELEASE_PREFIX = "digest/"

UPSERT = (
    "INSERT INTO runs_digestbucket (tenant_id, step_id, key, generation, settings, run_id, opened_at,"
    " release_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s, %s)"
    " ON CONFLICT (tenant_id, step_id, key, generation) DO UPDATE SET key = EXCLUDED.key"
    " WHERE runs_digestbucket.released_at IS NULL"
    " RETURNING id, (xmax = 0) AS opened, release_at, settings, run_id"
)
ADD_ITEM = (
    "INSERT INTO runs_digestitem (bucket_id, source, item, joined_at, passed, dropped)"
    " VALUES (%s, %s, %s::jsonb, %s, %s, '')"
    " ON CONFLICT (bucket_id, source) DO NOTHING"
)
COUNT_ITEMS = "SELECT count(*) FROM runs_digestitem WHERE bucket_id = %s AND NOT passed"


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
    from workflows.steps.digest import DigestSettings

    settings = DigestSettings.from_json(step.config or {})
    source = _source(ctx)
    key = str(key)[:500]
    now = ctx.now
    with transaction.atomic(), connection.cursor() as cursor:
        earlier = _already_joined(cursor, ctx.run.tenant_id, step.pk, source)
        if earlier is not None:
            return earlier
        generation = _latest_generation(cursor, ctx.run.tenant_id, step.pk, key)
        while True:
            cursor.execute(
                UPSERT,
                [
                    ctx.run.tenant_id,
                    step.pk,
                    key,
                    generation,
                    _json(settings.to_json()),
                    ctx.run.pk,
                    now,
                    settings.release_at(now, now),
                ],
            )
            row = cursor.fetchone()
            if row is not None:
                break
            generation += 1  # released meanwhile: this item opens the next window
        bucket_id, opened, release_at, opening_settings, run_id = row
        passed = bool(opened and first_passes)
        cursor.execute(ADD_ITEM, [bucket_id, source, _json(item), now, passed])
        cursor.execute(COUNT_ITEMS, [bucket_id])
        count = cursor.fetchone()[0]
        if opened:
            _write_release(ctx, step, bucket_id, release_at)
        else:
            release_at = _move_release(
                cursor,
                bucket_id,
                run_id,
                step,
                DigestSettings.from_json(_loaded(opening_settings)),
                count,
                now,
            )
        # RQ wakes the release on time; with Redis down, the sweeper queues it once it is due.
        transaction.on_commit(lambda: schedule_next(run_id, step.pk), robust=True)
    return BucketJoin(bucket_id, key, bool(opened), count, release_at, passed=passed)


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
    return f"{execution.run_id}/{execution.step_id}/{execution.item_key}"[:600]


def _already_joined(cursor, tenant_id: int, step_id: int, source: str) -> BucketJoin | None:
    cursor.execute(
        "SELECT b.id, b.key, b.release_at,"
        " (SELECT count(*) FROM runs_digestitem c WHERE c.bucket_id = b.id AND NOT c.passed), i.passed"
        " FROM runs_digestitem i JOIN runs_digestbucket b ON b.id = i.bucket_id"
        " WHERE i.source = %s AND b.tenant_id = %s AND b.step_id = %s",
        [source, tenant_id, step_id],
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return BucketJoin(row[0], row[1], False, row[3], row[2], added=False, passed=row[4])


def _latest_generation(cursor, tenant_id: int, step_id: int, key: str) -> int:
    cursor.execute(
        "SELECT generation, released_at IS NOT NULL FROM runs_digestbucket"
        " WHERE tenant_id = %s AND step_id = %s AND key = %s ORDER BY generation DESC LIMIT 1",
        [tenant_id, step_id, key],
    )
    row = cursor.fetchone()
    if row is None:
        return 1
    return row[0] + 1 if row[1] else row[0]


def _write_release(ctx: Any, step: Step, bucket_id: int, release_at: datetime) -> None:
    parent = ctx.execution if ctx.execution is not None and ctx.execution.pk else None
    StepExecution.objects.bulk_create(
        [
            StepExecution(
                tenant_id=ctx.run.tenant_id,
                run_id=ctx.run.pk,
                step=step,
                parent=parent,
                item_key=f"{RELEASE_PREFIX}{bucket_id}",
                input={"digest_bucket": bucket_id},
                next_attempt_at=release_at,
            )
        ],
        ignore_conflicts=True,
    )


def _move_release(cursor, bucket_id, run_id, step, settings, count: int, now: datetime) -> datetime:
    """A sliding window moves the release later (never past its maximum); `release early at N` makes it due now."""
    cursor.execute("SELECT opened_at, release_at FROM runs_digestbucket WHERE id = %s", [bucket_id])
    opened_at, release_at = cursor.fetchone()
    wanted = settings.release_at(opened_at, now)
    if settings.release_at_count and count >= settings.release_at_count:
        wanted = now
    if wanted == release_at:
        return release_at
    cursor.execute("UPDATE runs_digestbucket SET release_at = %s WHERE id = %s", [wanted, bucket_id])
    cursor.execute(
        "UPDATE runs_stepexecution SET next_attempt_at = %s"
        " WHERE run_id = %s AND step_id = %s AND item_key = %s AND status = 'pending'",
        [wanted, run_id, step.pk, f"{RELEASE_PREFIX}{bucket_id}"],
    )
    return wanted


def _loaded(value: Any) -> Any:
    """A jsonb column read through a raw cursor (Django's connection hands it over as text)."""
    import json

    return json.loads(value) if isinstance(value, str) else value


def _json(value: Any) -> str:
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    return json.dumps(value, cls=DjangoJSONEncoder)
