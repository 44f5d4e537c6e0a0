"""Fan-out benchmark: one event, a data query returning N rows, one message per row.

    .venv/bin/python benchmarks/fanout.py --n 10000
    .venv/bin/python benchmarks/fanout.py --channel http --latency-ms 50 --n 2000
    .venv/bin/python benchmarks/fanout.py --channel esp --latency-ms 50 --n 2000

`--channel smtp` (the default) sends email to a local SMTP sink (`--latency-ms` delays each DATA) over
EMAIL_SMTP_CONNECTIONS connections per batch (`--smtp-connections`);
`--channel http` is an HTTP request step and `--channel esp` email through django-anymail's Postmark
backend, both against a local API (benchmarks/latency_server.py, its own process) that answers each call
after `--latency-ms` (default 50). For those two, the floor is one process with `--floor-concurrency`
(32) requests in flight against the same server (urllib for http, one anymail backend per thread for
esp), the engine's workers use ENGINE_SEND_CONCURRENCY (`--concurrency`, default: the setting's), and
the last line is `engine/concurrent: X` (engine items/s over the floor's); `--compare-serial` also runs
the engine once with ENGINE_SEND_CONCURRENCY=1 (one request at a time per batch, as before).

Creates its own app database and customer database on the PostgreSQL server of DATABASE_URL (dropped
at the end), uses REDIS_URL's server at database --redis-db (flushed), and starts a local SMTP sink.
Three measurements, in one run:
- engine: 2 RQ workers (`manage.py rqworker default low --worker-class ...`, the production worker
  class runs.worker.EngineWorker, which runs jobs in-process, plus a statement counter) run the workflow
  webhook -> data query (fan-out) -> send email; seconds end to end, items/s, peak RSS of any worker
  process (worker or work horse), SQL statements per item (counted in the workers' jobs);
- naive: one plain django-rq job per recipient that renders with Jinja2 and calls send_mail, on 2
  plain forking RQ workers;
- floor: the same N messages from one process over one reused SMTP connection, no engine.
Engine and floor alternate for --rounds rounds (default 3) and their medians are compared.
The last two lines are `engine/naive: X` and `engine/floor: Y` (ratios of items/s).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402


class Sink:
    """An SMTP server that only counts recipients (aiosmtpd, in a thread of this process)."""

    poll_interval = 0.01

    def __init__(self, latency: float = 0.0):
        self.recipients: list[str] = []
        self.lock = threading.Lock()
        self.latency = latency

    async def handle_DATA(self, server, session, envelope):
        if self.latency:
            import asyncio

            await asyncio.sleep(self.latency)
        with self.lock:
            self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"

    def duplicates(self) -> int:
        return len(self.recipients) - len(set(self.recipients))

    def reset(self) -> None:
        with self.lock:
            self.recipients = []

    @property
    def count(self) -> int:
        return len(self.recipients)


class ApiServer:
    """benchmarks/latency_server.py in its own process; counts come from its /stats."""

    poll_interval = 0.05

    def __init__(self, latency_ms: float):
        import urllib.request

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "latency_server.py"), "--port", str(self.port),
             "--latency-ms", str(latency_ms)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("The latency server did not start.") from None
                time.sleep(0.1)

    def stats(self) -> dict:
        import json

        with self.opener.open(self.url + "stats", timeout=10) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        self.opener.open(self.url + "reset", data=b"", timeout=10).close()

    @property
    def count(self) -> int:
        return self.stats()["count"]

    def duplicates(self) -> int:
        stats = self.stats()
        return stats["count"] - stats["unique"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis-db", type=int, default=14)
    parser.add_argument(
        "--skip-naive", action="store_true", help="Only engine and floor (e.g. for N=100,000)."
    )
    parser.add_argument("--skip-floor", action="store_true", help="No floor measurement.")
    parser.add_argument("--channel", choices=("smtp", "http", "esp"), default="smtp")
    parser.add_argument(
        "--latency-ms", type=float, default=None, help="Per call (default 50 for http/esp, 0 for smtp)."
    )
    parser.add_argument("--floor-concurrency", type=int, default=32, help="Requests in flight in the floor.")
    parser.add_argument("--concurrency", type=int, default=None, help="ENGINE_SEND_CONCURRENCY for workers.")
    parser.add_argument(
        "--smtp-connections", type=int, default=None, help="EMAIL_SMTP_CONNECTIONS (per batch) for workers."
    )
    parser.add_argument(
        "--compare-serial",
        action="store_true",
        help="Also run the engine once with ENGINE_SEND_CONCURRENCY=1.",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="Engine and floor runs, alternated; the medians are reported."
    )
    args = parse_with_smoke(parser, n=40, rounds=1, workers=1, skip_naive=True)
    if args.latency_ms is None:
        args.latency_ms = 0.0 if args.channel == "smtp" else 50.0

    import psycopg

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
    from aiosmtpd.controller import Controller

    smtp_sink = Sink(args.latency_ms / 1000 if args.channel == "smtp" else 0.0)
    port = free_port()
    controller = Controller(smtp_sink, hostname="127.0.0.1", port=port)
    controller.start()
    api = ApiServer(args.latency_ms) if args.channel != "smtp" else None
    sink = api or smtp_sink
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(urlsplit(base)._replace(path=f"/{app_db}")),
        "REDIS_URL": redis_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_USE_TLS": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32",
        # The customer database is a second database on Rowbell's own server here.
        "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",
    }
    if args.channel == "esp":
        import json

        env["EMAIL_BACKEND"] = "anymail.backends.postmark.EmailBackend"
        env["ANYMAIL"] = json.dumps({"POSTMARK_SERVER_TOKEN": "bench", "POSTMARK_API_URL": api.url})
    if args.concurrency is not None:
        env["ENGINE_SEND_CONCURRENCY"] = str(args.concurrency)
    if args.smtp_connections is not None:
        env["EMAIL_SMTP_CONNECTIONS"] = str(args.smtp_connections)
    os.environ.update(env)
    customer_url = urlunsplit(urlsplit(base)._replace(path=f"/{customer_db}", scheme="postgresql"))
    try:
        run_benchmark(args, env, sink, customer_url)
    finally:
        controller.stop()
        if api is not None:
            api.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{customer_db}" WITH (FORCE)')


def run_benchmark(args, env, sink: Sink, customer_url: str) -> None:
    import django

    django.setup()
    import django_rq
    import psycopg
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    redis = django_rq.get_connection("default")
    redis.flushdb()
    n = args.n
    with psycopg.connect(customer_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE commenters (id int PRIMARY KEY, email text NOT NULL, name text)")
        conn.execute(
            f"INSERT INTO commenters SELECT g, 'user' || g || '@example.com', 'User ' || g "
            f"FROM generate_series(1, {n}) g"
        )

    from django.conf import settings

    print(
        f"N = {n}, {args.workers} RQ workers, batch size {os.environ.get('ENGINE_BATCH_SIZE', 'default')}, "
        f"channel {args.channel}, latency {args.latency_ms:g} ms, "
        f"ENGINE_SEND_CONCURRENCY {settings.ENGINE_SEND_CONCURRENCY}, "
        f"EMAIL_SMTP_CONNECTIONS {settings.EMAIL_SMTP_CONNECTIONS}",
        flush=True,
    )
    if args.channel != "smtp":
        run_api_benchmark(args, env, sink, customer_url, redis)
        return
    # Engine and floor alternate for --rounds rounds and the medians count: this shared machine's speed
    # drifts by tens of percent within minutes, and a ratio of two runs minutes apart measures the drift.
    engines, floors = [], []
    for round_number in range(1, args.rounds + 1):
        engines.append(measure_engine(args, env, sink, customer_url, redis, f"bench-event-{round_number}"))
        report(f"engine (round {round_number})", n, engines[-1])
        if not args.skip_floor:
            floors.append(measure_floor(n, sink))
            print(f"floor (round {round_number}): {floors[-1]['items_per_s']:.0f} items/s", flush=True)
    engine = median_by_rate(engines)
    engine["peak_rss_mb"] = max(result["peak_rss_mb"] for result in engines)
    report("engine", n, engine)
    naive = None
    if not args.skip_naive:
        naive = measure_naive(args, env, sink, customer_url, redis)
        report("naive", n, naive)
    floor = median_by_rate(floors) if floors else None
    if floor:
        print(
            f"floor: {floor['items_per_s']:.0f} items/s ({floor['seconds']:.2f} s, one process, "
            "one SMTP connection)"
        )
    redis.flushdb()
    print(
        f"engine/naive: {engine['items_per_s'] / naive['items_per_s']:.2f}" if naive else "engine/naive: n/a"
    )
    print(
        f"engine/floor: {engine['items_per_s'] / floor['items_per_s']:.2f}" if floor else "engine/floor: n/a"
    )


def run_api_benchmark(args, env, api: ApiServer, customer_url: str, redis) -> None:
    """--channel http|esp: the engine against one process with --floor-concurrency requests in flight."""
    n = args.n
    if args.compare_serial:
        serial_env = {**env, "ENGINE_SEND_CONCURRENCY": "1"}
        serial = measure_engine(args, serial_env, api, customer_url, redis, "bench-serial")
        report("engine, one request at a time (ENGINE_SEND_CONCURRENCY=1)", n, serial)
    engines, floors = [], []
    for round_number in range(1, args.rounds + 1):
        engines.append(measure_engine(args, env, api, customer_url, redis, f"bench-event-{round_number}"))
        report(f"engine (round {round_number})", n, engines[-1])
        floors.append(measure_api_floor(args, api))
        print(f"floor (round {round_number}): {floors[-1]['items_per_s']:.0f} items/s", flush=True)
    engine = median_by_rate(engines)
    engine["peak_rss_mb"] = max(result["peak_rss_mb"] for result in engines)
    report("engine", n, engine)
    print(f"engine most requests in flight at the server: {max(e['max_in_flight'] for e in engines)}")
    floor = median_by_rate(floors)
    client = "urllib" if args.channel == "http" else "anymail's Postmark backend, one per thread"
    print(
        f"floor: {floor['items_per_s']:.0f} items/s ({floor['seconds']:.2f} s, one process, "
        f"{args.floor_concurrency} requests in flight, {client})"
    )
    if args.compare_serial:
        print(f"serial/floor: {serial['items_per_s'] / floor['items_per_s']:.2f}")
    redis.flushdb()
    print(f"engine/concurrent: {engine['items_per_s'] / floor['items_per_s']:.2f}")


def send_step(channel: str, api_url: str) -> tuple[str, dict]:
    """The workflow's send step for --channel: email (SMTP or an ESP, by EMAIL_BACKEND) or HTTP."""
    if channel == "http":
        return "http_request", {
            "method": "POST",
            "url": api_url + "hook",
            "body": '{"email": {{ item.email|tojson }}, "text": "Hi {{ item.name }}, post {{ run.payload.post_id }}"}',
        }
    return "send_email", {
        "to": "{{ item.email }}",
        "subject": "Hello {{ item.name }}",
        "text": "Hi {{ item.name }}, there is a new comment on post {{ run.payload.post_id }}.",
    }


