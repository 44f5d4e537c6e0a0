"""Activity log on a large history: server time of the runs list, filtered lists, a payload-field search,
a large run's page, counts, and the pages while retention deletes old runs.

    .venv/bin/python benchmarks/activity.py [--executions 1000000] [--big-run 100000] [--repeat 7] [--keep]
                                            [--retention-delete 0] [--smoke]

It creates its own database (`rowbell_bench_activity`, or $BENCH_DB_NAME, on the server of --pg-admin-url;
dropped at the end unless --keep), migrates it and seeds ONE tenant with set-based SQL (INSERT ... SELECT
generate_series, each copying a template row the ORM made, so a new column cannot break the seed): a
published workflow webhook → [Welcome email, Team email] whose trigger declares `item.account_id`
searchable, runs of three executions each over 90 days or more (2% failed, a few retrying, 10,000
accounts) with their searchable values, a delivery per Welcome email and its tracking events (delivered,
opened, bounced, complained), plus one run that fanned out to --big-run items. Then it requests each page
(the activity pages, the payload-field search, and the pages with charts: dashboard, a workflow's runs and
messages, the builder) through Django's test client as a signed-in member (middleware, views, queries and
templates: the whole server side, no network) and prints the p50 and p95 of --repeat timings after one
warm-up request, with the number of SQL queries, and two counts a bulk action's dry run needs.
--retention-delete N then gives the tenant a retention that expires about N runs and reads the pages
while the retention job deletes them. --smoke: 3,000 executions, 2 requests a page, 300 runs deleted (the test suite
runs it so the script cannot rot). Target: each p95 under 200 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402

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
        "--retention-delete",
        type=int,
        default=0,
        help="then expire about this many of the oldest runs and measure the pages while retention deletes them",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--retention-seconds",
        type=float,
        default=0,
        help="stop deleting after about this long (checked between 30 s prune calls; 0: until done)",
    )
    return parse_with_smoke(parser, executions=3_000, big_run=300, repeat=2, retention_delete=300)


def setup_django(admin_url: str, fresh: bool) -> None:
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{DB_NAME}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if exists and fresh:
            conn.execute(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')
        if not exists or fresh:
            conn.execute(create_app_database(DB_NAME))
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
    searchable = {"search_fields": [{"path": "item.account_id"}]}
    root = Step.objects.create(tenant=tenant, version=draft, kind="webhook_trigger", config=searchable)
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
        "accounts": ACCOUNTS,
        "spacing": spacing(runs),
    }
    started = time.perf_counter()
    made = templates(tenant, workflow, version, steps[""])
    params["template_run"] = made["Run"].pk
    with connection.cursor() as cur:
        for model_name, overrides, source in SEED:
            cur.execute(seed_statement(model_name, overrides, source, made[model_name]), params)
        for model_name in ("DeliveryEvent", "Delivery", "RunSearchValue", "StepExecution", "Run"):
            made[model_name].delete()
        cur.execute(
            "ANALYZE runs_run; ANALYZE runs_stepexecution; ANALYZE runs_delivery; ANALYZE runs_deliveryevent;"
            " ANALYZE runs_runsearchvalue"
        )
        cur.execute("SELECT count(*) FROM runs_stepexecution WHERE tenant_id = %s", [tenant.pk])
        total = cur.fetchone()[0]
        cur.execute("SELECT id FROM runs_run WHERE event_key = 'big-fanout'")
        big_id = cur.fetchone()[0]
    print(f"seeded {runs:,} runs, {total:,} executions in {time.perf_counter() - started:.1f} s")
    return user, big_id


# Each statement copies every column of a template row made by the ORM (so a column added later gets the
# model's default, not a NOT NULL error) except those it sets itself. Run n is created (n × SPACING s)
# before now, so 90 days hold ~ 300,000 runs (a small seed spreads over 90 days); every 50th failed, every
# 997th is still retrying its Team email.
# Run n is about account acc-(n mod ACCOUNTS): the searchable field of the payload search.
ACCOUNTS = 10_000
SPACING = 26


def spacing(runs: int) -> int:
    return max(SPACING, 90 * 86400 // max(runs, 1))


SEED = [
    (
        "Run",
        {
            "event_key": "'signup-' || n",
            "label": "'user' || n || '@example.com'",
            "status": "CASE WHEN n %% 997 = 0 THEN 'running' WHEN n %% 50 = 0 THEN 'partial' ELSE 'succeeded' END",
            "payload": "jsonb_build_object('email', 'user' || n || '@example.com', 'account_id', 'acc-' || n %% %(accounts)s)",
            "created_at": "now() - make_interval(secs => n * %(spacing)s)",
            "finished_at": "now() - make_interval(secs => n * %(spacing)s - 2)",
        },
        "generate_series(1, %(runs)s) AS n",
    ),
    (
        "RunSearchValue",
        {
            "run_id": "r.id",
            "field": "'item.account_id'",
            "value": "r.payload->>'account_id'",
            "created_at": "r.created_at",
        },
        "runs_run r WHERE r.tenant_id = %(t)s AND r.id <> %(template_run)s",
    ),
    (
        "StepExecution",
        {
            "run_id": "r.id",
            "step_id": "s.step_id",
            "input": "r.payload",
            "output": "r.payload",
            "status": """CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN 'pending'
                   WHEN s.step_id = %(welcome)s AND r.status = 'partial' THEN 'failed' ELSE 'succeeded' END""",
            "attempts": "CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN 2 ELSE 1 END",
            "next_attempt_at": "CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN now() + interval '5 minutes' END",
            "started_at": "r.created_at",
            "finished_at": "r.finished_at",
            "error": """CASE WHEN s.step_id = %(team)s AND r.status = 'running' THEN 'SMTP 451: try again later'
                   WHEN s.step_id = %(welcome)s AND r.status = 'partial' THEN 'SMTP 550: no such mailbox'
                   ELSE '' END""",
            "created_at": "r.created_at",
        },
        """runs_run r CROSS JOIN (VALUES (%(root)s), (%(welcome)s), (%(team)s)) AS s(step_id)
           WHERE r.tenant_id = %(t)s AND r.id <> %(template_run)s""",
    ),
    (
        "Delivery",
        {
            "step_execution_id": "e.id",
            "run_id": "e.run_id",
            "recipient": "e.input->>'email'",
            "status": "CASE WHEN e.status = 'failed' THEN 'failed' ELSE 'sent' END",
            "content": """jsonb_build_object('to', e.input->>'email', 'subject', 'Welcome!', 'text', 'Hi',
                                           'html', '<p>Hi</p>')""",
            "error": "e.error",
            "created_at": "e.created_at",
            "sent_at": "e.finished_at",
        },
        "runs_stepexecution e WHERE e.tenant_id = %(t)s AND e.step_id = %(welcome)s AND e.run_id <> %(template_run)s",
    ),
    # Tracking events for the messages charts: every sent message delivered, every third opened, every
    # 100th bounced, every 500th complained (a minute after it was sent).
    (
        "DeliveryEvent",
        {
            "delivery_id": "d.id",
            "kind": "k.kind",
            "bounce": "CASE WHEN k.kind = 'bounced' THEN 'hard' ELSE '' END",
            "event_key": "k.kind || '-' || d.id",
            "occurred_at": "d.created_at + interval '1 minute'",
            "recipient": "d.recipient",
            "created_at": "d.created_at",
        },
        """runs_delivery d
           CROSS JOIN (VALUES ('delivered', 1), ('opened', 3), ('bounced', 100), ('complained', 500)) AS k(kind, every)
           WHERE d.tenant_id = %(t)s AND d.status = 'sent' AND d.id %% k.every = 0 AND d.run_id <> %(template_run)s""",
    ),
    (
        "Run",
        {"event_key": "'big-fanout'", "status": "'running'", "created_at": "now() - interval '1 hour'"},
        "(VALUES (1)) AS one(n)",
    ),
    (
        "StepExecution",
        {
            "run_id": "r.id",
            "step_id": "CASE WHEN n = 0 THEN %(root)s ELSE %(welcome)s END",
            "item_key": "CASE WHEN n = 0 THEN '0' ELSE '0/' || n END",
            "input": "jsonb_build_object('n', n)",
            "status": "CASE WHEN n %% 10 = 0 THEN 'pending' WHEN n %% 101 = 0 THEN 'failed' ELSE 'succeeded' END",
            "attempts": "1",
            "error": "CASE WHEN n %% 101 = 0 AND n %% 10 <> 0 THEN 'timeout' ELSE '' END",
            "created_at": "r.created_at",
            "started_at": "r.created_at",
            "finished_at": "r.created_at + interval '1 second'",
        },
        """runs_run r CROSS JOIN generate_series(0, %(big)s - 1) AS n
           WHERE r.event_key = 'big-fanout' AND r.tenant_id = %(t)s""",
    ),
]


def templates(tenant, workflow, version, root_id: int) -> dict:
    """One row of each seeded table made by the ORM (every default filled in), deleted after seeding."""
    from django.utils import timezone

    from runs.models import Delivery, DeliveryEvent, Run, RunSearchValue, StepExecution

    run = Run.objects.create(tenant=tenant, workflow=workflow, version=version, event_key="template")
    execution = StepExecution.objects.create(tenant=tenant, run=run, step_id=root_id, item_key="0")
    delivery = Delivery.objects.create(tenant=tenant, step_execution=execution, run=run, channel="email")
    event = DeliveryEvent.objects.create(
        tenant=tenant, delivery=delivery, kind="delivered", event_key="template", occurred_at=timezone.now()
    )
    value = RunSearchValue.objects.create(
        tenant=tenant, workflow=workflow, run=run, field="template", value="", created_at=run.created_at
    )
    return {
        "Run": run,
        "StepExecution": execution,
        "Delivery": delivery,
        "DeliveryEvent": event,
        "RunSearchValue": value,
    }


def seed_statement(model_name: str, overrides: dict[str, str], source: str, template) -> str:
    """INSERT … SELECT of every column but the id: the override's SQL, else the template row's value."""
    model = type(template)
    columns = [f.column for f in model._meta.concrete_fields if not f.primary_key]
    unknown = set(overrides) - set(columns)
    assert not unknown, f"{model_name} has no column {sorted(unknown)}"
    values = [overrides.get(column, f"t.{column}") for column in columns]
    table = model._meta.db_table
    parts = re.split(r"\sWHERE\s", source, maxsplit=1)
    rows, where = parts if len(parts) == 2 else (parts[0], "TRUE")
    source = f"{rows} CROSS JOIN {table} t WHERE t.id = {template.pk} AND ({where})"
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {source}"


def percentile(timings: list[float], share: float) -> float:
    ordered = sorted(timings)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(client, label: str, url: str, params: dict, repeat: int, headers: dict | None = None) -> float:
    """Print the page's p50 and p95 over `repeat` requests (after one warm-up) and its query count;
    return the p95."""
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
    p50, p95 = statistics.median(timings), percentile(timings, 0.95)
    print(f"{label:<50} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   {len(queries):3d} queries")
    return p95


def measure_count(label: str, count, repeat: int) -> float:
    """A count the pages or a bulk action's dry run would ask: p50/p95 of `count()` and its result."""
    count()
    timings, result = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        result = count()
        timings.append((time.perf_counter() - started) * 1000)
    p50, p95 = statistics.median(timings), percentile(timings, 0.95)
    print(f"{label:<50} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms     1 query    = {result:,}")
    return p95


