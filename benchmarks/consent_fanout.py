"""Consent fan-out: N recipients of one email step, a fifth of them suppressed or unsubscribed.

    .venv/bin/python benchmarks/consent_fanout.py --n 10000

Creates its own app database and customer database on the PostgreSQL server of DATABASE_URL (dropped at
the end), uses REDIS_URL's server at database --redis-db (flushed), starts a local SMTP sink, and runs the
workflow webhook -> data query (fan-out) -> send email (allow unsubscribe, topic "Tips") with in-process
burst workers, counting every SQL statement. Prints how many were sent and skipped, the send step's
batches, the statements that read the suppression list (at most one per batch), and the time taken.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.fanout import Sink, free_port  # noqa: E402
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--redis-db", type=int, default=12)
    args = parse_with_smoke(parser, n=50)

    import psycopg
    from aiosmtpd.controller import Controller

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rowbell")
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    suffix = uuid.uuid4().hex[:8]
    app_db, customer_db = f"rowbell_bench_consent_{suffix}", f"rowbell_bench_consent_customer_{suffix}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(create_app_database(app_db))
        conn.execute(f'CREATE DATABASE "{customer_db}"')
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
            # The benchmark's customer database shares the server with Rowbell's own.
            "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",
        }
    )
    customer_url = urlunsplit(urlsplit(base)._replace(path=f"/{customer_db}", scheme="postgresql"))
    try:
        run(args.n, sink, customer_url)
    finally:
        controller.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{customer_db}" WITH (FORCE)')


def run(n: int, sink: Sink, customer_url: str) -> None:
    import django

    django.setup()
    import django_rq
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from consent.models import Suppression, Topic, Unsubscribe
    from integrations.models import DataSource
    from runs.engine import start_run
    from runs.models import Delivery
    from tenants.models import Tenant
    from tests.engine.conftest import build_workflow, email, query, webhook, work

    call_command("migrate", verbosity=0)
    from collections import deque

    connection.queries_limit = 10_000_000  # Django keeps the last 9,000 by default: count them all
    connection.queries_log = deque(maxlen=connection.queries_limit)
    django_rq.get_connection("default").flushdb()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    tips = Topic.objects.create(tenant=tenant, name="Tips")
    skipped = [i for i in range(1, n + 1) if i % 5 == 0]  # a fifth: half suppressed, half unsubscribed
    Suppression.objects.bulk_create(
        Suppression(tenant=tenant, address=f"user{i}@example.com", reason="hard_bounce") for i in skipped[::2]
    )
    Unsubscribe.objects.bulk_create(
        Unsubscribe(tenant=tenant, address=f"user{i}@example.com", topic=tips) for i in skipped[1::2]
    )
    source = DataSource.objects.create(tenant=tenant, name="Bench DB", connection_url=customer_url)
    sql = f"SELECT g AS id, 'user' || g || '@example.com' AS email, 'User ' || g AS name FROM generate_series(1, {n}) g"
    step = email(subject="Tip", allow_unsubscribe=True, topic=tips.pk)
    workflow = build_workflow(tenant, webhook([query(source, sql, children=[step])]))
    email_step = workflow.published_version.steps.get(kind="send_email")
    run = start_run(workflow, {}, "bench")
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        work(rounds=200)
    took = time.monotonic() - started
    failed = Delivery.objects.filter(run=run, status="failed").count()
    if not deliveries_made(run):
        raise SystemExit(
            f"Nothing was sent: {run.executions.exclude(error='').values_list('error', flat=True).first()}"
        )
    checks = sum("consent_suppression" in q["sql"] for q in queries)
    batches = sum(
        "SET status = 'running'" in q["sql"] and f"step_id = {email_step.pk}" in q["sql"] for q in queries
    )
    deliveries = Delivery.objects.filter(run=run)
    print(f"recipients            {n:>10,}")
    print(f"sent (SMTP sink)      {sink.count:>10,}")
    print(f"sent (deliveries)     {deliveries.filter(status='sent').count():>10,}")
    print(f"skipped               {deliveries.filter(status='skipped').count():>10,}")
    print(f"failed                {failed:>10,}")
    print(f"send batches          {batches:>10,}   (ENGINE_BATCH_SIZE {settings.ENGINE_BATCH_SIZE})")
    print(f"suppression checks    {checks:>10,}   ({checks / max(batches, 1):.2f} per batch)")
    print(f"statements per item   {len(queries) / n:>10.2f}")
    print(f"end to end            {took:>10.1f} s   ({n / took:,.0f} items/s, one in-process worker)")


def deliveries_made(run) -> bool:
    return run.deliveries.exists()


if __name__ == "__main__":
    main()
