"""Digests under real workers: 4 RQ worker processes, one SIGKILLed while 1,000 events for one key join."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from runs.engine import start_runs
from runs.engine.sweeper import sweep
from runs.models import Delivery, DigestBucket, DigestItem, StepExecution
from tests.engine.conftest import build_workflow, settle, webhook, work
from tests.engine.test_digest import digest, digest_email
from tests.engine.test_recovery import kill_tree, real_clock, start_worker_process


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_four_workers_one_killed_send_one_message_with_all_1000_items_per_key(
    redis_conn, smtp, tenant_a, monkeypatch, tmp_path
):
    clock = real_clock(monkeypatch)
    # The workers run on real time: the window outlasts 1,300 joins on a loaded 2-core machine (a 1-minute
    # window released mid-test once and opened a second generation); the test then travels past it.
    workflow = build_workflow(
        tenant_a,
        webhook(
            [digest([digest_email()], key="{{ item.post_id }}", window="fixed", amount=30, unit="minutes")]
        ),
    )
    # 1,000 events for post 42 and 300 for post 7, interleaved, all started within one second.
    events = [({"email": "ann@example.com", "post_id": 42, "name": f"a{n}"}, f"a-{n}") for n in range(1000)]
    events += [({"email": "bob@example.com", "post_id": 7, "name": f"b{n}"}, f"b-{n}") for n in range(300)]
    events.sort(key=lambda e: hash(e[1]))
    start_runs(workflow, events)  # one statement batch: the runs exist before any worker starts
    workers = [start_worker_process(smtp.port, 1, tmp_path / f"worker{n}.log") for n in range(4)]
    deadline = time.monotonic() + 120
    while DigestItem.objects.count() < 250 and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = workers[0]
    assert victim.poll() is None, "the worker finished before it could be killed"
    kill_tree(victim)
    for worker in workers[1:]:
        worker.wait(timeout=300)
    # The victim's claimed joins stay `running` until the sweeper sees its lease has lapsed; reclaimed
    # while the window is still open, they join the same buckets (no item is lost to a killed worker).
    # The test's clock stood still since the start while the workers ran on real time: travel from now,
    # or a claim made late in a slow run still looks younger than the lease (seen: one join never reclaimed).
    lapsed = (
        timezone.now()
        - clock.now
        + timedelta(seconds=settings.WORKER_LEASE_SECONDS + settings.SWEEPER_GRACE + 1)
    )
    clock.travel(seconds=lapsed.total_seconds())
    sweep()
    work(clock)
    assert DigestItem.objects.count() == 1300 and not DigestBucket.objects.filter(released_at__isnull=False)
    clock.travel(seconds=30 * 60)  # past the window: each bucket releases once
    settle(clock, step_seconds=60)

    assert not StepExecution.objects.filter(status__in=StepExecution.OPEN).exists()
    buckets = {b.key: b for b in DigestBucket.objects.all()}
    assert set(buckets) == {"42", "7"} and all(b.generation == 1 for b in buckets.values())
    assert buckets["42"].items.count() == 1000 and buckets["7"].items.count() == 300
    subjects = Counter(d.content["subject"] for d in Delivery.objects.all())
    assert subjects == Counter({"1000 new comments": 1, "300 new comments": 1}), subjects
    assert len(smtp.messages) == 2
    texts = {d.recipient: d.content["text"] for d in Delivery.objects.all()}
    assert sorted(texts["ann@example.com"].split(";")[:-1]) == sorted(f"a{n}" for n in range(1000))
    assert sorted(texts["bob@example.com"].split(";")[:-1]) == sorted(f"b{n}" for n in range(300))
