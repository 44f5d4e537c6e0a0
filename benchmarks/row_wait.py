"""Waits until a row matches: how fast a row's change wakes its wait, and what waiting runs cost while idle.

    .venv/bin/python benchmarks/row_wait.py [--runs 1000] [--rate 100] [--workers 2]

It creates its own databases on the PostgreSQL server of --pg-admin-url (Rowbell's and the customer's,
dropped at the end) and uses Redis database --redis-db (12 to 14 are the benchmarks'), migrates Rowbell's,
publishes webhook → wait "until row.status == 'paid' in orders, at most 3 days" → a condition on each
path, and starts the real processes: `manage.py listen`, `manage.py cron` (the sweeper) and --workers RQ
workers. Then:

1. idle floor: the processes with nothing waiting, for --idle-seconds: their CPU (psutil) and the
   transactions they cost Rowbell's and the customer's databases (pg_stat_database);
2. --runs runs start, each waiting on its own order row; once all are waiting, the same idle measure:
   what 1,000 waiting runs cost (nothing polls them: the figure should be the floor's);
3. latency: one writer runs `UPDATE orders SET status = 'paid'` on each order at --rate rows/s; for each,
   commit → wait decided (the listener's capture evaluated) and commit → the wait's execution went on
   its "Row matched" path (a worker claimed and ran it);
4. floor, interleaved with the updates (every third one, say): --floor-runs webhook runs, start → a
   worker claimed the first step: what any event costs to reach a worker on this machine at that moment,
   with no row involved. The wake's ratio to it is the cost of following the row.

Times are wall-clock on one machine (commit time taken when COMMIT returns).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pgbench import admin  # noqa: E402
from benchmarks.smoke import parse_with_smoke  # noqa: E402
from benchmarks.trigger_latency import percentile  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs, each waiting on its own row")
    parser.add_argument("--rate", type=float, default=100.0, help="updates per second in the latency phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--floor-runs", type=int, default=334, help="webhook runs for the latency floor")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-db", type=int, default=14, help="12 to 14 are reserved for benchmarks")
    return parse_with_smoke(parser, runs=20, rate=20.0, workers=1, idle_seconds=1.0, floor_runs=10)


def database_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        suffix = uuid.uuid4().hex[:8]
        self.names = {key: f"rowbell_bench_rowwait_{key}_{suffix}" for key in ("app", "customer")}
        self.urls = {key: database_url(args.pg_admin_url, name) for key, name in self.names.items()}
        redis_url = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        self.redis_url = urlunsplit(redis_url._replace(path=f"/{args.redis_db}"))
        self.processes: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": self.urls["app"],
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": "WARNING",
            "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",  # the customer database shares the server
        }

    def setup(self) -> None:
        for name in self.names.values():
            admin(self.args.pg_admin_url, f'CREATE DATABASE "{name}"')
        os.environ.update({key: self.env[key] for key in ("DATABASE_URL", "REDIS_URL", "LOG_LEVEL")})
        os.environ["DATA_SOURCE_ALLOW_ROWBELL_SERVER"] = "true"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import django_rq

        django_rq.get_connection("default").flushdb()
        with psycopg.connect(self.urls["customer"], autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, email text, status text NOT NULL)")
            conn.execute(
                "INSERT INTO orders SELECT n, 'u' || n || '@example.com', 'new' FROM generate_series(1, %s) n",
                (self.args.runs,),
            )
        self.workflow = self._publish_workflow()

    def _publish_workflow(self):
        from integrations.models import DataSource
        from tenants.models import Tenant
        from workflows.models import Step, Workflow
        from workflows.publishing import get_or_create_draft, publish
        from workflows.steps import get_kind

        tenant = Tenant.objects.create(name="Bench", slug="bench")
        source = DataSource.objects.create(tenant=tenant, name="Bench", connection_url=self.urls["customer"])
        workflow = Workflow.objects.create(tenant=tenant, name="Bench")
        draft = get_or_create_draft(workflow)

        def step(kind, parent, config, path=""):
            config = get_kind(kind).validate(config)
            return Step.objects.create(
                tenant=tenant, version=draft, parent=parent, kind=kind, config=config, path=path
            )

        root = step("webhook_trigger", None, {})
        wait = step(
            "wait",
            root,
            {
                "mode": "row",
                "datasource": source.pk,
                "table": "orders",
                "key": "{{ item.order_id }}",
                "condition": "row.status == 'paid'",
                "timeout_amount": 3,
                "timeout_unit": "days",
            },
        )
        step("condition", wait, {"expression": "true"}, path="met")
        step("condition", wait, {"expression": "true"}, path="timed_out")
        publish(workflow)
        workflow.refresh_from_db()
        # The floor: a run started by a webhook whose first step a worker runs at once (no row involved).
        self.floor_workflow = Workflow.objects.create(tenant=tenant, name="Floor")
        draft = get_or_create_draft(self.floor_workflow)
        step("webhook_trigger", None, {})
        publish(self.floor_workflow)
        self.floor_workflow.refresh_from_db()
        return workflow

    def start_processes(self) -> None:
        manage = [sys.executable, str(ROOT / "manage.py")]
        quiet = {"cwd": ROOT, "env": self.env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.processes.append(subprocess.Popen([*manage, "listen"], **quiet))
        # The sweeper, as in production: a benchmark database of Redis flushed by someone else loses no work.
        self.processes.append(subprocess.Popen([*manage, "cron", "config/cron.py"], **quiet))
        for _ in range(self.args.workers):
            worker = [*manage, "rqworker", "default", "low", "--worker-class", "runs.worker.EngineWorker"]
            self.processes.append(subprocess.Popen(worker, **quiet))
        self.wait_until_started()

    def wait_until_started(self) -> None:
        """Until the listener polls the data source and every worker listens (interpreters and Django take
        a while on a loaded machine), then a few seconds more: the idle floor must not count start-up."""
        import django_rq
        from rq import Worker

        from integrations.models import DataSource

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            listening = DataSource.objects.filter(listener_status="listening").exists()
            workers = Worker.count(connection=django_rq.get_connection("default"))
            if listening and workers >= self.args.workers:
                break
            time.sleep(0.5)
        time.sleep(5)

    # -- idle cost --------------------------------------------------------------------------------------
    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self.processes:
            try:  # the process's own CPU plus its reaped children's (RQ's work horses)
                times = psutil.Process(process.pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def transactions(self) -> dict[str, int]:
        with psycopg.connect(self.args.pg_admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            rows = conn.execute(
                "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = ANY(%s)",
                (list(self.names.values()),),
            ).fetchall()
        by_name = dict(rows)
        return {key: int(by_name.get(name, 0)) for key, name in self.names.items()}

    def idle(self) -> dict[str, float]:
        """CPU % of the processes and transactions/s on each database over --idle-seconds."""
        seconds = self.args.idle_seconds
        time.sleep(1.0)  # the statistics collector's last flush
        cpu, before = self.cpu_seconds(), self.transactions()
        time.sleep(seconds)
        time.sleep(1.0)
        after = self.transactions()
        cpu_used = self.cpu_seconds() - cpu
        return {
            "cpu_pct": cpu_used / seconds * 100,
            "app_tps": (after["app"] - before["app"]) / (seconds + 1.0),
            "customer_tps": (after["customer"] - before["customer"]) / (seconds + 1.0),
        }

    # -- runs and latency -------------------------------------------------------------------------------
    def start_waiting(self) -> float:
        import django_rq

        from runs.engine import start_runs
        from workflows.models import RowWait

        started = time.monotonic()
        events = [({"order_id": n}, f"order-{n}") for n in range(1, self.args.runs + 1)]
        for chunk in range(0, len(events), 200):
            start_runs(self.workflow, events[chunk : chunk + 200])
        deadline = time.monotonic() + 1800
        while RowWait.objects.filter(outcome="").count() < self.args.runs and time.monotonic() < deadline:
            time.sleep(0.5)
        took = time.monotonic() - started
        queue = django_rq.get_queue("default")
        while (queue.count or queue.started_job_registry.count) and time.monotonic() < deadline:
            time.sleep(0.5)  # the last first-checks' jobs finish: the idle measure that follows is idle
        return took

    def update_rows(self) -> tuple[dict[int, float], dict[str, float]]:
        """The updates at --rate/s; every few ticks, a floor run started right after the update, so that
        both see the same machine. Returns ({order id: commit time}, {floor event key: start time})."""
        from runs.engine import start_run

        commits: dict[int, float] = {}
        floor_started: dict[str, float] = {}
        every = max(1, self.args.runs // max(1, self.args.floor_runs))
        interval = 1.0 / self.args.rate
        with psycopg.connect(self.urls["customer"]) as conn:
            start = time.monotonic()
            for tick, order_id in enumerate(range(1, self.args.runs + 1)):
                conn.execute("UPDATE orders SET status = 'paid' WHERE id = %s", (order_id,))
                conn.commit()
                commits[order_id] = time.time()
                if tick % every == 0:
                    key = f"floor-{tick}"
                    floor_started[key] = time.time()
                    start_run(self.floor_workflow, {"n": tick}, key)
                delay = start + (tick + 1) * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        return commits, floor_started

    def latency(self) -> dict[str, list[float]]:
        from runs.models import StepExecution
        from workflows.models import RowWait

        commits, floor_started = self.update_rows()
        waits = StepExecution.objects.filter(run__workflow=self.workflow, step__kind="wait")
        deadline = time.monotonic() + 120
        while waits.filter(status="succeeded").count() < len(commits) and time.monotonic() < deadline:
            time.sleep(0.1)
        order_of = dict(waits.values_list("id", "input__order_id"))
        decided = {
            order_of[execution_id]: when.timestamp()
            for execution_id, when in RowWait.objects.filter(outcome="met").values_list(
                "execution_id", "decided_at"
            )
        }
        woken = {
            order_of[pk]: when.timestamp()
            for pk, when in waits.filter(status="succeeded").values_list("id", "finished_at")
        }
        floor_runs = StepExecution.objects.filter(run__workflow=self.floor_workflow)
        while (
            floor_runs.filter(status="succeeded").count() < len(floor_started) and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        ran = dict(floor_runs.filter(status="succeeded").values_list("run__event_key", "finished_at"))
        return {
            "floor": [(ran[key].timestamp() - at) * 1000 for key, at in floor_started.items() if key in ran],
            "decided": [(decided[o] - commits[o]) * 1000 for o in commits if o in decided],
            "woken": [(woken[o] - commits[o]) * 1000 for o in commits if o in woken],
            "missing": [o for o in commits if o not in woken],
        }

    def teardown(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        from django.db import connections

        connections.close_all()
        for name in self.names.values():
            admin(self.args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def idle_line(label: str, figures: dict[str, float]) -> str:
    return (
        f"{label + ':':34} CPU {figures['cpu_pct']:5.1f} % of one core (listener, sweeper, workers), "
        f"Rowbell DB {figures['app_tps']:6.1f} transactions/s, customer DB {figures['customer_tps']:6.1f}/s"
    )


def main() -> None:
    args = parse_args()
    print(
        f"row_wait {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    bench = Bench(args)
    try:
        bench.setup()
        bench.start_processes()
        floor = bench.idle()
        took = bench.start_waiting()
        waiting = bench.idle()
        result = bench.latency()
    finally:
        bench.teardown()
    woken, decided, floor_ms = result["woken"], result["decided"], result["floor"]
    print(
        f"{args.runs} runs waiting on their rows after {took:.1f} s ({args.runs * 2 / took:.1f} jobs/s: the "
        f"workers' pace on this machine now); {len(result['missing'])} not woken"
    )
    print(idle_line("idle floor (nothing waiting)", floor))
    print(idle_line(f"idle with {args.runs} waiting runs", waiting))
    ratio = waiting["cpu_pct"] / floor["cpu_pct"] if floor["cpu_pct"] else float("nan")
    print(f"idle CPU of {args.runs} waiting runs / floor: {ratio:.2f}")
    print(
        f"row change → wait decided (listener): p50 {percentile(decided, 50):.0f} ms, "
        f"p99 {percentile(decided, 99):.0f} ms"
    )
    print(
        f"row change → wake: p50 {percentile(woken, 50):.0f} ms, p99 {percentile(woken, 99):.0f} ms "
        f"({len(woken)} updates at {args.rate:g}/s, {args.workers} workers)"
    )
    print(
        f"floor, event → a worker ran its step (webhook run, no row): p50 {percentile(floor_ms, 50):.0f} ms, "
        f"p99 {percentile(floor_ms, 99):.0f} ms ({len(floor_ms)} runs, interleaved with the updates)"
    )
    print(
        f"wake / floor: p50 {percentile(woken, 50) / percentile(floor_ms, 50):.2f}, "
        f"p99 {percentile(woken, 99) / percentile(floor_ms, 99):.2f}"
    )


if __name__ == "__main__":
    main()
