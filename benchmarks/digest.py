"""Digest benchmark: E events into R × K buckets (recipients × keys), then the same events sent plainly.

    .venv/bin/python benchmarks/digest.py                      # 100,000 events, 100 × 10 buckets
    .venv/bin/python benchmarks/digest.py --events 10000 --per-event 300 --skip-plain

Creates its own app and customer databases on the PostgreSQL server of DATABASE_URL (dropped at the
end), uses REDIS_URL's server at database --redis-db (flushed), starts a local SMTP sink and
--workers real RQ worker processes (the production worker class, plus a statement counter:
benchmarks/support.py `CountingWorker`, which also counts the statements on the digest's own tables).

1. digest: the events are the rows of a customer table; one event starts webhook -> data query (fan-out,
   one item per row) -> digest (key "{{ item.email }}/{{ item.post_id }}", fixed 1 hour) -> send email.
   When every item has joined, the benchmark moves the buckets' release time to now (it travels past
   the window instead of waiting an hour) and wakes the releases. Prints
   `digests: expected E, sent S, duplicates D, items lost L`, the statements per event (all, and the
   digest's own: joins and releases), the peak RSS of any worker process and the time.
2. per event (--per-event N, default 300): N of the events, each its own run (webhook -> digest -> send),
   as events arriving one by one through the API do: what a run costs, against what its join costs.
3. plain: the same E rows through webhook -> data query -> send email, one message per event (the
   comparison: what the digest saves), unless --skip-plain.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fanout import Sink, Workers, free_port  # noqa: E402
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402

DIGEST_KEY = "{{ item.email }}/{{ item.post_id }}"
EVENTS_SQL = "SELECT id, email, post_id, name FROM events ORDER BY id"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=100)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-event", type=int, default=300, help="Events sent as one run each (0: none).")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-plain", action="store_true", help="No plain fan-out for comparison.")
    parser.add_argument("--redis-db", type=int, default=12)
    args = parse_with_smoke(parser, recipients=2, keys=2, events=12, per_event=4, workers=1)

    import psycopg
    from aiosmtpd.controller import Controller

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rowbell")
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    suffix = uuid.uuid4().hex[:8]
    app_db, customer_db = f"rowbell_bench_digest_{suffix}", f"rowbell_bench_digest_customer_{suffix}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(create_app_database(app_db))
        conn.execute(f'CREATE DATABASE "{customer_db}"')
    customer_url = urlunsplit(urlsplit(base)._replace(path=f"/{customer_db}"))
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    redis_url = urlunsplit(
        urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))._replace(path=f"/{args.redis_db}")
    )
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(urlsplit(base)._replace(path=f"/{app_db}")),
        "REDIS_URL": redis_url,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
        "EMAIL_USE_TLS": "0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "LOG_LEVEL": "WARNING",
        "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",
    }
    os.environ.update(env)
    try:
        with psycopg.connect(customer_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE events (id int PRIMARY KEY, email text, post_id int, name text)")
            conn.execute(
                "INSERT INTO events SELECT n, 'user' || (n %% %s) || '@example.com', (n / %s) %% %s, 'c' || n"
                " FROM generate_series(0, %s - 1) AS n",
                [args.recipients, args.recipients, args.keys, args.events],
            )
        run(args, env, sink, customer_url)
    finally:
        controller.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{app_db}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{customer_db}" WITH (FORCE)')


def run(args, env: dict, sink: Sink, customer_url: str) -> None:
    import django

    django.setup()
    import django_rq
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    redis = django_rq.get_connection("default")
    redis.flushdb()
    n = args.events
    expected = min(n, args.recipients * args.keys)

    workers = Workers(args.workers, env, "benchmarks.support.CountingWorker")
    try:
        workers.wait_ready(redis)
        fanned = measure_digest(customer_url, sink, redis, n, expected)
        rss = workers.peak_rss / 2**20
        per_event = measure_per_event(sink, redis, args) if args.per_event else None
        plain = None if args.skip_plain else measure_plain(customer_url, sink, redis, n)
    finally:
        workers.stop()

    print(
        f"digests: expected {expected}, sent {fanned['sent']}, duplicates {fanned['duplicates']},"
        f" items lost {fanned['lost']}"
    )
    print(f"peak worker RSS        {rss:>9.0f} MB   (any worker process, during the digest)")
    print(
        f"statements per event   {fanned['statements'] / n:>9.2f}   (all of it: trigger, fan-out, joins, releases,"
        f" sends; {fanned['statements']:,} for {n:,} events)"
    )
    print(
        f"  the digest's own     {fanned['digest_statements'] / n:>9.2f}   (joins {fanned['join_digest'] / n:.3f},"
        f" releases {fanned['release_digest'] / n:.3f})"
    )
    print(
        f"  joins, engine incl.  {fanned['join_statements'] / n:>9.2f}   releases and sends, engine incl."
        f" {fanned['release_statements'] / n:.2f}"
    )
    print(f"digest end to end      {fanned['seconds']:>9.1f} s   ({n / fanned['seconds']:,.0f} events/s)")
    if per_event:
        m = per_event["events"]
        print(
            f"one run per event      {per_event['statements'] / m:>9.2f}   statements per event ({m:,} runs,"
            f" {per_event['digests']} digests), of which the digest's own {per_event['digest_statements'] / m:.2f}"
            f" and the run's {(per_event['statements'] - per_event['digest_statements']) / m:.2f}"
        )
    if plain:
        print(
            f"plain fan-out          {plain['sent']:>9,} messages for {n:,} events,"
            f" {plain['statements'] / n:.2f} statements per event, {plain['seconds']:.1f} s"
            f" ({n / plain['seconds']:,.0f} events/s)"
        )
        print(
            f"digest/plain           {fanned['seconds'] / plain['seconds']:>9.2f}x time,"
            f" {fanned['statements'] / max(plain['statements'], 1):.2f}x statements,"
            f" {fanned['sent'] / max(plain['sent'], 1):.3f}x messages"
        )


def counters(redis) -> tuple[int, int]:
    from benchmarks.support import DIGEST_STATEMENTS_KEY, STATEMENTS_KEY

    return int(redis.get(STATEMENTS_KEY) or 0), int(redis.get(DIGEST_STATEMENTS_KEY) or 0)


def measure_digest(customer_url: str, sink: Sink, redis, n: int, expected: int) -> dict:
    from runs.engine import start_run
    from runs.models import DigestItem, Run

    workflow = publish_chain(customer_url, "Digest", digest=True)
    sink.reset()
    start = counters(redis)
    started = time.perf_counter()
    run = start_run(workflow, {"post_id": 0}, "digest-1")
    wait_until(lambda: DigestItem.objects.count() >= n, f"{n} joined items")
    wait_until(lambda: not open_joins(run.pk), "the joins to settle")
    joined = counters(redis)
    release_now(run.pk)
    wait_until(lambda: sink.count >= expected, f"{expected} digests")
    wait_until(lambda: Run.objects.get(pk=run.pk).status in Run.FINISHED, "the run to finish")
    seconds = time.perf_counter() - started
    end = counters(redis)
    return {
        **tally(run.pk, n),
        "seconds": seconds,
        "statements": end[0] - start[0],
        "digest_statements": end[1] - start[1],
        "join_digest": joined[1] - start[1],
        "release_digest": end[1] - joined[1],
        "join_statements": joined[0] - start[0],
        "release_statements": end[0] - joined[0],
    }


def measure_per_event(sink: Sink, redis, args) -> dict:
    from runs.engine import start_runs
    from runs.models import DigestItem, Run

    m = min(args.per_event, args.events)
    workflow = publish_chain("", "Digest per event", digest=True, per_event=True)
    items_before = DigestItem.objects.count()
    sink.reset()
    start = counters(redis)
    events = [
        (
            {
                "email": f"user{i % args.recipients}@example.com",
                "post_id": (i // args.recipients) % args.keys,
            },
            f"e{i}",
        )
        for i in range(m)
    ]
    runs = [r.pk for r in start_runs(workflow, events)]
    wait_until(lambda: DigestItem.objects.count() >= items_before + m, f"{m} joined items")
    openers = list(Run.objects.filter(pk__in=runs).values_list("pk", flat=True))
    for run_id in openers:
        wait_until(lambda run_id=run_id: not open_joins(run_id), "the joins to settle")
    for run_id in openers:
        release_now(run_id)
    digests = min(m, args.recipients * args.keys)
    wait_until(lambda: sink.count >= digests, f"{digests} digests")
    wait_until(
        lambda: not Run.objects.filter(pk__in=runs).exclude(status__in=Run.FINISHED).exists(), "the runs"
    )
    end = counters(redis)
    return {
        "events": m,
        "digests": sink.count,
        "statements": end[0] - start[0],
        "digest_statements": end[1] - start[1],
    }


def measure_plain(customer_url: str, sink: Sink, redis, n: int) -> dict:
    from runs.engine import start_run
    from runs.models import Run

    workflow = publish_chain(customer_url, "Plain", digest=False)
    sink.reset()
    start = counters(redis)
    started = time.perf_counter()
    run = start_run(workflow, {"post_id": 0}, "plain-1")
    wait_until(lambda: sink.count >= n, f"{n} messages")
    wait_until(lambda: Run.objects.get(pk=run.pk).status in Run.FINISHED, "the run to finish")
    return {
        "sent": sink.count,
        "seconds": time.perf_counter() - started,
        "statements": counters(redis)[0] - start[0],
    }


def open_joins(run_id: int) -> bool:
    """Anything of the run still to do besides the digests' releases (which wait for their window)."""
    from runs.models import StepExecution

    return (
        StepExecution.objects.filter(run_id=run_id, status__in=StepExecution.OPEN)
        .exclude(item_key__startswith="digest/")
        .exists()
    )


