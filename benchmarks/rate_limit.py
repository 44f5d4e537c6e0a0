"""Provider rate limit benchmark: N sends from several workers through one provider limit shared by all.

    .venv/bin/python benchmarks/rate_limit.py                      # 10,000 sends, 100/s, 4 workers × 32
    .venv/bin/python benchmarks/rate_limit.py --sends 2000 --throttle-fraction 0.1

Email through django-anymail's Postmark backend (the platform's own provider, EMAIL_RATE_PER_SECOND =
--limit, EMAIL_RATE_BURST = --burst) against benchmarks/latency_server.py, a local API answering each
call after --latency-ms (50). --workers RQ workers (4) keep ENGINE_SEND_CONCURRENCY (32) requests in
flight each; the one token bucket in Redis paces them all. The server notes when each call arrived;
prints `most in any 1 s window: X (limit L, burst B)` and `total: T s (ideal I s)` where I = N / L (the
bucket starts empty), then the 429 phase when --throttle-fraction > 0: the server answers that fraction
of calls 429 with Retry-After: 1; a scheduler process queues the retries; it prints the duplicates
(keys accepted twice) and the sends whose attempts were used up by a 429 (each must need exactly one
counted attempt, since the server refuses nothing else).

Creates its own app and customer databases on DATABASE_URL's server (dropped at the end) and uses
REDIS_URL's server at database --redis-db (2, flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.fanout import ApiServer as _ApiServer  # noqa: E402
from benchmarks.fanout import Workers, free_port  # noqa: E402
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402


class ApiServer(_ApiServer):
    def __init__(self, latency_ms: float, throttle_fraction: float):
        import urllib.request

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "latency_server.py"), "--port", str(self.port),
             "--latency-ms", str(latency_ms), "--throttle-fraction", str(throttle_fraction)],
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

    @property
    def accepted(self) -> int:
        stats = self.stats()
        return stats["count"] - stats["throttled"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--limit", type=float, default=100.0)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--throttle-fraction", type=float, default=0.1, help="0: skip the 429 phase.")
    parser.add_argument(
        "--throttle-sends", type=int, default=None, help="Sends of the 429 phase (default --sends)."
    )
    parser.add_argument("--redis-db", type=int, default=2)
    args = parse_with_smoke(
        parser, sends=40, limit=200.0, workers=1, in_flight=8, latency_ms=5.0, throttle_sends=20
    )

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
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(urlsplit(base)._replace(path=f"/{app_db}")),
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32",
        "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",
        "ENGINE_SEND_CONCURRENCY": str(args.in_flight),
        "EMAIL_RATE_PER_SECOND": str(args.limit),
        "EMAIL_RATE_BURST": str(args.burst),
        "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
    }
    os.environ.update(env)
    customer_url = urlunsplit(urlsplit(base)._replace(path=f"/{customer_db}", scheme="postgresql"))
    servers: list[ApiServer] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        rows = max(args.sends, args.throttle_sends or 0)
        with psycopg.connect(customer_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE commenters (id int PRIMARY KEY, email text NOT NULL, name text)")
            conn.execute(
                "INSERT INTO commenters SELECT g, 'user' || g || '@example.com', 'User ' || g "
                f"FROM generate_series(1, {rows}) g"
            )
        print(
            f"sends {args.sends}, limit {args.limit:g}/s, burst {args.burst}, {args.workers} workers × "
            f"{args.in_flight} in flight, provider latency {args.latency_ms:g} ms",
            flush=True,
        )
        plain = ApiServer(args.latency_ms, 0.0)
        servers.append(plain)
        result = measure(args, env, plain, customer_url, args.sends, "rate-1")
        ideal = args.sends / args.limit
        print(
            f"most in any 1 s window: {result['max_per_second']} (limit {args.limit:g}, burst {args.burst})"
        )
        print(f"total: {result['seconds']:.1f} s (ideal {ideal:.1f} s)")
        print(
            f"within limit + burst: {'yes' if result['max_per_second'] <= args.limit + args.burst else 'NO'}; "
            f"total/ideal: {result['seconds'] / ideal:.3f}; duplicates: {result['duplicates']}; "
            f"most in flight at the server: {result['max_in_flight']}; "
            f"messages that missed their turn and took another: {result['late']}; "
            f"rate lowered by throttling: {result['slowed_to'] or 'never'}",
            flush=True,
        )
        if args.throttle_fraction > 0:
            n = args.throttle_sends or args.sends
            throttling = ApiServer(args.latency_ms, args.throttle_fraction)
            servers.append(throttling)
            result = measure(args, env, throttling, customer_url, n, "rate-429")
            print(
                f"with 429s for {args.throttle_fraction:.0%} of requests: {n} sent in {result['seconds']:.1f} s, "
                f"{result['throttled']} answered 429, duplicates: {result['duplicates']}, "
                f"attempts used up by a 429: {result['attempts_used_by_429']}, "
                f"throttled waits in the attempt logs: {result['throttled_waits']}, "
                f"most in any 1 s window: {result['max_per_second']}",
                flush=True,
            )
    finally:
        for server in servers:
            server.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{customer_db}" WITH (FORCE)')


def measure(args, env, api: ApiServer, customer_url: str, n: int, event_key: str) -> dict:
    import django_rq

    from benchmarks.support import publish_fanout_workflow
    from runs.engine import start_run
    from runs.models import Run, StepExecution

    redis = django_rq.get_connection("default")
    redis.flushdb()
    os.environ["ANYMAIL"] = json.dumps({"POSTMARK_SERVER_TOKEN": "bench", "POSTMARK_API_URL": api.url})
    env = {**env, "ANYMAIL": os.environ["ANYMAIL"]}
    workflow = publish_fanout_workflow(
        customer_url,
        "Rate limit",
        f"SELECT id, email, name FROM commenters WHERE id <= {n}",
        "send_email",
        {"to": "{{ item.email }}", "subject": "Hello {{ item.name }}", "text": "Hi {{ item.name }}."},
    )
    api.reset()
    workers = Workers(args.workers, env, "runs.worker.EngineWorker")
    # As in production: RQ's scheduler queues deferred batches and retries (after a 429: in a second),
    # the cron's sweeper what was lost.
    helpers = [
        subprocess.Popen(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command in (["scheduler", "default", "low"], ["cron", "config/cron.py"])
    ]
    try:
        workers.wait_ready(redis)
        started = time.perf_counter()
        run = start_run(workflow, {"post_id": 7}, event_key)
        deadline = time.monotonic() + max(600, 20 * n / args.limit)
        while api.accepted < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"Timed out with {api.accepted} of {n} messages accepted.")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        deadline = time.monotonic() + 60
        while Run.objects.get(pk=run.pk).status not in Run.FINISHED and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        workers.stop()
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=30)
    stats = api.stats()
    late = int(redis.get("ratelimit:platform:email:late") or 0)
    cut = redis.hget("ratelimit:platform:email", "cut")
    sends = StepExecution.objects.filter(run=run, step__kind="send_email")
    logs = list(sends.values_list("attempts", "attempt_log"))
    return {
        "seconds": seconds,
        "max_per_second": stats["max_per_second"],
        "max_in_flight": stats["max_in_flight"],
        "duplicates": stats["duplicates"],
        "throttled": stats["throttled"],
        "late": late,
        "slowed_to": float(cut) if cut else None,
        # The server refuses nothing but 429s, so any send needing more than one counted attempt lost one to a 429.
        "attempts_used_by_429": sum(1 for attempts, _log in logs if attempts != 1),
        "throttled_waits": sum(1 for _a, log in logs for entry in log if entry.get("outcome") == "throttled"),
    }


if __name__ == "__main__":
    main()
