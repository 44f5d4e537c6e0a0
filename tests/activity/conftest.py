"""Activity-log fixtures: signed-in clients for the three people, and runs written straight to the tables
(list and tree tests need shapes of history, not an engine run; engine-driven tests use tests/engine's helpers).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, clock, email, engine, smtp, webhook  # noqa: F401 (fixtures)


@pytest.fixture
def owner_client(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client


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
