"""Recovery benchmark: SIGKILL every worker in the middle of a fan-out, restart them, time the recovery.

    .venv/bin/python benchmarks/recovery.py --n 5000

Creates its own app and customer databases on DATABASE_URL's server (dropped at the end), uses
REDIS_URL's server at database --redis-db (flushed), and starts a local SMTP sink. Runs the Procfile's
engine processes with default settings: 2 workers (`rqworker --worker-class runs.worker.EngineWorker`),
`manage.py scheduler` and `manage.py cron config/cron.py` (the sweeper every 5 s). One event fans out
to N recipients (webhook -> data query -> send email); --kill-after seconds after the run starts both
workers are SIGKILLed and at once started again. Prints:
- `recovery after kill: X s`: from the kill to the first message the sink receives afterwards (the dead
  workers' claims come back when their heartbeats are older than WORKER_LEASE_SECONDS, at the next sweep);
- `end to end: Y s`: from the start of the run to the last message;
- duplicates (a recipient that got two emails; must be 0) and uncertain messages (a worker killed
  between the provider's answer and its `sent` mark leaves that one message uncertain).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.fanout import Sink, free_port  # noqa: E402
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402

WORKER = [
    sys.executable,
    "manage.py",
    "rqworker",
    "default",
    "low",
    "--worker-class",
    "runs.worker.EngineWorker",
]
SCHEDULER = [sys.executable, "manage.py", "scheduler", "default", "low"]
CRON = [sys.executable, "manage.py", "cron", "config/cron.py"]


class TimedSink(Sink):
    """The fan-out benchmark's sink, plus when the last message arrived."""

    last_at = 0.0

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        self.last_at = time.monotonic()
        return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--kill-after", type=float, default=3.0, help="Seconds after the run starts.")
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--timeout", type=float, default=240.0, help="Give up after this many seconds.")
    args = parse_with_smoke(parser, n=300, kill_after=1.0, timeout=120.0)

    import psycopg
    from aiosmtpd.controller import Controller

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rowbell")
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    suffix = uuid.uuid4().hex[:8]
    app_db, customer_db = f"rowbell_bench_{suffix}", f"rowbell_bench_customer_{suffix}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(create_app_database(app_db))
        conn.execute(f'CREATE DATABASE "{customer_db}"')
    redis_url = urlunsplit(
        urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))._replace(path=f"/{args.redis_db}")
    )
    sink = TimedSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(urlsplit(base)._replace(path=f"/{app_db}")),
        "REDIS_URL": redis_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_USE_TLS": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # The customer database is a second database on Rowbell's own server here.
        "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    customer_url = urlunsplit(urlsplit(base)._replace(path=f"/{customer_db}", scheme="postgresql"))
    processes: list[subprocess.Popen] = []
    try:
        run_benchmark(args, env, sink, customer_url, processes)
    finally:
        for process in processes:
            stop(process)
        controller.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{customer_db}" WITH (FORCE)')


def spawn(command: list[str], env: dict, processes: list[subprocess.Popen]) -> subprocess.Popen:
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    processes.append(process)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def build_workflow(customer_url: str):
    from benchmarks.support import publish_fanout_workflow

    return publish_fanout_workflow(
        customer_url,
        "Recovery",
        "SELECT id, email FROM people",
        "send_email",
        {"to": "{{ item.email }}", "subject": "Hello", "text": "Hi {{ item.id }}"},
    )


def wait_workers(redis, count: int) -> None:
    from rq import Worker

    deadline = time.monotonic() + 60
    while len([w for w in Worker.all(connection=redis) if w.state != "suspended"]) < count:
        if time.monotonic() > deadline:
            raise SystemExit("The RQ workers did not start.")
        time.sleep(0.1)


def run_benchmark(args, env, sink: TimedSink, customer_url: str, processes: list[subprocess.Popen]) -> None:
    import django

    django.setup()
    import django_rq
    import psycopg
    from django.conf import settings
    from django.core.management import call_command

    from runs.engine import start_run
    from runs.models import Delivery, Run, StepExecution

    call_command("migrate", verbosity=0)
    redis = django_rq.get_connection("default")
    redis.flushdb()
    with psycopg.connect(customer_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL)")
        conn.execute(
            f"INSERT INTO people SELECT g, 'user' || g || '@example.com' FROM generate_series(1, {args.n}) g"
        )
    workflow = build_workflow(customer_url)
    print(
        f"N = {args.n}, 2 workers + scheduler + cron, kill both workers {args.kill_after:g} s in; "
        f"WORKER_LEASE_SECONDS={settings.WORKER_LEASE_SECONDS:g}, HEARTBEAT_INTERVAL={settings.HEARTBEAT_INTERVAL:g}, "
        f"SWEEPER_INTERVAL 5 s (config/cron.py), ENGINE_EXECUTION_TIMEOUT={settings.ENGINE_EXECUTION_TIMEOUT}",
        flush=True,
    )
    spawn(SCHEDULER, env, processes)
    spawn(CRON, env, processes)
    workers = [spawn(WORKER, env, processes) for _ in range(2)]
    wait_workers(redis, 2)
    started = time.monotonic()
    run = start_run(workflow, {}, "recovery-bench")
    while time.monotonic() - started < args.kill_after:
        time.sleep(0.01)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    for worker in workers:
        worker.wait(timeout=10)
    # Messages the SMTP server was already receiving when the workers died still arrive for a moment.
    time.sleep(0.05)
    sent_at_kill = sink.count
    print(
        f"killed both workers at {killed_at - started:.1f} s with {sent_at_kill} of {args.n} sent", flush=True
    )
    dead = set(StepExecution.objects.filter(run=run, status="running").values_list("claimed_by", flat=True))
    claimed = StepExecution.objects.filter(run=run, status="running", claimed_by__in=dead)
    print(f"claims left by the dead workers: {claimed.count()} executions", flush=True)
    for _ in range(2):
        spawn(WORKER, env, processes)
    first_after = reclaimed_at = None
    deadline = killed_at + args.timeout
    while time.monotonic() < deadline:
        if first_after is None and sink.count > sent_at_kill:
            first_after = time.monotonic()
        if reclaimed_at is None and not claimed.exists():
            reclaimed_at = time.monotonic()
        status = Run.objects.filter(pk=run.pk).values_list("status", flat=True).first()
        if status in Run.FINISHED:
            break
        time.sleep(0.02)
    else:
        print(f"timed out after {args.timeout:g} s with {sink.count} of {args.n} sent", flush=True)
    finished = time.monotonic()
    last_message = sink.last_at or finished
    statuses = Counter(Delivery.objects.filter(run=run).values_list("status", flat=True))
    received = Counter(sink.recipients)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    run.refresh_from_db()
    print(
        f"recovery after kill: {first_after - killed_at:.1f} s"
        if first_after
        else "recovery after kill: never"
    )
    if reclaimed_at:
        print(f"dead workers' claims back to pending after: {reclaimed_at - killed_at:.1f} s")
    print(f"end to end: {min(last_message, finished) - started:.1f} s (run {run.status})")
    print(f"emails received: {sink.count}, distinct recipients: {len(received)}")
    print(f"duplicates: {duplicates}")
    print(
        f"uncertain: {statuses.get('uncertain', 0)}  (messages by status: {dict(sorted(statuses.items()))})"
    )
    redis.flushdb()


if __name__ == "__main__":
    main()
