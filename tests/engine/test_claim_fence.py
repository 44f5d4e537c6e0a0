"""The claim fence: every settle and Delivery write of a worker is made under the claim it holds (its
name and the attempt it claimed), in the same statement. A worker that lost its claim (the sweeper
reclaimed it, another worker may have run it since) changes no row, and says so in one log line."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest
from django.db import connection
from django.db.utils import OperationalError
from django.test.utils import CaptureQueriesContext

from runs.engine import ledger, liveness, start_run
from runs.engine.executor import claim, settle
from runs.engine.ledger import DeliveryLedger
from runs.engine.outcome import ClaimLost, Outcome, interrupts_batch
from runs.models import Delivery, StepExecution
from tests.engine.conftest import build_workflow, email, webhook

ZOMBIE = "worker-zombie"


@pytest.fixture
def claimed(clock, tenant_a, monkeypatch):
    """An execution of a send step claimed by ZOMBIE (attempt 1), with its Delivery `sending`."""
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "a@example.com", "name": "A"}, "evt-fence")
    execution = StepExecution.objects.get(run=run)
    monkeypatch.setattr(liveness, "worker_name", ZOMBIE)
    assert claim(run.pk, execution.step_id, clock.now, 1) == [execution.pk]
    execution.refresh_from_db()
    delivery_id = DeliveryLedger().create(**fields(execution))
    return execution, delivery_id


def fields(execution: StepExecution) -> dict:
    return {
        "tenant_id": execution.tenant_id,
        "run_id": execution.run_id,
        "execution_id": execution.pk,
        "channel": "email",
        "recipient": "a@example.com",
        "status": Delivery.Status.SENDING,
        "content": {"subject": "hi"},
        "attempt": execution.attempts,
    }


def reclaimed_and_claimed_again(execution: StepExecution, holder: str = "worker-b") -> None:
    """What the sweeper and then another worker do while the zombie sleeps."""
    StepExecution.objects.filter(pk=execution.pk).update(
        status="running", claimed_by=holder, attempts=execution.attempts + 1
    )


def snapshot(execution: StepExecution) -> tuple:
    row = StepExecution.objects.values_list("status", "claimed_by", "attempts", "error", "attempt_log").get(
        pk=execution.pk
    )
    delivery = Delivery.objects.values_list("status", "error", "provider_id").get(step_execution=execution)
    return row, delivery


@pytest.mark.parametrize("holder", ["worker-b", ZOMBIE])
def test_a_settle_under_a_stale_claim_changes_no_row(claimed, clock, holder, caplog):
    """Also when the new holder has the same name (a worker restarted under a fixed name): the attempt
    tells the claims apart."""
    execution, _ = claimed
    reclaimed_and_claimed_again(execution, holder)
    before = snapshot(execution)
    with caplog.at_level(logging.INFO, logger="runs.engine"):
        assert settle([execution], {execution.pk: Outcome(StepExecution.Status.SUCCEEDED)}, clock.now) == []
    assert snapshot(execution) == before
    lines = [r for r in caplog.records if r.name.startswith("runs.engine")]
    assert len(lines) == 1 and "no longer holds" in lines[0].getMessage() and lines[0].exc_info is None


def test_a_sent_mark_under_a_stale_claim_changes_no_row_in_either_statement(claimed, caplog):
    execution, delivery_id = claimed
    # The mark riding on the next message's insert, and the mark flushed on its own.
    for write in ("flush", "insert"):
        reclaimed_and_claimed_again(execution)
        execution.attempts = StepExecution.objects.get(pk=execution.pk).attempts - 1  # the zombie's view
        before = snapshot(execution)
        book = DeliveryLedger()
        book.sent(delivery_id, "<id@zombie>", execution)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="runs.engine"):
            if write == "flush":
                with pytest.raises(ClaimLost):  # the batch goes no further
                    book.flush()
            else:
                other = StepExecution.objects.create(
                    tenant_id=execution.tenant_id,
                    run_id=execution.run_id,
                    step_id=execution.step_id,
                    item_key="other",
                    status="running",
                    claimed_by=ZOMBIE,
                    attempts=1,
                )
                book.create(**fields(other))  # the zombie still holds this one: its row is written
                assert Delivery.objects.filter(step_execution=other, status="sending").exists()
        assert snapshot(execution) == before
        assert book.unmarked == [], "a refused mark is not retried"
        lines = [r for r in caplog.records if r.name.startswith("runs.engine")]
        assert len(lines) == 1 and "1 of 1 'sent' marks refused" in lines[0].getMessage(), lines


def test_a_sent_mark_under_the_live_claim_is_written(claimed):
    execution, delivery_id = claimed
    book = DeliveryLedger()
    book.sent(delivery_id, "<id@live>", execution)
    with CaptureQueriesContext(connection) as queries:
        book.flush()
    assert len(queries) == 1
    assert Delivery.objects.get(pk=delivery_id).status == "sent"


def test_a_failed_mark_under_a_stale_claim_changes_no_row(claimed, caplog):
    """The zombie's "not sent, another attempt sends it" must not land on a delivery the new holder
    settled (here: already marked uncertain by the attempt that found it `sending`)."""
    execution, delivery_id = claimed
    reclaimed_and_claimed_again(execution)
    Delivery.objects.filter(pk=delivery_id).update(status="uncertain", error="found sending")
    before = snapshot(execution)
    with caplog.at_level(logging.INFO, logger="runs.engine"):
        assert not DeliveryLedger().failed(execution, "Not sent")
        assert ledger.set_status([execution], "failed", ledger.NOT_SENT, ["sending", "uncertain"]) == 0
    assert snapshot(execution) == before
    lines = [r for r in caplog.records if r.name.startswith("runs.engine")]
    assert len(lines) == 2 and all("no longer holds" in r.getMessage() for r in lines)


def test_a_delivery_insert_under_a_stale_claim_writes_nothing_and_raises_claim_lost(claimed, caplog):
    execution, delivery_id = claimed
    Delivery.objects.filter(pk=delivery_id).delete()
    reclaimed_and_claimed_again(execution)
    with caplog.at_level(logging.INFO, logger="runs.engine"), pytest.raises(ClaimLost):
        DeliveryLedger().create(**fields(execution))
    assert not Delivery.objects.filter(step_execution=execution).exists()
    with pytest.raises(ClaimLost):
        DeliveryLedger().create_many([fields(execution)])
    assert not Delivery.objects.filter(step_execution=execution).exists()
    assert connection.connection.info.transaction_status == 0, "the connection is idle and usable"


def test_a_settle_after_the_sweeper_reclaimed_leaves_the_execution_pending(claimed, clock):
    execution, _ = claimed
    StepExecution.objects.filter(pk=execution.pk).update(status="pending", claimed_by="")
    assert settle([execution], {execution.pk: Outcome(StepExecution.Status.FAILED)}, clock.now) == []
    assert StepExecution.objects.get(pk=execution.pk).status == "pending"


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.OperationalError("the connection is closed"),
        psycopg.InterfaceError("the connection is lost"),
        OperationalError("server closed the connection unexpectedly"),
    ],
    ids=["AdminShutdown", "psycopg-OperationalError", "psycopg-InterfaceError", "django-OperationalError"],
)
def test_a_database_error_from_any_layer_interrupts_the_batch(error, db):
    assert interrupts_batch(error)


def test_an_item_error_does_not_interrupt_the_batch(db):
    assert not interrupts_batch(ValueError("bad item"))
    assert not interrupts_batch(psycopg.errors.UniqueViolation("duplicate key"))


def test_a_batch_that_loses_its_claim_mid_send_writes_no_children_and_no_outcome(
    clock, smtp, tenant_a, monkeypatch
):
    """The claim is taken away while the message is with the SMTP server (the sweeper reclaimed it and
    another worker holds it now): the answer's mark is refused, the batch stops, and neither the step's
    children nor its outcome are written by the worker that lost it."""
    from django.test import override_settings

    from runs.engine.executor import run_batch
    from tests.support import subprocess_database_url

    workflow = build_workflow(tenant_a, webhook([email(children=[email(to="boss@example.com")])]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-midsend")
    with override_settings(ENGINE_FOLLOW_MAX_STEPS=0):
        run_batch(run.pk, workflow.published_version.steps.get(parent=None).pk)
    first = StepExecution.objects.get(run=run, step__kind="send_email")  # only the first email so far
    monkeypatch.setattr(liveness, "worker_name", ZOMBIE)
    monkeypatch.setattr(liveness, "_last_beat", time.monotonic())  # it beats: its lease looks fine
    accept = smtp.handle_DATA

    async def handle_data(server, session, envelope):
        with psycopg.connect(subprocess_database_url(), autocommit=True) as other:
            other.execute(
                "UPDATE runs_stepexecution SET claimed_by = 'worker-b', attempts = attempts + 1 WHERE id = %s",
                [first.pk],
            )
        return await accept(server, session, envelope)

    smtp.handle_DATA = handle_data
    run_batch(run.pk, first.step_id)  # ends quietly: not a failed job

    assert len(smtp.messages) == 1
    first.refresh_from_db()
    assert (first.status, first.claimed_by, first.attempts) == ("running", "worker-b", 2)
    assert Delivery.objects.get(step_execution=first).status == "sending", "the next attempt reports it"
    assert not StepExecution.objects.filter(run=run, parent=first).exists(), "no children of a lost claim"
