"""A run from start to finish: one email, idempotent starts, conditions, test runs and sandbox."""

from __future__ import annotations

from runs.engine import start_run
from runs.models import Delivery, Run
from tests.engine.conftest import build_workflow, email, webhook, work


def test_one_event_sends_one_email(engine, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(engine)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert smtp.recipients() == ["ann@example.com"]
    assert smtp.messages[0]["Subject"] == "Hello Ann"
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == Delivery.Status.SENT
    assert delivery.content["text"] == "Hi Ann"
    assert delivery.provider_id == smtp.messages[0]["Message-ID"]
