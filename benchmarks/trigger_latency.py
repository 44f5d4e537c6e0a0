"""Trigger latency and throughput, and what Rowbell's trigger costs the customer's writes.

    .venv/bin/python benchmarks/trigger_latency.py [--rate 50] [--seconds 20]

It creates its own databases on the PostgreSQL server of --pg-admin-url (Rowbell's, the customer's, and
one for the write-cost test; all dropped at the end), migrates Rowbell's, publishes a workflow whose
database trigger watches `events` (trigger → condition), and starts the real processes: `manage.py
listen` and --workers RQ workers. Then:

1. latency: one writer inserts --rate rows/s for --seconds; for each row, commit → run created and
   commit → first step started (the condition below the trigger, as a worker claims it);
2. throughput: bursts at rising rates (--burst-rates, each for --burst-seconds); a rate is sustained
   when every row has its run within 1 s of the last commit; reports runs/s at the highest one. The
   workers are stopped for this phase (--keep-workers to keep them), so it measures the listener;
3. customer cost: pgbench, 8 clients inserting into a table for --cost-seconds, without a trigger,
   with Rowbell's trigger, and with the NOTIFY option, interleaved --cost-rounds times (medians).

`--capture logical` runs the same phases with the data source on logical decoding instead of triggers
(#27), on a PostgreSQL the benchmark starts with wal_level=logical (the shared server's is `replica`); its
cost phase compares no capture with a replication slot that a reader keeps consuming, as the listener does.

Times are wall-clock on one machine (commit time taken when COMMIT returns, so latencies are slightly
understated by the commit's own round trip).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.pgbench import admin, pgbench  # noqa: E402
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402

INSERT_ORDER = "INSERT INTO orders (email, amount) VALUES ('someone@example.com', 12.50);"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="rows per second in the latency phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency phase")
    parser.add_argument("--burst-rates", default="250,500,1000,2000,4000")
    parser.add_argument("--burst-seconds", type=float, default=5.0)
    parser.add_argument("--cost-seconds", type=float, default=2.0)
    parser.add_argument("--cost-rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phases", default="latency,throughput,cost", help="any of latency,throughput,cost")
    parser.add_argument("--worker-class", default="runs.worker.EngineWorker")
    parser.add_argument(
        "--keep-workers", dest="pause_workers", action="store_false", help="keep workers running in bursts"
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2"))
    parser.add_argument("--capture", choices=["trigger", "logical"], default="trigger")
    return parse_with_smoke(
        parser,
        rate=20.0,
        seconds=1.0,
        burst_rates="100",
        burst_seconds=1.0,
        cost_seconds=1.0,
        cost_rounds=1,
        workers=1,
    )


def database_url(admin_url: str, name: str) -> str:
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(label: str, values: list[float]) -> str:
    figures = ", ".join(f"p{pct} {percentile(values, pct):.1f} ms" for pct in (50, 95, 99))
    return f"{label + ':':32} {figures} ({len(values)} measured)"


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        suffix = uuid.uuid4().hex[:8]
        self.names = {key: f"rowbell_bench_{key}_{suffix}" for key in ("app", "customer", "cost")}
        self.urls = {key: database_url(args.pg_admin_url, name) for key, name in self.names.items()}
        self.processes: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": self.urls["app"],
            "REDIS_URL": args.redis_url,
            "LOG_LEVEL": "WARNING",
            "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",  # customer databases share the server
        }

    # -- set-up -------------------------------------------------------------------------------------
    def setup(self) -> None:
        for key, name in self.names.items():
            admin(
                self.args.pg_admin_url,
                create_app_database(name) if key == "app" else f'CREATE DATABASE "{name}"',
            )
        os.environ.update(
            {"DATABASE_URL": self.urls["app"], "REDIS_URL": self.args.redis_url, "LOG_LEVEL": "WARNING"}
        )
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ.setdefault(
            "DATA_SOURCE_ALLOW_ROWBELL_SERVER", "true"
        )  # customer databases share the server
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        import django_rq

        django_rq.get_connection("default").flushdb()
        with psycopg.connect(self.urls["customer"], autocommit=True) as conn:
            conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, body text)")
        self.workflow = self._publish_workflow()

    def _publish_workflow(self):
        from integrations.models import DataSource
        from tenants.models import Tenant
        from workflows.models import Step, Workflow
        from workflows.publishing import get_or_create_draft, publish

        tenant = Tenant.objects.create(name="Bench", slug="bench")
        source = DataSource.objects.create(tenant=tenant, name="Bench", connection_url=self.urls["customer"])
        workflow = Workflow.objects.create(tenant=tenant, name="Bench")
        draft = get_or_create_draft(workflow)
        config = {"datasource": source.pk, "schema": "public", "table": "events", "operations": ["insert"]}
        root = Step.objects.create(tenant=tenant, version=draft, kind="database_trigger", config=config)
        Step.objects.create(
            tenant=tenant, version=draft, parent=root, kind="condition", config={"expression": "true"}
        )
        publish(workflow)
        workflow.refresh_from_db()
        if self.args.capture == "logical":
            from workflows.database_triggers import switch_capture

            switch_capture(source, DataSource.CaptureMode.LOGICAL)
        return workflow

    def start_processes(self) -> None:
        manage = [sys.executable, str(ROOT / "manage.py")]
        self.processes.append(
            subprocess.Popen([*manage, "listen"], cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL)
        )
        for _ in range(self.args.workers):
            command = [*manage, "rqworker", "default", "low", "--worker-class", self.args.worker_class]
            self.workers.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        self.processes += self.workers
        time.sleep(3)  # interpreters, Django and the listener's first refresh

    # -- phases -------------------------------------------------------------------------------------
    def write_steady(self, rate: float, seconds: float, rows_per_commit: int = 1) -> dict[int, float]:
        """Insert at `rate` rows/s; returns {row id: commit time (epoch seconds)}."""
        commits: dict[int, float] = {}
        interval = rows_per_commit / rate
        with psycopg.connect(self.urls["customer"]) as conn:
            start = time.monotonic()
            tick = 0
            while time.monotonic() - start < seconds:
                ids = conn.execute(
                    "INSERT INTO events (kind) SELECT 'bench' FROM generate_series(1, %s) RETURNING id",
                    (rows_per_commit,),
                ).fetchall()
                conn.commit()
                committed = time.time()
                for (row_id,) in ids:
                    commits[row_id] = committed
                tick += 1
                delay = start + tick * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        return commits

    def wait_for_runs(self, count: int, timeout: float) -> int:
        from runs.models import Run

        deadline = time.monotonic() + timeout
        created = 0
        while time.monotonic() < deadline:
            created = Run.objects.filter(workflow=self.workflow).count()
            if created >= count:
                break
            time.sleep(0.05)
        return created

    def latency(self) -> dict[str, list[float]]:
        from runs.models import Run, StepExecution

        commits = self.write_steady(self.args.rate, self.args.seconds)
        self.wait_for_runs(len(commits), timeout=60)
        deadline = time.monotonic() + 60
        child_filter = {
            "run__workflow": self.workflow,
            "step__parent__isnull": False,
            "started_at__isnull": False,
        }
        while (
            self.args.workers
            and StepExecution.objects.filter(**child_filter).count() < len(commits)
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        runs = {
            run_id: (row_id, created.timestamp())
            for run_id, row_id, created in Run.objects.filter(workflow=self.workflow).values_list(
                "id", "payload__id", "created_at"
            )
        }
        first_step = dict(StepExecution.objects.filter(**child_filter).values_list("run_id", "started_at"))
        trigger_filter = {**child_filter, "step__parent__isnull": True}
        trigger_step = dict(
            StepExecution.objects.filter(**trigger_filter).values_list("run_id", "started_at")
        )
        result = {"run": [], "trigger_step": [], "first_step": [], "missing": len(commits) - len(runs)}
        for run_id, (row_id, created) in runs.items():
            result["run"].append((created - commits[row_id]) * 1000)
            if run_id in trigger_step:
                result["trigger_step"].append((trigger_step[run_id].timestamp() - commits[row_id]) * 1000)
            if run_id in first_step:
                result["first_step"].append((first_step[run_id].timestamp() - commits[row_id]) * 1000)
        return result

    def throughput(self) -> tuple[float, list[str]]:
        from django.db.models import Max

        from runs.models import Run

        best, lines = 0.0, []
        if self.args.pause_workers:
            # The listener's capacity on its own: on 2 cores the workers would take most of the CPU (in
            # production they run on other machines). Their queue is left to grow.
            self.stop(self.workers)
            lines.append(
                "(throughput with the RQ workers stopped: the listener alone turning events into runs)"
            )
        for rate in (float(r) for r in self.args.burst_rates.split(",")):
            before = Run.objects.filter(workflow=self.workflow).count()
            rows_per_commit = max(1, int(rate // 100))  # one commit every ~10 ms
            commits = self.write_steady(rate, self.args.burst_seconds, rows_per_commit)
            written_at = time.time()
            created = self.wait_for_runs(before + len(commits), timeout=60) - before
            last = Run.objects.filter(workflow=self.workflow).aggregate(m=Max("created_at"))["m"].timestamp()
            lag = last - written_at
            achieved = created / (last - min(commits.values()))
            ok = created == len(commits) and lag < 1.0
            lines.append(
                f"burst {rate:>6.0f} rows/s: wrote {len(commits) / self.args.burst_seconds:7.0f}/s, "
                f"{created}/{len(commits)} runs, {achieved:7.0f} runs/s, last run {lag * 1000:6.0f} ms after "
                f"the last commit {'(kept up)' if ok else '(fell behind)'}"
            )
            if not ok:
                break
            best = max(best, achieved)
        return best, lines

    def customer_cost(self) -> dict[str, float]:
        url = self.urls["cost"]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (id bigserial PRIMARY KEY, email text NOT NULL, amount numeric(10,2), "
                "created_at timestamptz NOT NULL DEFAULT now())"
            )
        if self.args.capture == "logical":
            return self.slot_cost(url)
        from integrations.datasources import TriggerSpec, install_trigger, remove_trigger

        source = SimpleNamespace(connection_url=url)
        results: dict[str, list[float]] = {"none": [], "trigger": [], "notify": []}
        # Interleaved rounds and the median of each: a shared machine's noise hits all three alike.
        for label in ("none", "trigger", "notify") * self.args.cost_rounds:
            remove_trigger(source, 1)
            if label != "none":
                install_trigger(
                    source, 1, TriggerSpec(schema="public", table="orders", notify=label == "notify")
                )
            results[label].append(pgbench(url, INSERT_ORDER, int(self.args.cost_seconds)))
        return {label: statistics.median(values) for label, values in results.items()}

    def slot_cost(self, url: str) -> dict[str, float]:
        """No capture, against a slot on the table that a reader consumes as the listener does (peek,
        cast the rows, advance), interleaved like the trigger rounds."""
        import threading

        from integrations.datasources import logical

        results: dict[str, list[float]] = {"none": [], "trigger": []}
        for label in ("none", "trigger") * self.args.cost_rounds:
            stop = threading.Event()
            reader = None
            if label == "trigger":
                with psycopg.connect(url, autocommit=True) as conn:
                    logical.ensure_capture(conn, 1, [("public", "orders")])
                reader = threading.Thread(target=self.read_slot, args=(url, stop), daemon=True)
                reader.start()
            results[label].append(pgbench(url, INSERT_ORDER, int(self.args.cost_seconds)))
            stop.set()
            if reader is not None:
                reader.join(30)
                with psycopg.connect(url, autocommit=True) as conn:
                    logical.drop_capture(conn, 1)
        cost = {label: statistics.median(values) for label, values in results.items()}
        return {**cost, "notify": float("nan")}

    @staticmethod
    def read_slot(url: str, stop) -> None:
        from integrations.datasources import logical

        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                batch = logical.read_changes(conn, 1, 500)
                logical.typed_rows(conn, batch.changes)
                if batch.advance_to:
                    logical.advance(conn, 1, batch.advance_to)
                else:
                    stop.wait(0.01)

    @staticmethod
    def stop(processes: list[subprocess.Popen]) -> None:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def teardown(self) -> None:
        self.stop(self.processes)
        from django.db import connections

        connections.close_all()
        for name in self.names.values():
            admin(self.args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    args = parse_args()
    if args.capture == "logical" and "PG_ADMIN_URL" not in os.environ:
        from tests.engine.outage_support import own_postgres  # a throwaway server with wal_level=logical

        with own_postgres({"wal_level": "logical", "max_replication_slots": "10"}) as server:
            args.pg_admin_url = server.admin_url
            run(args)
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    phases = set(args.phases.split(","))
    bench = Bench(args)
    load = os.getloadavg()[0]
    print(
        f"trigger_latency {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} CPUs, load {load:.2f}, "
        f"capture {args.capture}"
    )
    latency = {"run": [], "trigger_step": [], "first_step": [], "missing": 0}
    best, burst_lines = float("nan"), []
    nan = float("nan")
    cost = {"none": nan, "trigger": nan, "notify": nan}
    try:
        bench.setup()
        if phases & {"latency", "throughput"}:
            bench.start_processes()
        if "latency" in phases:
            latency = bench.latency()
        if "throughput" in phases:
            best, burst_lines = bench.throughput()
        if "cost" in phases:
            cost = bench.customer_cost()
    finally:
        bench.teardown()
    report(args, latency, burst_lines, best, cost)


def report(args, latency: dict, burst_lines: list[str], best: float, cost: dict[str, float]) -> None:
    runs, first = latency["run"], latency["first_step"]
    print(
        f"latency phase: {len(runs)} rows at {args.rate:g} rows/s for {args.seconds:g} s, {latency['missing']} lost"
    )
    print(summary("commit → run created", runs))
    print(summary("commit → trigger step started", latency["trigger_step"]))
    print(summary("commit → first step started", first))
    for line in burst_lines:
        print(line)
    print(
        f"customer inserts/s, 8 writers: no trigger {cost['none']:.0f}, Rowbell trigger {cost['trigger']:.0f}, "
        f"with NOTIFY {cost['notify']:.0f}"
    )
    print(f"NOTIFY option overhead: {(1 - cost['notify'] / cost['none']) * 100:.1f} %")
    print(f"first step p50: {percentile(first, 50):.1f} ms")
    print(f"first step p99: {percentile(first, 99):.1f} ms")
    print(f"sustained events/s: {best:.0f}")
    capture = "Rowbell trigger" if args.capture == "trigger" else "a slot read by a reader (logical)"
    print(f"customer write overhead ({capture}): {(1 - cost['trigger'] / cost['none']) * 100:.1f} %")


if __name__ == "__main__":
    main()
