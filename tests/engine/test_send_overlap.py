"""A send's Delivery row is committed while the SMTP envelope goes out, and always before DATA."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings as django_settings

from integrations.channels.email import EmailChannel
from runs.engine import start_run
from runs.engine.ledger import DeliveryLedger
from runs.models import Delivery, StepExecution
from tests.engine.conftest import build_workflow, email, webhook


def other_connection() -> psycopg.Connection:
    db = django_settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
        autocommit=True,
    )


MESSAGE = {"to": "ann@example.com", "subject": "Hi", "text": "Hello"}


def test_before_data_runs_after_the_envelope_and_before_the_message_is_handed_over(smtp):
    seen = []
    with EmailChannel() as channel:
        channel.send(MESSAGE, before_data=lambda: seen.append(len(smtp.messages)))
    assert seen == [0] and smtp.recipients() == ["ann@example.com"]


def test_a_failing_before_data_sends_nothing_and_the_connection_goes_on(smtp):
    def fail():
        raise RuntimeError("the delivery row could not be written")

    with EmailChannel() as channel:
        with pytest.raises(RuntimeError):
            channel.send(MESSAGE, before_data=fail)
        assert smtp.messages == []
        channel.send({**MESSAGE, "to": "bob@example.com"}, before_data=lambda: None)
    assert smtp.recipients() == ["bob@example.com"]


@pytest.mark.django_db(transaction=True)
def test_begin_returns_once_sent_and_wait_once_the_row_is_committed(redis_conn, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    execution = StepExecution.objects.get(run=run)
    ledger = DeliveryLedger()
    fields = {
        "tenant_id": tenant_a.pk,
        "run_id": run.pk,
        "channel": "email",
        "recipient": "ann@example.com",
        "status": "sending",
        "content": {"to": "ann@example.com"},
    }
    written = ledger.begin(execution_id=execution.pk, **fields)
    delivery_id = written.wait()
    with other_connection() as conn:  # durable and visible to everyone once wait() returns
        assert conn.execute("SELECT status FROM runs_delivery WHERE id = %s", [delivery_id]).fetchone() == (
            "sending",
        )
    ledger.sent(delivery_id, "<id@example.com>")
    # A second begin for the same execution violates UNIQUE(step_execution): wait() raises, the
    # previous mark (carried by that statement) is rolled back with it but kept for the next write,
    # and the connection works on.
    failing = ledger.begin(execution_id=execution.pk, **fields)
    with pytest.raises(Exception, match="delivery"):
        failing.wait()
    assert Delivery.objects.get(pk=delivery_id).status == "sending"
    ledger.flush()
    assert Delivery.objects.get(pk=delivery_id).status == "sent"
    assert Delivery.objects.count() == 1
