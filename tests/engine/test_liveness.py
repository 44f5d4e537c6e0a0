"""Recovery in seconds with real RQ workers: a SIGKILLed worker's claims come back long before
ENGINE_EXECUTION_TIMEOUT, a job timeout inside a pending Delivery commit leaves no busy connection and
fails nothing, and no Procfile process leaves a child behind when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import timedelta
from pathlib import Path

import psutil
import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from runs.engine import start_run
from runs.engine.sweeper import sweep
from runs.models import Delivery, ProcessHeartbeat, Run, StepExecution
from tests.engine.conftest import build_workflow, data_source, email, query, settle, webhook
from tests.engine.test_recovery import real_clock, recipients_table, uncertain_per_killed_worker
from tests.support import free_port, subprocess_database_url

pytestmark = pytest.mark.slow  # every test here starts real worker, web or scheduler processes
ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0


def process_env(smtp_port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_PORT": str(smtp_port),
        "EMAIL_HOST": "127.0.0.1",
        "ENGINE_BATCH_SIZE": "100",
        "HEARTBEAT_INTERVAL": "0.5",
        "WORKER_LEASE_SECONDS": str(LEASE),
        **extra,
    }


def start(
    args: list[str], env: dict[str, str], log: Path, program: list[str] | None = None
) -> subprocess.Popen:
    """`manage.py <args>` (or `program + args`) in its own session, output to `log`."""
    return subprocess.Popen(
        [*(program or [sys.executable, "manage.py"]), *args],
        cwd=ROOT,
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def worker(env: dict[str, str], log: Path, burst: bool = True) -> subprocess.Popen:
    args = ["rqworker", "default", "low", "--worker-class", "runs.worker.EngineWorker"]
    return start([*args, "--burst"] if burst else args, env, log)


def fan_out(tenant, url: str, n: int):
    recipients_table(url, n)
    source = data_source(tenant, url)
    return build_workflow(
        tenant, webhook([query(source, "SELECT id, email FROM r", children=[email(subject="hi", text="x")])])
    )


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an answer all the same
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("connections", [1, 4])
def test_sigkill_of_every_worker_is_reclaimed_in_seconds_not_at_the_execution_timeout(
    connections, redis_conn, smtp, tenant_a, tenant_database, monkeypatch, settings, tmp_path
):
    settings.WORKER_LEASE_SECONDS = LEASE
    clock = real_clock(monkeypatch)
    workflow = fan_out(tenant_a, tenant_database, 400)
    smtp.delay = 0.01
    run = start_run(workflow, {}, "evt-kill-all")
    env = process_env(smtp.port, EMAIL_SMTP_CONNECTIONS=str(connections))
    workers = [worker(env, tmp_path / f"w{i}.log") for i in range(2)]
    wait_for(lambda: len(smtp.messages) >= 60, 60, "the first messages")
    running = set(
        StepExecution.objects.filter(run=run, status="running").values_list("claimed_by", flat=True)
    )
    assert running and "" not in running, "claims carry their worker's name"
    for process in workers:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    killed_at = time.monotonic()
    sent_at_kill = len(smtp.messages)
    assert sent_at_kill < 400
    assert StepExecution.objects.filter(run=run, status="running").exists()

    # The sweeper (every few seconds in production) notices the missing heartbeats, not a timeout.
    reclaimed = 0
    while StepExecution.objects.filter(run=run, status="running").exists():
        assert time.monotonic() - killed_at < LEASE + 10, "the claims of the dead workers were not reclaimed"
        clock.now = timezone.now()
        reclaimed += sweep().reclaimed
        time.sleep(0.25)
    took = time.monotonic() - killed_at
    assert reclaimed > 0 and took < settings.ENGINE_EXECUTION_TIMEOUT / 10
    lost = StepExecution.objects.filter(run=run, step__kind="send_email", attempts__gt=0, status="pending")
    assert "stopped (no heartbeat)" in str(lost.first().attempt_log), "the reclaim is in the attempt history"

    restarted = worker(env, tmp_path / "w-restart.log")
    wait_for(lambda: len(smtp.messages) > sent_at_kill, 30, "a message sent after the restart")
    restarted.wait(timeout=120)
    smtp.delay = 0
    settle(clock, step_seconds=60)

    run.refresh_from_db()
    statuses = Counter(Delivery.objects.filter(run=run).values_list("status", flat=True))
    sent_to = Counter(smtp.recipients())
    assert max(sent_to.values()) == 1, "a recipient got two emails"
    # A worker killed between a provider's answer and its mark leaves that one message uncertain; with
    # several connections, its messages in flight and the answers not written yet (runs/engine/concurrent.py).
    most = 2 * uncertain_per_killed_worker(connections)
    assert statuses["uncertain"] <= most and statuses["sent"] + statuses["uncertain"] == 400, statuses
    assert run.status in (Run.Status.SUCCEEDED, Run.Status.PARTIAL)


@pytest.mark.django_db(transaction=True)
def test_a_job_timeout_inside_the_pending_delivery_commit_fails_nothing_and_poisons_no_connection(
    redis_conn, smtp, tenant_a, tenant_database, monkeypatch, settings, tmp_path
):
    settings.ENGINE_EXECUTION_TIMEOUT = 3  # the batch jobs' RQ timeout, set when they are queued
    clock = real_clock(monkeypatch)
    workflow = fan_out(tenant_a, tenant_database, 20)
    run = start_run(workflow, {}, "evt-timeout")
    log = tmp_path / "worker.log"
    # Every Delivery insert waits on this lock, so the worker's job timeout (3 s) fires inside
    # PendingCreate.wait, with the insert in flight on the worker's connection (one SMTP connection: the
    # path that overlaps each insert with its message's envelope).
    blocker = psycopg.connect(subprocess_database_url())
    blocker.execute("LOCK TABLE runs_delivery IN SHARE MODE")
    process = worker(process_env(smtp.port, ENGINE_EXECUTION_TIMEOUT="3", EMAIL_SMTP_CONNECTIONS="1"), log)
    try:
        # Its release waits for the lock too (it marks the message whose insert was cut off "not sent").
        wait_for(lambda: "interrupted (JobTimeoutException)" in log.read_text(), 60, "the job timeout")
    finally:
        blocker.rollback()
        blocker.close()
    process.wait(timeout=120)
    settle(clock, step_seconds=60)

    output = log.read_text()
    assert "JobTimeoutException" in output
    assert "another command is already in progress" not in output
    assert "failed unexpectedly" not in output
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert not StepExecution.objects.filter(run=run, status="failed").exists()
    assert sorted(Counter(smtp.recipients()).values()) == [1] * 20, "every recipient got exactly one email"
    first_attempts = [
        e.attempt_log[0] for e in StepExecution.objects.filter(run=run, step__kind="send_email")
    ]
    in_flight = [a for a in first_attempts if a["error"].startswith("Interrupted while this item ran")]
    released = [a for a in first_attempts if a["error"].startswith("The batch was interrupted")]
    assert len(in_flight) == 1 and "JobTimeoutException" in in_flight[0]["error"]
    assert len(released) == 19 and all(a["outcome"] == "retry" for a in released)


def web(env: dict[str, str], log: Path, workers: int = 1) -> tuple[subprocess.Popen, int]:
    """The Procfile's web process (gunicorn) on a free port, logging to `log`; (process, port)."""
    port = free_port()
    args = [
        "-c",
        str(ROOT / "config/gunicorn.py"),
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        # gunicorn's default control socket is one path per user (~/.gunicorn/gunicorn.ctl): a second
        # gunicorn on the machine (another test worker's) would take it over.
        "--control-socket",
        str(log.parent / f"{log.stem}.ctl"),
    ]
    return start(args, env, log, program=[str(ROOT / ".venv/bin/gunicorn")]), port


