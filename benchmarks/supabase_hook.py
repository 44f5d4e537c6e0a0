"""Supabase's Send Email hook under load: 50 signed requests at once against gunicorn, with an RQ worker
sending the emails to a local SMTP sink meanwhile.

    .venv/bin/python benchmarks/supabase_hook.py [--requests 50] [--rounds 3]

It creates its own database (`rowbell_bench_supabase`, dropped at the end) and uses Redis database 15
(REDIS_URL to change it), migrates, publishes the auth-email starter workflow, starts gunicorn (2 workers
× 8 threads, as config/gunicorn.py) and one `rqworker`, and then per round sends --requests signed
magic-link requests at once. Printed: each round's answer times (median, 95th percentile, worst), next to a
floor measured the same way in the same run — as many concurrent GET /healthz (the cheapest view: no
database work) — and the time until the last of the emails reached the SMTP sink. Supabase's hook waits a
few seconds at most; the target is every answer under 1 s while the sends go on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.smoke import parse_with_smoke  # noqa: E402

DB_NAME = "rowbell_bench_supabase"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    return parse_with_smoke(parser, requests=5, rounds=1)


class Sink:
    """An SMTP server that counts what it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from tests.support import free_port

        self.received = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received += 1
        return "250 OK"


def environment(args: argparse.Namespace, sink: Sink) -> dict[str, str]:
    url = urlunsplit(urlsplit(args.pg_admin_url)._replace(path=f"/{DB_NAME}"))
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(sink.port),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }


def setup(args: argparse.Namespace, env: dict[str, str]):
    with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(env)
    import django

    django.setup()
    import django_rq
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    django_rq.get_connection("default").flushdb()
    from tenants.models import Tenant
    from workflows.publishing import publish
    from workflows.starters import create_auth_email_starter

    workflow = create_auth_email_starter(Tenant.objects.create(name="Bench", slug="bench"))
    publish(workflow)
    workflow.refresh_from_db()
    return workflow


def concurrently(count: int, call) -> list[float]:
    """Seconds each of `count` simultaneous calls took to be answered."""
    start = threading.Barrier(count)

    def timed(n: int) -> float:
        start.wait()
        began = time.perf_counter()
        call(n)
        return time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(timed, range(count)))


def describe(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return (
        f"{label:<22} median {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
        f"worst {ordered[-1] * 1000:7.1f} ms"
    )


def main() -> None:
    args = parse_args()
    sink = Sink()
    sink.controller.start()
    env = environment(args, sink)
    workflow = setup(args, env)
    from integrations.supabase_hook import as_json, hook_secret, sample_body, sign
    from tests.support import free_port

    port = free_port()
    web = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "-c",
            "config/gunicorn.py",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "8",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    worker = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/python"),
            "manage.py",
            "rqworker",
            "default",
            "low",
            "--worker-class",
            "runs.worker.EngineWorker",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        secret = hook_secret(workflow.webhook_secret)

        def hook(n: int) -> None:
            body = sample_body()
            body["user"]["email"] = f"user{uuid.uuid4().hex[:8]}@example.com"
            body["email_data"]["email_action_type"] = "magiclink"
            raw = as_json(body)
            headers = sign(secret, raw, f"msg_{uuid.uuid4().hex}", int(time.time()))
            answer = requests.post(
                f"{base}/hooks/supabase/{workflow.pk}/", data=raw, headers=headers, timeout=30
            )
            assert answer.status_code == 200, answer.text

        def floor(n: int) -> None:
            assert requests.get(f"{base}/healthz", timeout=30).status_code == 200

        concurrently(4, hook)  # warm-up: imports, connections
        concurrently(4, floor)
        expected = 4
        print(f"{args.requests} concurrent requests, gunicorn 2 workers x 8 threads, one RQ worker sending")
        for round_number in range(1, args.rounds + 1):
            floor_times = concurrently(args.requests, floor)
            started = time.perf_counter()
            hook_times = concurrently(args.requests, hook)
            expected += args.requests
            while sink.received < expected and time.perf_counter() - started < 300:
                time.sleep(0.05)
            sent_after = time.perf_counter() - started
            ratio = statistics.median(hook_times) / statistics.median(floor_times)
            print(f"round {round_number}")
            print("  " + describe("floor GET /healthz", floor_times))
            print("  " + describe("Send Email hook", hook_times) + f"   ({ratio:.1f}x the floor's median)")
            print(
                f"  all {args.requests} emails at the SMTP sink {sent_after:.2f} s after the first request "
                f"(received {sink.received - expected + args.requests}/{args.requests})"
            )
    finally:
        for process in (web, worker):
            process.terminate()
            process.wait(10)
        sink.controller.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
