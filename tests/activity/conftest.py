"""Activity-log fixtures: runs written straight to the tables (list and tree tests need shapes of history,
not an engine run; engine-driven tests use tests/engine's helpers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, clock, email, smtp, webhook  # noqa: F401 (fixtures)


@pytest.fixture
def onboarding(tenant_a):
    """Published: webhook → [welcome email, (branch) team email]."""
    return build_workflow(
        tenant_a,
        webhook([email(name="Welcome"), email(name="Tell the team", to="team@example.com")]),
        name="Onboarding",
    )


def steps_of(workflow) -> dict[str, object]:
    """The published version's steps by name ('' for the trigger)."""
    return {step.name: step for step in workflow.published_version.steps.all()}


def make_run(
    workflow, event_key: str, *, status=Run.Status.SUCCEEDED, age: timedelta = timedelta(0), is_test=False
):
    """A run with its trigger execution, created `age` ago."""
    run = Run.objects.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        version=workflow.published_version,
        event_key=event_key,
        status=status,
        is_test=is_test,
        payload={"email": f"{event_key}@example.com"},
    )
    when = timezone.now() - age
    Run.objects.filter(pk=run.pk).update(created_at=when, finished_at=when + timedelta(seconds=2))
    run.refresh_from_db()
    add_execution(run, steps_of(workflow)[""], "0", status=StepExecution.Status.SUCCEEDED)
    return run


def add_execution(
    run, step, item_key: str, *, status=StepExecution.Status.SUCCEEDED, **fields
) -> StepExecution:
    return StepExecution.objects.create(
        tenant_id=run.tenant_id,
        run=run,
        step=step,
        item_key=item_key,
        status=status,
        input=fields.pop("input", {"item": item_key}),
        **fields,
    )


def add_delivery(execution, recipient: str, *, status=Delivery.Status.SENT, content=None) -> Delivery:
    return Delivery.objects.create(
        tenant_id=execution.tenant_id,
        step_execution=execution,
        run_id=execution.run_id,
        channel="email",
        recipient=recipient,
        status=status,
        content=content or {"to": recipient, "subject": f"Welcome {recipient}", "text": "Hi", "html": ""},
    )


USERS_TABLE = """
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, name text, onboarded_at timestamptz);
INSERT INTO users VALUES (1, 'old@example.com', 'Olga', now()), (2, 'nia@example.com', 'Nia', NULL);
"""


def onboarding_spec(source, crm_url: str) -> dict:
    """Database trigger on `users` → welcome email → 3-day wait → look the user up → one of two emails;
    branches: an HTTP call to a CRM, and a Slack message whose template cannot render (it fails)."""
    lookup = {
        "kind": "data_query",
        "name": "Look up the user",
        "config": {
            "datasource": source.pk,
            "sql": "SELECT onboarded_at FROM users WHERE id = {{ item.id }}",
            "mode": "first",
        },
        "children": [
            {
                "kind": "condition",
                "name": "Not onboarded",
                "config": {"expression": "item.onboarded_at is none"},
                "children": [email(name="Nudge", subject="Finish onboarding", text="Two minutes left")],
            },
            {
                "kind": "condition",
                "name": "Onboarded",
                "config": {"expression": "item.onboarded_at is not none"},
                "children": [email(name="Next steps", subject="Next steps", text="Invite your team")],
            },
        ],
    }
    wait = {
        "kind": "wait",
        "name": "Three days",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [lookup],
    }
    crm = {
        "kind": "http_request",
        "name": "Add to CRM",
        "config": {"method": "POST", "url": crm_url, "body": '{"email": {{ item.email|tojson }}}'},
    }
    # Fails for every row: users have no `company` column (a permanent template error).
    team = {
        "kind": "slack_message",
        "name": "Tell the team",
        "config": {
            "webhook_url": "https://hooks.slack.example/T/B/x",
            "text": "New signup at {{ item.company }}",
        },
    }
    root = {"kind": "database_trigger", "config": {"datasource": source.pk, "table": "users"}}
    root["children"] = [
        email(
            name="Welcome",
            subject="Welcome {{ item.name }}",
            html="<h1>Hi {{ item.name }}</h1>",
            text="Welcome aboard",
            children=[wait],
        ),
        crm,
        team,
    ]
    return root


@pytest.fixture
def customer(tenant_a, tenant_database):
    """The customer's database with a `users` table, as a data source of tenant A."""
    import psycopg

    from integrations.models import DataSource

    with psycopg.connect(tenant_database, autocommit=True) as conn:
        conn.execute(USERS_TABLE)
    return DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=tenant_database)


@pytest.fixture
def onboarding_draft(tenant_a, customer, httpserver):
    """The onboarding workflow as an unpublished draft (the CRM endpoint is a real local HTTP server)."""
    httpserver.expect_request("/crm").respond_with_json({"ok": True})
    return build_workflow(
        tenant_a, onboarding_spec(customer, httpserver.url_for("/crm")), name="Onboarding", publish_it=False
    )
