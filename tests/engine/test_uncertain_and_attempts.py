"""Uncertain messages resolved by a person (or resent by an opted-in HTTP step), attempt history, a
worker frozen past its lease, and the expected conflict logged as one line."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from integrations.message_keys import message_key
from runs.engine import liveness, resolve_uncertain, start_run
from runs.engine.context import BatchResources, StepContext
from runs.engine.delivery_protocol import LazyChannel, send_message
from runs.engine.executor import claim, run_batch, settle
from runs.engine.ledger import DeliveryLedger
from runs.engine.outcome import ClaimLost, Outcome
from runs.engine.sweeper import sweep
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, email, webhook, work
from tests.engine.conftest import settle as settle_all
from workflows.steps import get_kind


def crash_mid_send(run, clock) -> StepExecution:
    """What a worker killed between the provider's answer and the `sent` mark leaves: its execution
    claimed and its Delivery `sending`. The sweeper then reclaims it, and the next attempt finds it."""
    step = run.version.steps.filter(kind__in=("send_email", "http_request")).order_by("id").first()
    execution = StepExecution.objects.get(run=run, step=step)
    liveness.worker_name = "worker-7f3a"  # a worker that beat once and then died: its row is stale
    try:
        assert claim(run.pk, execution.step_id, clock.now, 10) == [execution.pk]
        DeliveryLedger().create(
            tenant_id=run.tenant_id,
            run_id=run.pk,
            execution_id=execution.pk,
            channel="email",
            recipient="ann@example.com",
            status=Delivery.Status.SENDING,
            content={"subject": "hi"},
            attempt=1,
        )
    finally:
        liveness.worker_name = ""
    return execution


def uncertain_run(tenant, clock, spec=None):
    workflow = build_workflow(tenant, spec or webhook([email(children=[email(to="boss@example.com")])]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-u")
    # Run only the trigger: the send's execution is then pending, and "a worker" claims it and dies.
    with override_settings(ENGINE_FOLLOW_MAX_STEPS=0):  # children are queued, not run in this job
        run_batch(run.pk, workflow.published_version.steps.get(parent=None).pk)
    execution = crash_mid_send(run, clock)
    clock.travel(seconds=settings.WORKER_LEASE_SECONDS + 1)
    assert sweep().reclaimed == 1, "reclaimed on the missing heartbeat, long before the timeout"
    settle_all(clock, step_seconds=60)
    run.refresh_from_db()
    return run, execution


def test_an_uncertain_message_is_never_resent_on_its_own(clock, smtp, tenant_a):
    run, execution = uncertain_run(tenant_a, clock)
    assert Delivery.objects.get(step_execution=execution).status == "uncertain"
    assert run.status == Run.Status.FAILED and smtp.messages == []
    attempts = StepExecution.objects.get(pk=execution.pk).attempt_log
    assert [a["outcome"] for a in attempts] == ["reclaimed", "failed"], attempts


def test_mark_as_sent_sends_nothing_and_lets_the_run_go_on(clock, smtp, tenant_a):
    run, execution = uncertain_run(tenant_a, clock)
    delivery = Delivery.objects.get(step_execution=execution)
    assert resolve_uncertain(delivery.pk, "mark_sent", tenant=tenant_a, by="olive")
    assert not resolve_uncertain(delivery.pk, "mark_sent", tenant=tenant_a), "a double click acts once"
    settle_all(clock, step_seconds=60)
    delivery.refresh_from_db()
    run.refresh_from_db()
    assert delivery.status == "sent" and "olive" in delivery.error
    assert smtp.recipients() == ["boss@example.com"], "only the child step's email left"
    assert run.status == Run.Status.SUCCEEDED


def test_send_again_sends_it_once_more(clock, smtp, tenant_a):
    run, execution = uncertain_run(tenant_a, clock)
    delivery = Delivery.objects.get(step_execution=execution)
    assert resolve_uncertain(delivery.pk, "resend")
    settle_all(clock, step_seconds=60)
    run.refresh_from_db()
    assert sorted(smtp.recipients()) == ["ann@example.com", "boss@example.com"]
    assert run.status == Run.Status.SUCCEEDED
    assert not resolve_uncertain(delivery.pk, "resend"), "no longer uncertain"


def test_resolving_another_tenants_or_a_sent_message_does_nothing(clock, smtp, tenant_a, tenant_b):
    _run, execution = uncertain_run(tenant_a, clock)
    delivery = Delivery.objects.get(step_execution=execution)
    assert not resolve_uncertain(delivery.pk, "mark_sent", tenant=tenant_b)
    with pytest.raises(ValueError, match="Unknown resolution"):
        resolve_uncertain(delivery.pk, "delete", tenant=tenant_a)
    assert Delivery.objects.get(pk=delivery.pk).status == "uncertain"


def http_step(url: str, **config) -> dict:
    return {"kind": "http_request", "config": {"method": "POST", "url": url, "body": "{}", **config}}


@pytest.mark.parametrize("opted_in", [True, False])
def test_an_http_step_that_opted_in_resends_uncertain_requests_with_the_same_key(
    clock, tenant_a, httpserver, opted_in
):
    httpserver.expect_request("/hook", method="POST").respond_with_json({"ok": True})
    config = {"resend_uncertain": True} if opted_in else {}
    run, execution = uncertain_run(
        tenant_a, clock, webhook([http_step(httpserver.url_for("/hook"), **config)])
    )
    delivery = Delivery.objects.get(step_execution=execution)
    requests = [r for r, _ in httpserver.log]
    if opted_in:
        assert delivery.status == "sent" and run.status == Run.Status.SUCCEEDED
        assert [r.headers["Idempotency-Key"] for r in requests] == [message_key(execution.pk)]
    else:
        assert delivery.status == "uncertain" and requests == []


def test_resend_uncertain_must_be_a_boolean():
    kind = get_kind("http_request")
    from workflows.steps import ConfigError

    with pytest.raises(ConfigError) as error:
        kind.validate({"url": "https://example.com", "resend_uncertain": "yes please"})
    assert "resend_uncertain" in error.value.errors
    assert "resend_uncertain" not in kind.validate({"url": "https://example.com", "resend_uncertain": False})


def test_attempt_history_keeps_the_last_20_and_settling_stays_one_statement(clock, tenant_a, settings):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "evt-h")
    execution = StepExecution.objects.get(run=run)
    for n in range(25):
        claim(run.pk, execution.step_id, clock.now, 1)
        execution.refresh_from_db()
        outcome = Outcome(StepExecution.Status.PENDING, error=f"try {n}", next_attempt_at=clock.now, took=0.5)
        with CaptureQueriesContext(connection) as queries:
            assert settle([execution], {execution.pk: outcome}, clock.now) == [execution.pk]
        assert len(queries) == 1
    execution.refresh_from_db()
    log = execution.attempt_log
    assert len(log) == settings.ENGINE_ATTEMPT_LOG_SIZE == 20
    assert [a["error"] for a in log] == [f"try {n}" for n in range(5, 25)]
    assert log[-1]["took"] == 0.5 and log[-1]["outcome"] == "retry" and log[-1]["at"]


def test_settle_leaves_executions_another_worker_now_holds(clock, tenant_a, monkeypatch):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "evt-o")
    execution = StepExecution.objects.get(run=run)
    monkeypatch.setattr(liveness, "worker_name", "worker-a")
    claim(run.pk, execution.step_id, clock.now, 1)
    execution.refresh_from_db()
    StepExecution.objects.filter(pk=execution.pk).update(claimed_by="worker-b")  # the sweeper handed it over
    assert settle([execution], {execution.pk: Outcome(StepExecution.Status.SUCCEEDED)}, clock.now) == []
    assert StepExecution.objects.get(pk=execution.pk).status == "running"


def test_a_worker_frozen_past_its_lease_stops_its_batch_and_sends_nothing(clock, smtp, tenant_a, monkeypatch):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "evt-f")
    monkeypatch.setattr(liveness, "worker_name", "frozen-worker")
    monkeypatch.setattr(liveness, "_last_beat", -1e9)  # its last beat is long past the lease
    execution = StepExecution.objects.get(run=run)
    run_batch(run.pk, execution.step_id)  # ends quietly: a frozen worker's batch is not a failed job
    execution.refresh_from_db()
    assert execution.status == "pending" and "interrupted (LeaseLost)" in execution.error
    assert smtp.messages == []


def test_a_worker_that_lost_its_claim_writes_no_delivery_and_sends_nothing_in_one_log_line(
    clock, smtp, tenant_a, caplog
):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "evt-dup")
    work(clock)
    execution = StepExecution.objects.select_related("step").get(run=run, step__kind="send_email")
    assert Delivery.objects.filter(step_execution=execution, status="sent").exists()
    kind = get_kind("send_email")
    ctx = StepContext(run=run, step=execution.step, now=clock.now, resources=BatchResources())
    channel = LazyChannel(kind)
    with (
        caplog.at_level(logging.INFO, logger="runs.engine"),
        pytest.raises(ClaimLost),
    ):
        # A resumed worker read "no Delivery yet" before the other worker wrote it and settled.
        send_message(ctx, kind, execution, None, channel, DeliveryLedger())
    channel.close()
    lines = [r for r in caplog.records if r.name.startswith("runs.engine")]
    assert len(lines) == 1 and lines[0].exc_info is None and "no longer holds" in lines[0].getMessage()
    assert len(smtp.messages) == 1, "nothing was sent a second time"
    assert connection.connection.info.transaction_status == 0, "the connection is idle and usable"
