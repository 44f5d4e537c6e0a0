"""Activity log on a large history: server time of the runs list, filtered lists and a large run's page.

    .venv/bin/python benchmarks/activity.py [--executions 1000000] [--big-run 100000] [--repeat 7] [--keep]

It creates its own database (`rowbell_bench_activity`, or $BENCH_DB_NAME, on the server of --pg-admin-url;
dropped at the end unless --keep), migrates it and seeds ONE tenant with set-based SQL (INSERT ... SELECT
generate_series): a published workflow webhook → [Welcome email, Team email], runs of three executions
each over 90 days (2% failed, a few retrying) with a delivery per Welcome email and its tracking events
(delivered, opened, bounced, complained), plus one run that fanned
out to --big-run items. Then it requests each page (the activity pages, and the pages with charts: dashboard, a workflow's runs and
messages, the builder) through Django's test client as a signed-in member
(middleware, views, queries and templates: the whole server side, no network) and prints the median
and worst of --repeat timings after one warm-up request, with the number of SQL queries. Target: each
under 200 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("BENCH_DB_NAME", "rowbell_bench_activity")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=1_000_000, help="total executions to seed")
    parser.add_argument("--big-run", type=int, default=100_000, help="items of the one large run")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database (and reuse it next time)")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    return parser.parse_args()


def setup_django(admin_url: str, fresh: bool) -> None:
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{DB_NAME}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')
        if not exists or fresh:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOG_LEVEL": "WARNING",
            # Its customer databases share Rowbell's local server.
            "DATA_SOURCE_ALLOW_ROWBELL_SERVER": "true",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client then records each response's context (page cursors)


def seed(executions: int, big_run: int):
    """One tenant, one published workflow, and `executions` executions; returns (member, big run id)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from tenants.models import Membership, Role, Tenant
    from workflows.models import Step, Workflow
    from workflows.publishing import get_or_create_draft, publish

    tenant, created = Tenant.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user = get_user_model().objects.filter(username="bench").first()
    if not created:
        from runs.models import Run

        return user, Run.objects.get(event_key="big-fanout").pk
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password-123")
    Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    workflow = Workflow.objects.create(tenant=tenant, name="Onboarding")
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=tenant, version=draft, kind="webhook_trigger", config={})
    email = {"to": "{{ item.email }}", "subject": "Hi", "text": "Hi", "html": ""}
    Step.objects.create(
        tenant=tenant, version=draft, parent=root, position=0, kind="send_email", name="Welcome", config=email
    )
    Step.objects.create(
        tenant=tenant, version=draft, parent=root, position=1, kind="send_email", name="Team", config=email
    )
    version = publish(workflow, user)
    steps = {s.name: s.pk for s in version.steps.all()}
    runs = (executions - big_run) // 3
    params = {
        "t": tenant.pk,
        "w": workflow.pk,
        "v": version.pk,
        "runs": runs,
        "big": big_run,
        "root": steps[""],
        "welcome": steps["Welcome"],
        "team": steps["Team"],
    }
    started = time.perf_counter()
    with connection.cursor() as cur:
        for statement in SEED_SQL:
            cur.execute(statement, params)
        cur.execute(
            "ANALYZE runs_run; ANALYZE runs_stepexecution; ANALYZE runs_delivery; ANALYZE runs_deliveryevent"
        )
        cur.execute("SELECT count(*) FROM runs_stepexecution WHERE tenant_id = %s", [tenant.pk])
        total = cur.fetchone()[0]
        cur.execute("SELECT id FROM runs_run WHERE event_key = 'big-fanout'")
        big_id = cur.fetchone()[0]
    print(f"seeded {runs:,} runs, {total:,} executions in {time.perf_counter() - started:.1f} s")
    return user, big_id


