"""A real worker process SIGKILLed in the middle of a digest's release: the bucket is already closed, the
worker is blocked re-reading the items' rows (the test holds a lock on the customer's table), and it dies
there. The sweeper hands the release to another worker, which releases the same closed bucket again:
one message with every item, never two, and the next item opens a new window (#23)."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from runs.engine import start_run
from runs.engine.enqueue import schedule_next
from runs.engine.sweeper import sweep
from runs.models import Delivery, DigestBucket, StepExecution
from tests.engine.conftest import customer_db, data_source, work
from tests.engine.test_digest_reread import COMMENTS, comment_digest, row
from tests.engine.test_recovery import kill_tree, real_clock, start_worker_process


def wait_for(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def blocked_on_lock(url: str) -> bool:
    """A statement of another session waits for the table lock in the customer's database."""
    with psycopg.connect(url, autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%%comments%%'"
            ).fetchone()[0]
        )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_during_a_release_sends_it_once(
    redis_conn, smtp, tenant_a, tenant_database, monkeypatch, tmp_path
):
    clock = real_clock(monkeypatch)
    customer_db(tenant_database, COMMENTS)
    workflow = comment_digest(tenant_a, data_source(tenant_a, tenant_database), reread=True)
    for n in range(1, 7):
        start_run(workflow, row(n), f"db:{n}")
    work(clock)
    bucket = DigestBucket.objects.get()
    release = StepExecution.objects.get(step__kind="digest", item_key=f"digest/{bucket.pk}")
    # The worker runs on real time: its window ends now (rather than in an hour); the test's clock stood
    # still at the start, which is the past for the worker too.
    now = clock.now
    DigestBucket.objects.filter(pk=bucket.pk).update(release_at=now)
    StepExecution.objects.filter(pk=release.pk).update(next_attempt_at=now)

    lock = psycopg.connect(tenant_database)
    lock.execute("LOCK TABLE comments IN ACCESS EXCLUSIVE MODE")  # held until rollback
    try:
        assert schedule_next(release.run_id, release.step_id)
        worker = start_worker_process(smtp.port, 1, tmp_path / "victim.log")
        wait_for(lambda: blocked_on_lock(tenant_database), "the release to block on the re-read")
        bucket.refresh_from_db()
        release.refresh_from_db()
        assert bucket.released_at is not None and release.status == "running"  # mid-release
        assert worker.poll() is None
        kill_tree(worker)
    finally:
        lock.rollback()
        lock.close()
    assert smtp.messages == [] and not Delivery.objects.exists()

    # The sweeper sees the worker's lease lapse and hands the release over; it runs again here.
    lapsed = (
        timezone.now()
        - clock.now
        + timedelta(seconds=settings.WORKER_LEASE_SECONDS + settings.SWEEPER_GRACE + 1)
    )
    clock.travel(seconds=lapsed.total_seconds())
    assert sweep().reclaimed == 1
    work(clock)
    sweep()
    work(clock)

    release.refresh_from_db()
    assert release.status == "succeeded" and release.attempts == 2, (release.status, release.error)
    assert "stopped" in release.attempt_log[0]["error"]
    assert [d.content["subject"] for d in Delivery.objects.all()] == ["6 new comments"]
    assert len(smtp.messages) == 1
    assert release.output["digest"]["count"] == 6
    # The bucket stays closed: the next item opens the next window, not this one again.
    start_run(workflow, row(1) | {"id": 7}, "db:7")
    work(clock)
    windows = sorted((b.generation, b.released_at is None) for b in DigestBucket.objects.all())
    assert windows == [(1, False), (2, True)]
