"""Publish preview: N past events through the live version and the draft of a five-step workflow.

    .venv/bin/python benchmarks/publish_preview.py --n 1000

Creates its own app database and customer database on the PostgreSQL server of DATABASE_URL (dropped at
the end) and uses REDIS_URL's server at database --redis-db (12–14 are the benchmarks'; flushed). The
workflow: webhook → data query (the customer's plan, `first` mode) → condition → email "Welcome" →
email "Tips" (topic, allow unsubscribe). N real runs are made first, for real, their batches run in this process by
the engine's `run_batch` (what a worker's job calls), messages going to a local SMTP sink: that is the floor, what the events cost when they
happened. The draft then tightens the condition and rewrites the second email, and the preview job runs
the N events through both versions (messages captured, nothing sent), compares them, and measures the
blast radius. Prints the preview's time, its ratio to the floor, the SQL statements per event, and the
diff's headline figures.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fanout import Sink, free_port  # noqa: E402
from benchmarks.smoke import parse_with_smoke  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--redis-db", type=int, default=13)
    parser.add_argument("--profile", action="store_true", help="print the preview job's top functions")
    args = parse_with_smoke(parser, n=20)

    import psycopg
    from aiosmtpd.controller import Controller

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rowbell")
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    suffix = uuid.uuid4().hex[:8]
    app_db, customer_db = f"rowbell_bench_preview_{suffix}", f"rowbell_bench_preview_customer_{suffix}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{app_db}"')
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
            "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",
            "PUBLISH_PREVIEW_SECONDS": "600",
        }
    )
    customer_url = urlunsplit(urlsplit(base)._replace(path=f"/{customer_db}", scheme="postgresql"))
    with psycopg.connect(customer_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE accounts (email text PRIMARY KEY, plan text NOT NULL);"
            f"INSERT INTO accounts SELECT 'user' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'pro' "
            f"ELSE 'free' END FROM generate_series(1, {args.n}) g"
        )
    try:
        run(args.n, sink, customer_url, args.profile)
    finally:
        controller.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{customer_db}" WITH (FORCE)')


def run(n: int, sink: Sink, customer_url: str, profile: bool) -> None:
    import django

    django.setup()
    import django_rq
    from django.core.management import call_command
    from django.db import connection
    from django.db.backends.signals import connection_created

    from consent.models import Topic, Unsubscribe
    from integrations.models import DataSource
    from runs.engine import start_runs
    from runs.models import Run
    from runs.publish_preview.job import run_preview, start_preview
    from runs.publish_preview.rehearsal import drive
    from tenants.models import Tenant
    from tests.engine.conftest import build_workflow, email, query, webhook
    from workflows.models import PublishPreview, Step
    from workflows.publishing import get_or_create_draft

    call_command("migrate", verbosity=0)
    django_rq.get_connection("default").flushdb()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    tips = Topic.objects.create(tenant=tenant, name="Tips")
    Unsubscribe.objects.bulk_create(
        Unsubscribe(tenant=tenant, address=f"user{i}@example.com", topic=tips) for i in range(7, n + 1, 50)
    )
    source = DataSource.objects.create(tenant=tenant, name="Bench DB", connection_url=customer_url)
    plan = "SELECT plan FROM accounts WHERE email = {{ item.email }}"
    condition = {
        "kind": "condition",
        "name": "Not churned",
        "config": {"expression": "item.plan != 'gone'"},
        "children": [
            email(
                name="Welcome",
                children=[
                    email(
                        name="Tips", subject="Tips for {{ item.name }}", allow_unsubscribe=True, topic=tips.pk
                    )
                ],
            )
        ],
    }
    workflow = build_workflow(tenant, webhook([query(source, plan, mode="first", children=[condition])]))
    events = [({"email": f"user{i}@example.com", "name": f"User {i}"}, f"event-{i}") for i in range(1, n + 1)]

    started = time.monotonic()
    for chunk in range(0, n, 100):
        runs = start_runs(workflow, events[chunk : chunk + 100], queue=False)
        drive([r.pk for r in runs], time.monotonic() + 3600)
    floor = time.monotonic() - started
    real = Run.objects.filter(is_test=False, status="succeeded").count()
    if real != n:
        raise SystemExit(
            f"Only {real} of {n} real runs succeeded: {Run.objects.exclude(status='succeeded').first()}"
        )

    draft = get_or_create_draft(workflow)
    Step.objects.filter(version=draft, kind="condition").update(config={"expression": "item.plan == 'pro'"})
    tips_step = Step.objects.get(version=draft, name="Tips")
    Step.objects.filter(pk=tips_step.pk).update(
        config={**tips_step.config, "text": "New tips, {{ item.name }}"}
    )
    preview = start_preview(workflow, draft, events=n, by="bench")

    statements = itertools.count()

    def counter(execute, sql, params, many, context):
        next(statements)
        return execute(sql, params, many, context)

    def count_on(sender, connection, **kwargs):
        # The preview's pool threads open connections of their own: count their statements too.
        connection.execute_wrappers.append(counter)

    connection_created.connect(count_on)
    started = time.monotonic()
    with connection.execute_wrapper(counter):
        if profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(run_preview, preview.pk)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        else:
            run_preview(preview.pk)
    took = time.monotonic() - started
    connection_created.disconnect(count_on)
    count = next(statements)
    preview = PublishPreview.objects.get(pk=preview.pk)
    if preview.status != "done":
        raise SystemExit(f"The preview failed: {preview.error}")
    result = preview.result
    steps = {s["name"]: s for s in result["steps"]}
    welcome, tips_entry = steps["Welcome"], steps["Tips"]
    print(f"events                          {n:>10,}")
    print(f"real runs (floor)               {floor:>10.1f} s   (the events run once, for real, SMTP sink)")
    print(f"preview of {n} events: {took:.1f} s")
    print(f"ratio to the floor              {took / floor:>10.2f}   (two versions replayed, compared)")
    print(f"statements per event            {count / n:>10.1f}   (both versions, comparison, cleanup)")
    print(
        f"Welcome messages                {welcome['before']['messages']:>6,} → {welcome['after']['messages']:,}"
    )
    print(f"Welcome recipients lost         {welcome['lost_count']:>10,}")
    print(
        f"Tips skipped (unsubscribed)     {tips_entry['before']['skipped']:>6,} → {tips_entry['after']['skipped']:,}"
    )
    print(f"events on another path          {result['paths']['count']:>10,}")
    print(f"sent by the preview (SMTP sink) {sink.count - 2 * n + sum(1 for i in range(7, n + 1, 50)):>10,}")


if __name__ == "__main__":
    main()
