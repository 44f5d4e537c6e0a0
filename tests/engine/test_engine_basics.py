"""A run from start to finish: one email, batch starts, a batch that fails as a whole."""

from __future__ import annotations

from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, email, webhook, work


def test_one_event_sends_one_email(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert smtp.recipients() == ["ann@example.com"]
    assert smtp.messages[0]["Subject"] == "Hello Ann"
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == Delivery.Status.SENT
    assert delivery.content["text"] == "Hi Ann"
    assert delivery.provider_id == smtp.messages[0]["Message-ID"]


def test_start_runs_starts_one_run_per_event_key_in_a_batch(clock, smtp, tenant_a):
    from runs.engine import start_runs

    workflow = build_workflow(tenant_a, webhook([email()]))
    events = [({"email": f"u{i}@example.com", "name": f"U{i}"}, f"evt-{i}") for i in range(5)]
    runs = start_runs(workflow, events + events[:2])
    assert len(runs) == 7 and len({run.pk for run in runs}) == 5
    work(clock)
    assert sorted(smtp.recipients()) == [f"u{i}@example.com" for i in range(5)]
    assert set(Run.objects.values_list("status", flat=True)) == {Run.Status.SUCCEEDED}


def test_a_step_of_an_unknown_kind_fails_its_executions_instead_of_leaving_them_running(clock, tenant_a):
    from django.db import connection

    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "evt-1")
    # A kind whose module was removed after publishing (published steps are immutable through the ORM).
    with connection.cursor() as cur:
        cur.execute("UPDATE workflows_step SET kind = 'fax_message' WHERE kind = 'send_email'")
    work(clock)
    execution = StepExecution.objects.get(run=run, step__kind="fax_message")
    run.refresh_from_db()
    assert execution.status == "failed" and "fax_message" in execution.error
    assert run.status == "failed"
