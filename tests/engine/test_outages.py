"""Outages with the Procfile's real processes, on a Redis (and a PostgreSQL) that the test starts, stops
and starts again: no process exits, nothing is sent twice, work resumes within seconds of the return,
and a dead scheduler delays nothing by more than the sweeper's grace."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import timedelta
from pathlib import Path

import django_rq
import psycopg
import pytest
from django.utils import timezone

from runs.engine import enqueue, start_run
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, data_source, email, query, webhook
from tests.engine.outage_support import own_postgres, own_redis, wait_until
from tests.engine.test_liveness import PROCFILE_COMMANDS, ROOT, process_env, start, web
from tests.engine.test_recovery import recipients_table

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server(tmp_path, monkeypatch):
    """The test's own redis-server; this test process's queues point at it too."""
    with own_redis(tmp_path) as server:
        for name in django_rq.settings.QUEUES:
            monkeypatch.setitem(django_rq.settings.QUEUES[name], "URL", server.url)
        enqueue._queue.cache_clear()
        yield server
        enqueue._queue.cache_clear()


def procfile_processes(env: dict[str, str], folder: Path) -> dict[str, subprocess.Popen]:
    """Two workers, the scheduler, the cron and the listener, each logging to `folder`/<name>.log."""
    kinds = {
        "worker-1": "worker",
        "worker-2": "worker",
        "scheduler": "scheduler",
        "cron": "cron",
        "listener": "listener",
    }
    return {name: start(PROCFILE_COMMANDS[kind], env, folder / f"{name}.log") for name, kind in kinds.items()}


def readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def wait_spec(children) -> dict:
    return {"kind": "wait", "config": {"mode": "until", "field": "at"}, "children": children}


def stop_all(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def logs(folder: Path) -> str:
    return "\n".join(f"== {log.name}\n{log.read_text()[-1500:]}" for log in sorted(folder.glob("*.log")))


def dead(processes: dict[str, subprocess.Popen], logs: Path) -> dict[str, str]:
    return {
        name: (logs / f"{name}.log").read_text()[-2000:]
        for name, process in processes.items()
        if process.poll() is not None
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("restart", [True, False], ids=["scheduler-restarted", "scheduler-not-restarted"])
def test_a_sigkilled_scheduler_delays_waits_by_at_most_30_s(restart, redis_server, smtp, tenant_a, tmp_path):
    workflow = build_workflow(tenant_a, webhook([wait_spec([email(subject="later", text="x")])]))
    env = process_env(smtp.port, REDIS_URL=redis_server.url)
    processes = {
        "worker": start(PROCFILE_COMMANDS["worker"], env, tmp_path / "worker.log"),
        "scheduler": start(PROCFILE_COMMANDS["scheduler"], env, tmp_path / "scheduler.log"),
        "cron": start(PROCFILE_COMMANDS["cron"], env, tmp_path / "cron.log"),
    }
    try:
        redis = redis_server.client()
        wait_until(lambda: redis.exists("rq:scheduler-lock:default"), 60, "the scheduler's lock")
        # A 20 s wait (the 15 s, plus room for 40 runs to reach it on a busy 2-core machine).
        due = timezone.now() + timedelta(seconds=20)
        for i in range(40):
            start_run(workflow, {"email": f"w{i}@example.com", "at": due.isoformat()}, f"evt-wait-{i}")
        waiting = StepExecution.objects.filter(step__kind="wait", status="pending")
        wait_until(lambda: waiting.count() == 40, 30, "40 runs in their wait")
        wait_until(lambda: redis.zcard("rq:scheduled:default") >= 40, 30, "the waits' scheduled jobs")
        assert timezone.now() < due - timedelta(seconds=3), "the runs took too long to reach their wait"

        processes.pop("scheduler").send_signal(signal.SIGKILL)
        assert redis.exists("rq:scheduler-lock:default"), "the dead scheduler still holds its lock"
        if restart:
            processes["scheduler"] = start(PROCFILE_COMMANDS["scheduler"], env, tmp_path / "scheduler-2.log")

        try:
            wait_until(lambda: len(smtp.messages) >= 40, 60, "the 40 follow-ups")
        except AssertionError:
            states = Counter(StepExecution.objects.values_list("step__kind", "status", "error"))
            raise AssertionError(f"{len(smtp.messages)} follow-ups; executions: {states}") from None
        late = (timezone.now() - due).total_seconds()
        print(f"the 40 follow-ups were all sent {late:.1f} s after their due time")
        assert late <= 30, f"the follow-ups ran {late:.0f} s late"
        assert sorted(Counter(smtp.recipients()).values()) == [1] * 40
        assert not dead(processes, tmp_path)
    finally:
        stop_all(processes)
    if restart:
        assert "taking over" in (tmp_path / "scheduler-2.log").read_text()


@pytest.mark.django_db(transaction=True)
def test_redis_stopped_during_a_fan_out_with_a_wait_and_a_retry_pending(
    redis_server, smtp, tenant_a, tenant_database, tmp_path
):
    """Redis away for 20 s (the issue's 60 s takes the same code path: the clients retry forever with a
    backoff capped at 2 s) during a 600-recipient fan-out: big enough for several batches of 100 to be
    in flight and their follow-ups to fail, small enough that finishing it after the return measures the
    recovery, not the throughput of a shared 2-core machine (about 30 messages/s with seven processes). Redis returns empty: whatever was queued or
    scheduled comes back from PostgreSQL through the sweeper."""
    outage = 20.0
    recipients_table(tenant_database, 600)
    source = data_source(tenant_a, tenant_database)
    fan_out = build_workflow(
        tenant_a,
        webhook(
            [
                query(source, "SELECT id, email FROM r", children=[email(subject="hi", text="x")]),
                wait_spec([email(to="waited@example.com", subject="later", text="x")]),
            ]
        ),
        name="fan-out and wait",
    )
    retried = build_workflow(
        tenant_a, webhook([email(to="retried@example.com", subject="again", text="x")]), name="retried"
    )
    env = process_env(smtp.port, REDIS_URL=redis_server.url, ENGINE_RETRY_BASE_SECONDS="20")
    processes = procfile_processes(env, tmp_path)
    processes["web"], port = web(env, tmp_path / "web.log")
    try:
        wait_until(lambda: readyz(port)[0] == 200, 60, "/readyz to answer 200")
        smtp.script = ["451 4.3.0 Try again later"]  # the first message fails, transiently
        retry_run = start_run(retried, {}, "evt-retry")
        retry = StepExecution.objects.filter(run=retry_run, step__kind="send_email")
        wait_until(lambda: retry.filter(status="pending", attempts=1).exists(), 30, "the retry to be pending")

        wait_due = timezone.now() + timedelta(seconds=outage + 15)
        run = start_run(fan_out, {"at": wait_due.isoformat()}, "evt-fan-out")
        wait_until(lambda: len(smtp.messages) >= 100, 60, "the fan-out's first messages")
        redis_server.stop()
        stopped_at = time.monotonic()
        sent_at_stop = len(smtp.messages)
        time.sleep(3)
        asked = time.monotonic()
        status, body = readyz(port)
        print(f"/readyz during the outage: {status} in {time.monotonic() - asked:.2f} s")
        assert status == 503 and body["redis"].startswith("failed") and body["database"] == "ok", body
        time.sleep(max(0.0, outage - (time.monotonic() - stopped_at)))
        assert not dead(processes, tmp_path), "a process exited while Redis was away"
        redis_server.start()
        returned = timezone.now()

        wait_until(lambda: readyz(port)[0] == 200, 30, "/readyz to answer 200 again")
        fan_out_done = StepExecution.objects.filter(
            run=run, step__parent__kind="data_query", status="succeeded"
        )
        took = wait_until(lambda: fan_out_done.count() == 600, 90, "the fan-out to finish", step=0.5)
        print(f"sent when Redis stopped: {sent_at_stop}; fan-out finished {took:.1f} s after Redis returned")
        assert took <= 30, f"the fan-out finished {took:.0f} s after Redis returned: {logs(tmp_path)}"
        wait_until(lambda: retry.filter(status="succeeded").exists(), 60, "the retry")
        # Sent, not only begun: the delivery row is written before the mail server has the message, and
        # counting the mail server's recipients in between read 601 of 602.
        waited_delivery = Delivery.objects.filter(
            run=run, recipient="waited@example.com", status=Delivery.Status.SENT
        )
        wait_until(waited_delivery.exists, 60, "the wait's follow-up")
        waited = waited_delivery.get()
        late = (waited.created_at - wait_due).total_seconds()
        print(f"the wait's follow-up ran {late:.1f} s after its due time")
        assert abs(late) <= 30, (waited.created_at, wait_due)
        assert (timezone.now() - returned).total_seconds() < 60

        assert not dead(processes, tmp_path), "a process exited after Redis returned"
        sent_to = Counter(smtp.recipients())
        assert max(sent_to.values()) == 1, "a recipient got two emails"
        assert len(sent_to) == 602 and sent_at_stop < 600
        finished = Run.objects.filter(pk=run.pk, status=Run.Status.SUCCEEDED)
        wait_until(finished.exists, 30, "the run to finish")
    finally:
        stop_all(processes)
    for name in ("worker-1", "worker-2", "scheduler", "cron"):
        log = (tmp_path / f"{name}.log").read_text()
        assert log.count("Redis is unreachable") == 1, (
            f"{name} logged the outage {log.count('Redis is unreachable')} times"
        )
        assert "Redis is back" in log, name


SETUP_SCRIPT = """
from tenants.models import Tenant
from tests.engine.conftest import build_workflow, data_source, email, query, webhook
tenant = Tenant.objects.create(name="Acme", slug="acme")
source = data_source(tenant, {customer!r})
workflow = build_workflow(
    tenant, webhook([query(source, "SELECT id, email FROM r", children=[email(subject="hi", text="x")])])
)
print(workflow.pk)
"""


def test_postgresql_stopped_during_a_fan_out_no_process_exits_and_a_worker_started_meanwhile_joins(
    smtp, tmp_path
):
    """PostgreSQL (the test's own cluster) stopped for 15 s (the issue's 60 s takes the same path: the
    heartbeats and the worker retry with a backoff capped at 2 s) during a 1,000-recipient fan-out, under
    every Procfile process, and a worker started while it is away: all alive afterwards, the new worker
    beats once the database is back, nothing is sent twice, the jobs that failed meanwhile are queued
    again, the run finishes soon after the return with no Delivery left `sending` (the interrupted
    batches give their claims back: nothing waits for the execution timeout), and `/readyz` says 503
    for the database during the outage and 200 after."""
    with own_postgres() as postgres, own_redis(tmp_path) as redis_server:
        customer = postgres.create_database("customer")
        recipients_table(customer, 1000)
        env = {
            **process_env(smtp.port, REDIS_URL=redis_server.url, DATA_SOURCE_ALLOW_ROWBELL_SERVER="true"),
            "DATABASE_URL": postgres.create_database("rowbell"),
        }
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        script = SETUP_SCRIPT.format(customer=customer)
        workflow_id = subprocess.run(
            [*manage, "shell", "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        processes = procfile_processes(env, tmp_path)
        processes["web"], port = web(env, tmp_path / "web.log")
        rowbell = psycopg.connect(postgres.url("rowbell"), autocommit=True)
        beats = "SELECT count(*) FROM runs_processheartbeat WHERE stopped_at IS NULL"
        try:
            wait_until(lambda: rowbell.execute(beats).fetchone()[0] == 5, 60, "every process's heartbeat")
            wait_until(lambda: readyz(port)[0] == 200, 60, "/readyz to answer 200")
            subprocess.run([*manage, "trigger_workflow", workflow_id], cwd=ROOT, env=env, check=True)
            wait_until(lambda: len(smtp.messages) >= 150, 60, "the fan-out's first messages")
            rowbell.close()
            postgres.stop()
            stopped_at = time.monotonic()
            sent_at_stop = len(smtp.messages)
            time.sleep(2)
            status, body = readyz(port)
            assert status == 503 and body["database"].startswith("failed") and body["redis"] == "ok", body
            processes["late-worker"] = start(PROCFILE_COMMANDS["worker"], env, tmp_path / "late-worker.log")
            time.sleep(max(0.0, 15 - (time.monotonic() - stopped_at)))
            assert not dead(processes, tmp_path), (
                f"a process exited while PostgreSQL was away: {logs(tmp_path)}"
            )
            postgres.start()
            rowbell = psycopg.connect(postgres.url("rowbell"), autocommit=True)

            workers = (
                "SELECT count(*) FROM runs_processheartbeat WHERE kind = 'worker' AND stopped_at IS NULL"
            )
            wait_until(lambda: rowbell.execute(workers).fetchone()[0] == 3, 60, "the late worker's heartbeat")
            wait_until(lambda: readyz(port)[0] == 200, 30, "/readyz to answer 200 again")
            # Every run finishes soon after the return: the batches in flight when the database went away
            # give their claims back as soon as it returns (their release is retried until written), so
            # nothing waits for ENGINE_EXECUTION_TIMEOUT.
            open_runs = "SELECT count(*) FROM runs_run WHERE status IN ('pending', 'running')"
            try:
                took = wait_until(lambda: rowbell.execute(open_runs).fetchone()[0] == 0, 120, "the run", 0.5)
            except AssertionError:
                states = rowbell.execute(
                    "SELECT status, claimed_by, left(error, 120), count(*) FROM runs_stepexecution GROUP BY 1, 2, 3"
                ).fetchall()
                raise AssertionError(f"a run left open: {states}\n{logs(tmp_path)}") from None
            print(
                f"sent when PostgreSQL stopped: {sent_at_stop}; the run finished {took:.1f} s after the return"
            )
            assert not dead(processes, tmp_path), (
                f"a process exited after PostgreSQL returned: {logs(tmp_path)}"
            )
            statuses = dict(
                rowbell.execute("SELECT status, count(*) FROM runs_delivery GROUP BY status").fetchall()
            )
        finally:
            rowbell.close()
            stop_all(processes)
        sent_to = Counter(smtp.recipients())
        assert max(sent_to.values()) == 1, "a recipient got two emails"
        assert statuses.get("sending", 0) == 0, f"deliveries left sending: {statuses}"
        assert statuses.get("sent", 0) + statuses.get("uncertain", 0) >= 1000, statuses
        assert len(sent_to) >= statuses.get("sent", 0)
        for name in ("worker-1", "worker-2", "late-worker", "scheduler", "cron", "listener"):
            log = (tmp_path / f"{name}.log").read_text()
            assert log.count("PostgreSQL is unreachable") == 1, f"{name} did not log the outage once:\n{log}"
            assert "PostgreSQL is back" in log, name