def release_now(run_id: int) -> None:
    """Travel past the window: the run's buckets and their releases are due now, and woken."""
    from django.db import connection

    from integrations import clock
    from runs.engine.enqueue import schedule_next
    from runs.models import DigestBucket, StepExecution

    now = clock.now()
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE runs_digestbucket SET release_at = %s WHERE run_id = %s AND released_at IS NULL",
            [now, run_id],
        )
    releases = StepExecution.objects.filter(run_id=run_id, status="pending", item_key__startswith="digest/")
    releases.update(next_attempt_at=now)
    for step_id in set(DigestBucket.objects.filter(run_id=run_id).values_list("step_id", flat=True)):
        schedule_next(run_id, step_id)


def tally(run_id: int, n: int) -> dict:
    """Sent digests, duplicates (more than one message per bucket) and items lost (events in no sent digest)."""
    from runs.models import Delivery

    sent = Delivery.objects.filter(run_id=run_id, status="sent")
    per_bucket = Counter(sent.values_list("step_execution__input__digest__bucket", flat=True))
    carried = sum(c or 0 for c in sent.values_list("step_execution__input__digest__count", flat=True))
    return {
        "sent": sent.count(),
        "duplicates": sum(count - 1 for count in per_bucket.values()),
        "lost": n - carried,
    }