def page_cases(client, args, big_id: int) -> list[tuple[str, str, dict]]:
    from django.urls import reverse

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
    account = {"field": "item.account_id", "value": "acc-4242" if args.executions > 100_000 else "acc-42"}
    field_page = client.get(runs, account)
    return [
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
            {"workflow": workflow_id, "date_from": "2000-01-01", "date_to": "2100-01-01"},
        ),
        ("runs searched by recipient", runs, {"q": "user4242@example.com"}),
        ("runs searched by event key", runs, {"q": "signup-4242"}),
        ("runs searched by label start", runs, {"q": "user4242@"}),
        (f"payload field: {account['field']} = {account['value']}", runs, account),
        (
            "payload field, second page (keyset)",
            runs,
            {**account, "after": field_page.context["page"].next_cursor or ""},
        ),
        ("payload field + status=partial", runs, {**account, "status": "partial"}),
        ("payload field: a value no run has", runs, {"field": "item.account_id", "value": "nobody"}),
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


def count_cases(tenant_id: int, account: str):
    """Counts a bulk action's dry run would show: a field's runs, and failed executions in a week."""
    from datetime import timedelta

    from django.utils import timezone

    from runs.models import RunSearchValue, StepExecution

    week = timezone.now() - timedelta(days=7)
    return [
        (
            f"count: runs with item.account_id = {account}",
            lambda: RunSearchValue.objects.filter(
                tenant_id=tenant_id, field="item.account_id", hashed=False, value=account
            ).count(),
        ),
        (
            "count: failed executions of the last 7 days",
            lambda: StepExecution.objects.filter(
                tenant_id=tenant_id, status="failed", created_at__gte=week
            ).count(),
        ),
    ]


