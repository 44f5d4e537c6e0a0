"""Digest: E events into R × K buckets (recipients × keys), then the same events through a plain send.

    .venv/bin/python benchmarks/digest.py --recipients 100 --keys 10 --events 100000

Creates its own app database on the PostgreSQL server of DATABASE_URL (dropped at the end), uses
REDIS_URL's server at database --redis-db (flushed), starts a local SMTP sink, and runs
webhook -> digest (key "{{ item.email }}/{{ item.post_id }}", fixed 1 hour) -> send email with
in-process burst workers, counting every SQL statement; then travels past the window and releases.
Prints `digests: expected E, sent S, duplicates D, items lost L`, the peak RSS of the worker process,
SQL statements per event, and the same events through webhook -> send email (the floor: one message
per event) measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--redis-db", type=int, default=12)
    args = parse_with_smoke(parser, recipients=2, keys=2, events=12)

    import psycopg
    from aiosmtpd.controller import Controller

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rowbell")
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    app_db = f"rowbell_bench_digest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(create_app_database(app_db))
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    redis_url = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))._replace(
        path=f"/{args.redis_db}"
    )
    os.environ.update(
        {
            "DATABASE_URL": urlunsplit(urlsplit(base)._replace(path=f"/{app_db}")),
            "REDIS_URL": urlunsplit(redis_url),
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(port),
            "EMAIL_USE_TLS": "0",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOG_LEVEL": "WARNING",
        }
    )
    try:
        run(args.recipients, args.keys, args.events, sink)
    finally:
        controller.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')


def events_for(recipients: int, keys: int, n: int, prefix: str) -> list[tuple[dict, str]]:
    return [
        (
            {"email": f"user{i % recipients}@example.com", "post_id": (i // recipients) % keys, "n": i},
            f"{prefix}-{i}",
        )
        for i in range(n)
    ]


def run(recipients: int, keys: int, n: int, sink: Sink) -> None:
    import django

    django.setup()
    from collections import deque

    import django_rq
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from integrations import clock
    from runs.engine import start_runs
    from runs.engine.sweeper import sweep
    from runs.models import Delivery, DigestBucket, DigestItem
    from tenants.models import Tenant
    from tests.engine.conftest import Clock, build_workflow, email, webhook, work

    call_command("migrate", verbosity=0)
    connection.queries_limit = 100_000_000
    connection.queries_log = deque(maxlen=connection.queries_limit)
    django_rq.get_connection("default").flushdb()
    fake = Clock(clock.now())
    clock.now = fake  # the benchmark travels past the window instead of waiting an hour
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    digest = {
        "kind": "digest",
        "config": {
            "key": "{{ item.email }}/{{ item.post_id }}",
            "window": "fixed",
            "amount": 1,
            "unit": "hours",
        },
        "children": [
            email(to="{{ item.digest.first.email }}", subject="{{ item.digest.count }} new", text="x")
        ],
    }
    workflow = build_workflow(tenant, webhook([digest]), name="Digest")
    plain = build_workflow(tenant, webhook([email(subject="one", text="x")]), name="Plain")
    expected = min(n, recipients * keys)

    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        for chunk in range(0, n, 5000):
            start_runs(workflow, events_for(recipients, keys, min(5000, n - chunk), f"d{chunk}"))
            work(fake, rounds=10_000)
        fake.travel(hours=1, seconds=30)
        sweep()
        work(fake, rounds=10_000)
    took = time.monotonic() - started
    deliveries = Delivery.objects.filter(run__workflow=workflow)
    per_bucket = Counter(deliveries.values_list("step_execution__input__digest__bucket", flat=True))
    sent = deliveries.filter(status="sent").count()
    duplicates = sum(count - 1 for count in per_bucket.values())
    released_items = DigestItem.objects.filter(bucket__released_at__isnull=False).count()
    lost = n - released_items
    print(f"digests: expected {expected}, sent {sent}, duplicates {duplicates}, items lost {lost}")
    print(f"buckets               {DigestBucket.objects.count():>10,}")
    print(f"SMTP sink             {sink.count:>10,}")
    print(f"statements per event  {len(queries) / n:>10.2f}   (digest: runs, joins and releases)")
    print(f"digest end to end     {took:>10.1f} s   ({n / took:,.0f} events/s, one in-process worker)")

    sink_before = sink.count
    started = time.monotonic()
    with CaptureQueriesContext(connection) as plain_queries:
        for chunk in range(0, n, 5000):
            start_runs(plain, events_for(recipients, keys, min(5000, n - chunk), f"p{chunk}"))
            work(fake, rounds=10_000)
    plain_took = time.monotonic() - started
    print(f"plain fan-out         {sink.count - sink_before:>10,} messages for {n:,} events")
    print(f"statements per event  {len(plain_queries) / n:>10.2f}   (plain send, the floor)")
    print(f"plain end to end      {plain_took:>10.1f} s   ({n / plain_took:,.0f} events/s)")
    print(
        f"ratio digest/plain    {took / plain_took:>10.2f}× time, "
        f"{len(queries) / max(len(plain_queries), 1):.2f}× statements"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak worker RSS       {peak:>10.0f} MB   (the in-process worker is this process)")


if __name__ == "__main__":
    main()
