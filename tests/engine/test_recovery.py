"""Losing a worker (SIGKILL) or Redis loses no work and sends nothing twice: PostgreSQL is the truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import django_rq
import psutil
import pytest
from django.conf import settings
from django.utils import timezone
from rq import SimpleWorker

from runs.engine import start_run
from runs.engine.executor import claim
from runs.engine.sweeper import sweep
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import (
    Clock,
    build_workflow,
    customer_db,
    data_source,
    email,
    query,
    settle,
    webhook,
)
from tests.support import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]


def recipients_table(url: str, n: int) -> None:
    customer_db(
        url,
        f"CREATE TABLE r (id int PRIMARY KEY, email text); INSERT INTO r "
        f"SELECT g, 'r' || g || '@example.com' FROM generate_series(1, {n}) g",
    )


def real_clock(monkeypatch) -> Clock:
    clock = Clock(timezone.now())
    monkeypatch.setattr("integrations.clock.now", clock)
    return clock


def uncertain_per_killed_worker(smtp_connections: int) -> int:
    """The most messages a SIGKILLed worker leaves `sending` (reported uncertain): over one connection, the
    one between its provider's answer and its mark; over several, the answers not written yet plus the
    rows of the window being committed (at most one per connection each)."""
    return 1 if smtp_connections == 1 else 2 * smtp_connections


def start_worker_process(smtp_port: int, smtp_connections: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_PORT": str(smtp_port),
        "EMAIL_HOST": "127.0.0.1",
        "ENGINE_BATCH_SIZE": "100",
        "EMAIL_SMTP_CONNECTIONS": str(smtp_connections),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "rqworker",
            "default",
            "low",
            "--burst",
            "--worker-class",
            "runs.worker.EngineWorker",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_tree(process: subprocess.Popen) -> None:
    parent = psutil.Process(process.pid)
    for proc in [*parent.children(recursive=True), parent]:
        proc.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("connections", [1, 4])
def test_a_worker_killed_mid_fan_out_sends_no_email_twice(
    connections, redis_conn, smtp, tenant_a, tenant_database, monkeypatch, tmp_path
):
    clock = real_clock(monkeypatch)
    recipients_table(tenant_database, 500)
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    data_source(tenant_a, tenant_database),
                    "SELECT id, email FROM r",
                    children=[email(subject="hi", text="x")],
                )
            ]
        ),
    )
    smtp.delay = 0.004
    run = start_run(workflow, {}, "evt-crash")
    worker = start_worker_process(smtp.port, connections, tmp_path / "worker.log")
    deadline = time.monotonic() + 90
    while len(smtp.messages) < 120 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.02)
    assert worker.poll() is None, "the worker finished before it could be killed"
    kill_tree(worker)
    killed_at = len(smtp.messages)
    assert 0 < killed_at < 500

    smtp.delay = 0
    clock.travel(seconds=settings.ENGINE_EXECUTION_TIMEOUT + settings.SWEEPER_GRACE + 1)
    report = sweep()
    assert report.reclaimed > 0
    settle(clock, step_seconds=60)

    run.refresh_from_db()
    statuses = Counter(Delivery.objects.filter(run=run).values_list("status", flat=True))
    sent_to = Counter(smtp.recipients())
    assert max(sent_to.values()) == 1, "a recipient got two emails"
    most = uncertain_per_killed_worker(connections)
    assert statuses["uncertain"] <= most and statuses["sent"] + statuses["uncertain"] == 500, statuses
    sent_recipients = set(Delivery.objects.filter(run=run, status="sent").values_list("recipient", flat=True))
    assert sent_recipients <= set(sent_to) and len(sent_recipients) == statuses["sent"]
    assert run.status == (Run.Status.SUCCEEDED if not statuses["uncertain"] else Run.Status.PARTIAL)


@pytest.mark.django_db(transaction=True)
def test_redis_lost_while_executions_wait_and_run_the_run_completes_from_postgres(
    redis_conn, smtp, tenant_a, tenant_database, monkeypatch, settings
):
    settings.ENGINE_BATCH_SIZE = 10
    clock = real_clock(monkeypatch)
    recipients_table(tenant_database, 40)
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    data_source(tenant_a, tenant_database),
                    "SELECT id, email FROM r",
                    children=[email(subject="hi", text="x")],
                ),
                {
                    "kind": "wait",
                    "config": {"mode": "duration", "amount": 10, "unit": "minutes"},
                    "children": [email(to="later@example.com", subject="later", text="x")],
                },
            ]
        ),
    )
    run = start_run(workflow, {}, "evt-redis")
    queues = [django_rq.get_queue("default"), django_rq.get_queue("low")]
    SimpleWorker(queues, connection=redis_conn).work(burst=True, max_jobs=3)
    sent_before = len(smtp.messages)
    assert 0 < sent_before < 40
    # A worker is in the middle of a batch (claimed, not settled) when Redis goes away with every job.
    send_step = StepExecution.objects.filter(run=run, step__kind="send_email").first().step_id
    in_flight = claim(run.pk, send_step, clock.now, 5)
    assert len(in_flight) == 5
    redis_conn.flushdb()

    clock.travel(seconds=settings.ENGINE_EXECUTION_TIMEOUT + settings.SWEEPER_GRACE + 1)
    report = sweep()
    assert report.reclaimed == 5 and report.jobs_queued >= 2
    settle(clock, step_seconds=600)

    run.refresh_from_db()
    sent_to = Counter(smtp.recipients())
    assert run.status == Run.Status.SUCCEEDED
    assert len(sent_to) == 41 and max(sent_to.values()) == 1
    assert Delivery.objects.filter(run=run, status="sent").count() == 41


def test_the_sweeper_leaves_fresh_work_to_its_jobs(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    report = sweep()
    assert report.jobs_queued == 0 and report.reclaimed == 0
    clock.travel(seconds=settings.SWEEPER_GRACE + 1)
    assert sweep().jobs_queued == 0, "the job for it is already queued"