def main() -> None:
    args = parse_args()
    setup_django(args.pg_admin_url, fresh=not args.keep)
    from django.test import Client
    from django.urls import reverse

    user, big_id = seed(args.executions, args.big_run)
    client = Client()
    client.force_login(user)
    tenant_id = user.memberships.get().tenant_id
    cases = page_cases(client, args, big_id)
    print(f"server time per page, {args.repeat} requests each (target: p95 < 200 ms):")
    worst = max(measure(client, label, url, params, args.repeat) for label, url, params in cases)
    # The large run's page polls itself while the run is open; an unchanged run answers 204.
    big_page = client.get(reverse("runs:run_detail", args=[big_id]))
    poll = big_page.context["poll_url"]
    htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "run-live"}
    worst = max(
        worst, measure(client, "large run's poll, nothing changed (204)", poll, {}, args.repeat, htmx)
    )
    account = cases[8][2]["value"]
    for label, count in count_cases(tenant_id, account):
        worst = max(worst, measure_count(label, count, args.repeat))
    print(f"slowest p95: {worst:.1f} ms — {'within' if worst < 200 else 'OVER'} the 200 ms target")
    if args.retention_delete:
        retention_while_reading(client, cases, tenant_id, args)
    if not args.keep:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{DB_NAME}" WITH (FORCE)')


