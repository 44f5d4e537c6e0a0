"""Operators: read-only lists of runs, executions and deliveries across tenants, the retry, cancel, release
and discard actions on the real engine, and a link to the django-rq dashboard."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tests.activity.conftest import build_workflow, email, webhook
from tests.engine.conftest import work


@pytest.fixture
def operator(db) -> Client:
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456")
    client = Client()
    client.force_login(user)
    return client


def act(operator: Client, model: str, action: str, ids: list[int]):
    url = reverse(f"admin:runs_{model}_changelist")
    return operator.post(url, {"action": action, "_selected_action": ids}, follow=True)


def test_lists_and_pages_load_read_only_with_the_rq_link(clock, smtp, operator, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    execution = StepExecution.objects.get(run=run, step__kind="send_email")
    for model, pk in (("run", run.pk), ("stepexecution", execution.pk), ("delivery", execution.delivery.pk)):
        changelist = operator.get(reverse(f"admin:runs_{model}_changelist"), {"status__exact": "succeeded"})
        assert changelist.status_code == 200 and reverse("django_rq:home").encode() in changelist.content
        page = operator.get(reverse(f"admin:runs_{model}_change", args=[pk]))
        assert page.status_code == 200 and b'name="_save"' not in page.content
    assert operator.get(reverse("django_rq:home")).status_code == 200
    retrying = operator.get(reverse("admin:runs_stepexecution_changelist"), {"retry": "retrying"})
    assert retrying.status_code == 200 and list(retrying.context["cl"].result_list) == []
    StepExecution.objects.filter(pk=execution.pk).update(status="pending", attempts=2, error="451 later")
    retrying = operator.get(reverse("admin:runs_stepexecution_changelist"), {"retry": "retrying"})
    assert [e.pk for e in retrying.context["cl"].result_list] == [execution.pk]
    assert b"retrying, attempt 3 of 10" in retrying.content


def test_release_retry_and_cancel_actions(clock, smtp, operator, tenant_a):
    sandboxed = build_workflow(tenant_a, webhook([email()]), name="Sandboxed", sandbox=True)
    start_run(sandboxed, {"email": "held@example.com", "name": "H"}, "evt-h")
    smtp.refuse["bad@example.com"] = "550 no such mailbox"
    plain = build_workflow(tenant_a, webhook([email()]), name="Plain")
    failing = start_run(plain, {"email": "bad@example.com", "name": "B"}, "evt-b")
    wait = {
        "kind": "wait",
        "config": {"mode": "duration", "amount": 1, "unit": "days"},
        "children": [email()],
    }
    waiting = start_run(
        build_workflow(tenant_a, webhook([wait]), name="Slow"), {"email": "w@example.com"}, "evt-w"
    )
    work(clock)

    held = Delivery.objects.get(status="held")
    released = act(operator, "delivery", "release_deliveries", [held.pk])
    assert b"Released 1 of 1 held messages." in released.content
    act(operator, "delivery", "release_deliveries", [held.pk])  # again: already sent
    assert smtp.recipients() == ["held@example.com"]

    failed = StepExecution.objects.get(run=failing, status="failed")
    del smtp.refuse["bad@example.com"]
    assert b"Retrying 1 executions" in act(operator, "stepexecution", "retry_executions", [failed.pk]).content
    work(clock)
    assert smtp.recipients() == ["held@example.com", "bad@example.com"]

    assert (
        b"Cancelled 1 runs (1 executions stopped)"
        in act(operator, "run", "cancel_runs", [waiting.pk]).content
    )
    assert Run.objects.get(pk=waiting.pk).status == "cancelled"