def measure_api_floor(args, api: ApiServer) -> dict:
    """The same N calls from one process with --floor-concurrency in flight, no engine."""
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from django.core.mail import EmailMessage, get_connection

    api.reset()
    local = threading.local()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def http_call(i: int) -> None:
        body = json.dumps({"email": f"user{i}@example.com", "text": f"Hi User {i}, post 7"}).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"rowbell-{i:032x}"}
        request = urllib.request.Request(api.url + "hook", data=body, headers=headers, method="POST")
        with opener.open(request, timeout=30) as response:
            response.read()

    def esp_call(i: int) -> None:
        if not hasattr(local, "connection"):
            local.connection = get_connection()
            local.connection.open()
        EmailMessage(
            f"Hello User {i}",
            f"Hi User {i}, there is a new comment on post 7.",
            None,
            [f"user{i}@example.com"],
            headers={"X-Rowbell-Key": f"rowbell-{i:032x}"},
            connection=local.connection,
        ).send()

    call = http_call if args.channel == "http" else esp_call
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.floor_concurrency) as pool:
        for result in pool.map(call, range(1, args.n + 1)):
            assert result is None
    seconds = time.perf_counter() - started
    if api.count != args.n:
        raise SystemExit(f"The floor made {api.count} calls, not {args.n}.")
    return {"seconds": seconds, "items_per_s": args.n / seconds}