PROCFILE_COMMANDS = {
    "worker": ["rqworker", "default", "low", "--worker-class", "runs.worker.EngineWorker"],
    "scheduler": ["scheduler", "default", "low"],
    "cron": ["cron", "config/cron.py"],
    "listener": ["listen"],
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", [*PROCFILE_COMMANDS, "web"])
def test_no_procfile_process_leaves_a_child_behind_when_sigkilled(kind, redis_conn, smtp, tmp_path):
    env = process_env(smtp.port)
    if kind == "web":
        process, port = web(env, tmp_path / "web.log", workers=2)
        wait_for(lambda: len(psutil.Process(process.pid).children()) == 2, 30, "gunicorn's workers")
        # A worker still importing the app handles the SIGTERM its master's death sends only once the
        # import is done (seconds on a busy machine): kill the master once the app answers.
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), 60, "the app to answer")
    else:
        process = start(PROCFILE_COMMANDS[kind], env, tmp_path / f"{kind}.log")
        wait_for(
            lambda: ProcessHeartbeat.objects.filter(kind=kind, pid=process.pid).exists(), 30, "its heartbeat"
        )
    time.sleep(1.5)  # past start-up: a process that crashed there would leave no child either
    assert process.poll() is None, f"{kind} is not running: see its log"
    children = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    alive = []
    deadline = time.monotonic() + 30  # a generous bound: a child left behind stays forever
    while time.monotonic() < deadline:
        alive = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.2)
    left = [" ".join(c.cmdline()) for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    for child in alive:
        child.kill()
    assert not left, f"{kind} left {left} running"


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_process_queues_jobs_when_they_are_due(redis_conn, smtp, tmp_path):
    import django_rq

    queue = django_rq.get_queue("default")
    queue.enqueue_at(timezone.now() + timedelta(seconds=1), "runs.jobs.sweep", job_id="due-soon")
    assert queue.count == 0
    process = start(PROCFILE_COMMANDS["scheduler"], process_env(smtp.port), tmp_path / "scheduler.log")
    try:
        wait_for(lambda: "due-soon" in queue.job_ids, 30, "the scheduler to queue the due job")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    assert ProcessHeartbeat.objects.get(kind="scheduler", pid=process.pid).stopped_at is not None