def retention_while_reading(client, cases, tenant_id: int, args) -> None:
    """Give the tenant a retention that expires about --retention-delete runs (the oldest) and run
    `manage.py prune_activity` in its own process (what the hourly job does: slices of 500 runs, one short
    transaction each) while this process reads the activity pages in turn; print each page's p95 during
    the delete and the delete's rate. (A thread of this process would share its GIL with the page
    rendering and measure that, not the database.)"""
    import subprocess

    from django.db import connection

    from tenants.models import TenantLimits

    def counts() -> dict[str, int]:
        with connection.cursor() as cursor:
            found = {}
            for name, table in (
                ("runs", "runs_run"),
                ("executions", "runs_stepexecution"),
                ("messages", "runs_delivery"),
            ):
                cursor.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", [tenant_id])
                found[name] = cursor.fetchone()[0]
            return found

    before = counts()
    keep_runs = max(0, before["runs"] - args.retention_delete)
    days = max(1, int(keep_runs * spacing(before["runs"]) / 86400))
    TenantLimits.objects.update_or_create(tenant_id=tenant_id, defaults={"activity_retention_days": days})
    started = time.perf_counter()
    prune = subprocess.Popen(
        [sys.executable, "manage.py", "prune_activity"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    reading = [case for case in cases if not case[0].startswith("large run")]
    timings: dict[str, list[float]] = {label: [] for label, _url, _params in reading}
    stopped = False
    while prune.poll() is None:
        for label, url, params in reading:
            began = time.perf_counter()
            response = client.get(url, params)
            timings[label].append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (url, response.status_code)
            if prune.poll() is not None:
                break
        if args.retention_seconds and time.perf_counter() - started > args.retention_seconds:
            prune.terminate()  # the slice under way rolls back; the next run goes on from there
            stopped = True
    output = prune.communicate()[0]
    took = time.perf_counter() - started
    assert stopped or prune.returncode == 0, output
    after = counts()
    gone = {name: before[name] - after[name] for name in before}
    print(
        f"retention ({days} days) deleted {gone['runs']:,} runs, {gone['executions']:,} executions, "
        f"{gone['messages']:,} messages in {took:.1f} s ({gone['executions'] / max(took, 0.001):,.0f} "
        f"executions/s){', stopped at --retention-seconds' if stopped else ''}; pages read meanwhile:"
    )
    worst = 0.0
    for label, values in timings.items():
        if values:
            p95 = percentile(values, 0.95)
            worst = max(worst, p95)
            print(
                f"  {label:<48} p50 {statistics.median(values):7.1f} ms   p95 {p95:7.1f} ms   n={len(values)}"
            )
    print(
        f"slowest p95 during the delete: {worst:.1f} ms — {'within' if worst < 200 else 'OVER'} the 200 ms target"
    )


if __name__ == "__main__":
    main()