def median_by_rate(results: list[dict]) -> dict:
    """The round with the median items/s (the lower middle one for an even count)."""
    return dict(sorted(results, key=lambda result: result["items_per_s"])[(len(results) - 1) // 2])


def report(name: str, n: int, result: dict) -> None:
    print(
        f"{name}: {result['seconds']:.2f} s end to end, {result['items_per_s']:.0f} items/s, "
        f"peak worker RSS {result['peak_rss_mb']:.0f} MB, {result['statements'] / n:.2f} SQL statements/item, "
        f"worker CPU {result['cpu_seconds'] * 1000 / n:.2f} ms/item",
        flush=True,
    )


class Workers:
    """N `manage.py rqworker` processes; tracks the peak RSS of any of their processes."""

    def __init__(self, count: int, env: dict, worker_class: str):
        command = [sys.executable, "manage.py", "rqworker", "default", "low", "--worker-class", worker_class]
        log = os.environ.get("BENCH_WORKER_LOG")  # a file prefix, to read the workers' own timings
        self.processes = [
            subprocess.Popen(
                command,
                cwd=ROOT,
                env={**env, "LOG_LEVEL": "INFO"} if log else env,
                stdout=open(f"{log}.{i}", "w") if log else subprocess.DEVNULL,  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            for i in range(count)
        ]
        self.peak_rss = 0
        self.cpu_seconds = 0.0
        self.stopping = False
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _sample(self) -> None:
        import psutil

        while not self.stopping:
            for process in self.processes:
                try:
                    parent = psutil.Process(process.pid)
                    for proc in [parent, *parent.children(recursive=True)]:
                        self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(0.25)  # psutil scans /proc for children: sampling often slows the sink in this process

    def wait_ready(self, redis) -> None:
        from rq import Worker

        deadline = time.monotonic() + 60
        while len(Worker.all(connection=redis)) < len(self.processes):
            if time.monotonic() > deadline:
                raise SystemExit("The RQ workers did not start.")
            time.sleep(0.1)

    def stop(self) -> None:
        import psutil

        self.stopping = True
        for process in self.processes:
            try:  # the worker's own CPU plus its reaped work horses'
                times = psutil.Process(process.pid).cpu_times()
                self.cpu_seconds += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                pass
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for(sink: Sink | ApiServer, n: int, timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while sink.count < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"Timed out with {sink.count} of {n} messages.")
        time.sleep(sink.poll_interval)


def measure_engine(args, env, sink: Sink, customer_url: str, redis, event_key: str) -> dict:
    from benchmarks.support import STATEMENTS_KEY, publish_fanout_workflow
    from runs.engine import start_run
    from runs.models import Run

    kind, config = send_step(args.channel, getattr(sink, "url", ""))
    workflow = publish_fanout_workflow(
        customer_url,
        "Fan-out",
        "SELECT id, email, name FROM commenters WHERE id <> {{ item.author_id }}",
        kind,
        config,
    )

    redis.delete(STATEMENTS_KEY)
    sink.reset()
    workers = Workers(args.workers, env, "benchmarks.support.CountingWorker")
    try:
        workers.wait_ready(redis)
        started = time.perf_counter()
        run = start_run(workflow, {"post_id": 7, "author_id": 0}, event_key)
        wait_for(sink, args.n)
        seconds = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while Run.objects.get(pk=run.pk).status not in Run.FINISHED and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        workers.stop()
    run.refresh_from_db()
    if sink.duplicates():
        raise SystemExit("Duplicate messages in the engine run!")
    if run.status != Run.Status.SUCCEEDED:
        raise SystemExit(f"The engine's run ended {run.status}.")
    return {
        "max_in_flight": sink.stats()["max_in_flight"] if isinstance(sink, ApiServer) else 1,
        "seconds": seconds,
        "items_per_s": args.n / seconds,
        "peak_rss_mb": workers.peak_rss / 2**20,
        "statements": int(redis.get(STATEMENTS_KEY) or 0),
        "status": run.status,
        "cpu_seconds": workers.cpu_seconds,
    }


def measure_naive(args, env, sink: Sink, customer_url: str, redis) -> dict:
    import django_rq
    import psycopg

    sink.reset()
    workers = Workers(args.workers, env, "rq.worker.Worker")
    queue = django_rq.get_queue("default")
    try:
        workers.wait_ready(redis)
        started = time.perf_counter()
        with psycopg.connect(customer_url) as conn:
            rows = conn.execute("SELECT id, email, name FROM commenters WHERE id <> %s", [0]).fetchall()
        with redis.pipeline() as pipe:
            for _id, email, name in rows:
                queue.enqueue(
                    "benchmarks.support.naive_send",
                    {"email": email, "name": name, "post_id": 7},
                    pipeline=pipe,
                    result_ttl=0,
                )
            pipe.execute()
        wait_for(sink, args.n)
        seconds = time.perf_counter() - started
    finally:
        workers.stop()
    return {
        "seconds": seconds,
        "items_per_s": args.n / seconds,
        "peak_rss_mb": workers.peak_rss / 2**20,
        "statements": 0,
        "cpu_seconds": workers.cpu_seconds,
    }


def measure_floor(n: int, sink: Sink) -> dict:
    from django.core.mail import EmailMessage, get_connection

    sink.reset()
    connection = get_connection()
    connection.open()
    started = time.perf_counter()
    for i in range(1, n + 1):
        EmailMessage(
            f"Hello User {i}",
            f"Hi User {i}, there is a new comment on post 7.",
            None,
            [f"user{i}@example.com"],
            connection=connection,
        ).send()
    wait_for(sink, n)
    seconds = time.perf_counter() - started
    connection.close()
    return {"seconds": seconds, "items_per_s": n / seconds}


if __name__ == "__main__":
    main()