def wait_until(done, what: str, timeout: float = 7200) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"Timed out waiting for {what}.")
        time.sleep(0.2)


def publish_chain(customer_url: str, name: str, *, digest: bool, per_event: bool = False):
    """A new tenant's published workflow: webhook -> [data query fan-out over `events`] -> [digest] -> email."""
    from integrations.models import DataSource
    from tenants.models import Tenant
    from workflows.models import Step, Workflow
    from workflows.publishing import get_or_create_draft, publish
    from workflows.steps import get_kind

    tenant = Tenant.objects.create(name=name, slug=f"bench-{uuid.uuid4().hex[:6]}")
    workflow = Workflow.objects.create(tenant=tenant, name=name)
    draft = get_or_create_draft(workflow)

    def step(kind, parent, config):
        return Step.objects.create(
            tenant=tenant, version=draft, parent=parent, kind=kind, config=get_kind(kind).validate(config)
        )

    parent = step("webhook_trigger", None, {})
    if not per_event:
        source = DataSource.objects.create(tenant=tenant, name="customer", connection_url=customer_url)
        parent = step("data_query", parent, {"datasource": source.pk, "sql": EVENTS_SQL, "mode": "fanout"})
    if digest:
        parent = step("digest", parent, {"key": DIGEST_KEY, "window": "fixed", "amount": 1, "unit": "hours"})
        step(
            "send_email",
            parent,
            {"to": "{{ item.digest.first.email }}", "subject": "{{ item.digest.count }} new", "text": "x"},
        )
    else:
        step("send_email", parent, {"to": "{{ item.email }}", "subject": "one", "text": "x"})
    publish(workflow)
    workflow.refresh_from_db()
    return workflow


if __name__ == "__main__":
    main()
