"""The builder on a large draft: server time of the page, a step's panel, a save, adding a step, and the
publish dialog (validation of every step plus the diff against the live version).

    .venv/bin/python benchmarks/builder.py [--steps 300] [--repeat 9]

It creates its own database (`rowbell_bench_builder`, or $BENCH_DB_NAME, on the server of --pg-admin-url, dropped at the end),
migrates it, and builds one workflow: a webhook trigger with 10 parallel branches, each a chain of alternating
waits and emails (--steps steps in all), published once and then edited (one email changed), so the publish
dialog has a real diff. Each request goes through Django's test client as a signed-in member (middleware,
views, queries and templates; no network). Prints the median and worst of --repeat timings after one
warm-up request, with the number of SQL queries. Target: each under 200 ms at 300 steps.
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
from benchmarks.smoke import create_app_database, parse_with_smoke  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB_NAME", "rowbell_bench_builder")
BRANCHES = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    return parse_with_smoke(parser, steps=31, repeat=2)


def setup_django(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(create_app_database(DB_NAME))
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{DB_NAME}"))
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


def build(steps: int):
    """A published workflow of about `steps` steps with an edited draft; returns (user, workflow, a step)."""
    from django.contrib.auth import get_user_model

    from tenants.models import Membership, Role, Tenant
    from workflows.models import Step, Workflow
    from workflows.publishing import get_or_create_draft, publish

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-password-1")
    Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    workflow = Workflow.objects.create(tenant=tenant, name="Big")
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=tenant, version=draft, kind="webhook_trigger", name="Hook", config={})
    email = {"to": "{{ item.email }}", "subject": "Hello {{ item.name }}", "text": "Hi {{ item.name }}"}
    wait = {"mode": "duration", "amount": 1, "unit": "days"}
    per_branch = max(1, (steps - 1) // BRANCHES)
    for branch in range(BRANCHES):
        parent = root
        for index in range(per_branch):
            kind, config = ("wait", wait) if index % 2 == 0 else ("send_email", email)
            parent = Step.objects.create(
                tenant=tenant,
                version=draft,
                parent=parent,
                position=branch,
                kind=kind,
                name=f"{kind} {branch}.{index}",
                config=config,
            )
    publish(workflow, user=user)
    draft = get_or_create_draft(workflow)
    target = draft.steps.filter(kind="send_email").order_by("id").first()
    target.config = {**email, "subject": "Changed"}
    target.save()
    return user, workflow, target


def measure(label: str, request, repeat: int) -> None:
    from django.db import connection, reset_queries

    request()  # warm-up
    timings, queries = [], 0
    for _ in range(repeat):
        reset_queries()
        start = time.perf_counter()
        response = request()
        timings.append((time.perf_counter() - start) * 1000)
        queries = len(connection.queries)
        assert response.status_code in (200, 204), (label, response.status_code)
    print(
        f"{label:<28} median {statistics.median(timings):7.1f} ms   worst {max(timings):7.1f} ms   {queries:3d} queries"
    )


def main() -> None:
    args = parse_args()
    setup_django(args.pg_admin_url)
    try:
        from django.conf import settings
        from django.test import Client

        settings.DEBUG = True  # record queries
        settings.ALLOWED_HOSTS = ["*"]
        user, workflow, step = build(args.steps)
        client = Client()
        client.force_login(user)
        base = f"/workflows/{workflow.pk}"
        form = {
            "name": step.name,
            "config-to": "{{ item.email }}",
            "config-subject": "Hi",
            "config-text": "x",
        }

        def save():
            version = step.version
            version.refresh_from_db(fields=["revision"])
            return client.post(f"{base}/steps/{step.pk}/save/", {**form, "revision": version.revision})

        print(
            f"builder with {workflow.versions.get(state='draft').steps.count()} steps, {args.repeat} runs each"
        )
        measure("builder page", lambda: client.get(f"{base}/?step={step.pk}"), args.repeat)
        measure("step panel (select)", lambda: client.get(f"{base}/steps/{step.pk}/"), args.repeat)
        measure("save a step", save, args.repeat)
        measure("publish dialog (diff)", lambda: client.get(f"{base}/publish/"), args.repeat)
        measure("dashboard", lambda: client.get("/"), args.repeat)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(args.pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


if __name__ == "__main__":
    main()