# Run n is created (n seconds) before now, so 90 days hold ~ 300,000 runs; every 50th failed, every
# 997th is still retrying its Team email.
SEED_SQL = [
    """INSERT INTO runs_run (tenant_id, workflow_id, version_id, event_key, label, status, is_test, payload,
                             options, created_at, finished_at)
       SELECT %(t)s, %(w)s, %(v)s, 'signup-' || n, 'user' || n || '@example.com',
              CASE WHEN n %% 997 = 0 THEN 'running' WHEN n %% 50 = 0 THEN 'partial' ELSE 'succeeded' END,
              false, jsonb_build_object('email', 'user' || n || '@example.com'), '{}',
              now() - make_interval(secs => n * 26), now() - make_interval(secs => n * 26 - 2)
       FROM generate_series(1, %(runs)s) AS n""",
    """INSERT INTO runs_stepexecution (tenant_id, run_id, step_id, item_key, input, output, status, attempts,
                                      next_attempt_at, started_at, finished_at, error, created_at, claimed_by,
                                      attempt_log)
       SELECT r.tenant_id, r.id, s.step_id, '0', r.payload, r.payload,
              CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN 'pending'
                   WHEN s.step_id = %(welcome)s AND r.status = 'partial' THEN 'failed' ELSE 'succeeded' END,
              CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN 2 ELSE 1 END,
              CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN now() + interval '5 minutes' END,
              r.created_at, r.finished_at,
              CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN 'SMTP 451: try again later'
                   WHEN s.step_id = %(welcome)s AND r.status = 'partial' THEN 'SMTP 550: no such mailbox'
                   ELSE '' END,
              r.created_at, '', '[]'
       FROM runs_run r CROSS JOIN (VALUES (%(root)s), (%(welcome)s), (%(team)s)) AS s(step_id)
       WHERE r.tenant_id = %(t)s""",
    """INSERT INTO runs_delivery (tenant_id, step_execution_id, run_id, channel, recipient, status, content,
                                 provider_id, error, created_at, sent_at)
       SELECT e.tenant_id, e.id, e.run_id, 'email', e.input->>'email',
              CASE WHEN e.status = 'failed' THEN 'failed' ELSE 'sent' END,
              jsonb_build_object('to', e.input->>'email', 'subject', 'Welcome!', 'text', 'Hi', 'html', '<p>Hi</p>'),
              '', e.error, e.created_at, e.finished_at
       FROM runs_stepexecution e WHERE e.tenant_id = %(t)s AND e.step_id = %(welcome)s""",
    # Tracking events for the messages charts: every sent message delivered, every third opened, every
    # 100th bounced, every 500th complained (a minute after it was sent).
    """INSERT INTO runs_deliveryevent (tenant_id, delivery_id, kind, bounce, event_key, occurred_at, recipient,
                                      description, mta_response, click_url, created_at)
       SELECT d.tenant_id, d.id, k.kind, CASE WHEN k.kind = 'bounced' THEN 'hard' ELSE '' END,
              k.kind || '-' || d.id, d.created_at + interval '1 minute', d.recipient, '', '', '', d.created_at
       FROM runs_delivery d
       CROSS JOIN (VALUES ('delivered', 1), ('opened', 3), ('bounced', 100), ('complained', 500)) AS k(kind, every)
       WHERE d.tenant_id = %(t)s AND d.status = 'sent' AND d.id %% k.every = 0""",
    """INSERT INTO runs_run (tenant_id, workflow_id, version_id, event_key, label, status, is_test, payload,
                             options, created_at)
       VALUES (%(t)s, %(w)s, %(v)s, 'big-fanout', '', 'running', false, '{}', '{}', now() - interval '1 hour')""",
    """INSERT INTO runs_stepexecution (tenant_id, run_id, step_id, item_key, input, output, status, attempts,
                                      error, created_at, started_at, finished_at, claimed_by, attempt_log)
       SELECT %(t)s, r.id, CASE WHEN n = 0 THEN %(root)s ELSE %(welcome)s END,
              CASE WHEN n = 0 THEN '0' ELSE '0/' || n END, jsonb_build_object('n', n), NULL,
              CASE WHEN n %% 10 = 0 THEN 'pending' WHEN n %% 101 = 0 THEN 'failed' ELSE 'succeeded' END,
              1, CASE WHEN n %% 101 = 0 AND n %% 10 <> 0 THEN 'timeout' ELSE '' END,
              r.created_at, r.created_at, r.created_at + interval '1 second', '', '[]'
       FROM runs_run r CROSS JOIN generate_series(0, %(big)s - 1) AS n
       WHERE r.event_key = 'big-fanout' AND r.tenant_id = %(t)s""",
]


def measure(client, label: str, url: str, params: dict, repeat: int, headers: dict | None = None) -> float:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = headers or {}
    response = client.get(url, params, **headers)  # warm-up (plans, template loading)
    assert response.status_code in (200, 204), (url, response.status_code)
    timings = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            client.get(url, params, **headers)
            timings.append((time.perf_counter() - started) * 1000)
    median = statistics.median(timings)
    print(f"{label:<46} median {median:7.1f} ms   worst {max(timings):7.1f} ms   {len(queries):3d} queries")
    return median


def main() -> None:
    args = parse_args()
    setup_django(args.pg_admin_url, fresh=not args.keep)
    from django.test import Client
    from django.urls import reverse

    user, big_id = seed(args.executions, args.big_run)
    client = Client()
    client.force_login(user)
    runs, messages = reverse("runs:run_list"), reverse("runs:message_list")
    first = client.get(runs)
    deep_cursor = None
    for _ in range(200):  # walk 200 pages to get a cursor 10,000 runs deep (or as deep as a small seed goes)
        after = (deep_cursor or first).context["page"].next_cursor
        if not after:
            break
        deep_cursor = client.get(runs, {"after": after})
    deep_cursor = deep_cursor or first
    workflow_id = first.context["rows"][0]["run"].workflow_id
    cases = [
        ("runs list, newest page", runs, {}),
        (
            "runs list, 10,000 runs deep (keyset)",
            runs,
            {"after": deep_cursor.context["page"].next_cursor or ""},
        ),
        ("runs filtered: status=partial", runs, {"status": "partial"}),
        ("runs filtered: retrying", runs, {"status": "retrying"}),
        (
            "runs filtered: workflow + date range",
            runs,
            {
                "workflow": workflow_id,
                "date_from": "2000-01-01",
                "date_to": "2100-01-01",
            },
        ),
        ("runs searched by recipient", runs, {"q": "user4242@example.com"}),
        ("runs searched by event key", runs, {"q": "signup-4242"}),
        (f"large run's page ({args.big_run:,} items)", reverse("runs:run_detail", args=[big_id]), {}),
        (
            "large run's page, failed items only",
            reverse("runs:run_detail", args=[big_id]),
            {"status": "failed"},
        ),
        ("messages list, newest page", messages, {}),
        ("messages filtered: failed", messages, {"status": "failed"}),
        # Pages with charts (runs per hour, messages per day, per-node counts): one aggregate query each.
        ("dashboard (runs chart)", reverse("workflows:dashboard"), {}),
        ("workflow's runs (runs chart)", reverse("runs:workflow_runs", args=[workflow_id]), {}),
        ("workflow's messages", reverse("runs:workflow_messages", args=[workflow_id]), {}),
        ("messages chart (fetched by the page)", reverse("runs:messages_chart"), {}),
        ("workflow's messages chart", reverse("runs:workflow_messages_chart", args=[workflow_id]), {}),
        (
            "workflow's step counts (fetched by the page)",
            reverse("runs:workflow_tracking_counts", args=[workflow_id]),
            {},
        ),
        ("builder (node counts, 7 days)", reverse("workflows:builder", args=[workflow_id]), {}),
    ]
    print(f"server time per page, {args.repeat} requests each (target < 200 ms):")
    worst = max(measure(client, label, url, params, args.repeat) for label, url, params in cases)
    # The large run's page polls itself while the run is open; an unchanged run answers 204.
    big_page = client.get(reverse("runs:run_detail", args=[big_id]))
    poll = big_page.context["poll_url"]
    htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "run-live"}
    measure(client, "large run's poll, nothing changed (204)", poll, {}, args.repeat, htmx)
    print(f"slowest median: {worst:.1f} ms — {'within' if worst < 200 else 'OVER'} the 200 ms target")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
