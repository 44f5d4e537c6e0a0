"""Nothing runs twice, transient errors retry with growing delays, permanent ones fail at once."""

from __future__ import annotations

import django_rq

from runs.engine import start_run
from runs.engine.enqueue import JOB
from runs.engine.executor import run_batch
from runs.engine.retry import backoff_bound
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import (
    build_workflow,
    customer_db,
    data_source,
    email,
    query,
    settle,
    webhook,
    work,
)


def test_the_same_job_enqueued_twice_sends_once(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    send = StepExecution.objects.get(run=run, step__kind="send_email")
    # A second copy of a job that already ran (another path, a re-delivery): it finds nothing to claim.
    django_rq.get_queue("default").enqueue(JOB, run.pk, send.step_id, 0)
    django_rq.get_queue("default").enqueue(JOB, run.pk, send.step_id, 0)
    work(clock)
    assert smtp.recipients() == ["ann@example.com"]
    assert StepExecution.objects.filter(run=run).count() == 2


def test_a_run_started_twice_with_one_event_key_runs_once(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    first = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    second = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    third = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    assert first.pk == second.pk == third.pk
    assert Run.objects.count() == 1
    assert smtp.recipients() == ["ann@example.com"]


def test_a_fan_out_executed_again_after_its_children_exist_creates_nothing_twice(
    clock, smtp, tenant_a, tenant_database
):
    customer_db(
        tenant_database,
        "CREATE TABLE u (id int, email text); INSERT INTO u SELECT g, 'u'||g||'@x.io' "
        "FROM generate_series(1, 30) g",
    )
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(
        tenant_a,
        webhook([query(source, "SELECT id, email FROM u", children=[email(subject="Hi", text="Hi")])]),
    )
    run = start_run(workflow, {}, "evt-1")
    work(clock)
    fan_out = StepExecution.objects.get(run=run, step__kind="data_query")
    # As if its worker died after writing the children but before marking it done.
    StepExecution.objects.filter(pk=fan_out.pk).update(status="pending", next_attempt_at=clock.now)
    Run.objects.filter(pk=run.pk).update(status="running")
    assert run_batch(run.pk, fan_out.step_id) == 1
    work(clock)
    assert StepExecution.objects.filter(run=run, step__kind="send_email").count() == 30
    assert sorted(smtp.recipients()) == sorted(f"u{i}@x.io" for i in range(1, 31))


def test_451_twice_then_250_sends_one_email_after_two_retries_with_growing_delays(clock, smtp, tenant_a):
    smtp.script = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    send = StepExecution.objects.get(run=run, step__kind="send_email")
    assert (send.status, send.attempts) == ("pending", 1)
    assert "451" in send.error
    first_delay = (send.next_attempt_at - clock.now).total_seconds()
    assert 0 <= first_delay <= backoff_bound(1, {}) == 2

    clock.travel(seconds=2.5)
    work(clock)
    send.refresh_from_db()
    assert (send.status, send.attempts) == ("pending", 2)
    second_delay = (send.next_attempt_at - clock.now).total_seconds()
    assert 0 <= second_delay <= backoff_bound(2, {}) == 6
    assert backoff_bound(3, {}) == 18 and backoff_bound(20, {}) == 3600

    clock.travel(seconds=6.5)
    work(clock)
    send.refresh_from_db()
    run.refresh_from_db()
    assert (send.status, send.attempts) == ("succeeded", 3)
    assert smtp.recipients() == ["ann@example.com"]
    assert Delivery.objects.get(step_execution=send).status == "sent"
    assert run.status == "succeeded"


def test_550_fails_at_once_with_the_servers_reason(clock, smtp, tenant_a):
    smtp.refuse["gone@example.com"] = "550 5.1.1 No such user here"
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "gone@example.com", "name": "G"}, "evt-1")
    work(clock)
    send = StepExecution.objects.get(run=run, step__kind="send_email")
    run.refresh_from_db()
    assert (send.status, send.attempts) == ("failed", 1)
    assert "550 5.1.1 No such user here" in send.error
    delivery = Delivery.objects.get(step_execution=send)
    assert delivery.status == "failed" and "No such user" in delivery.error
    assert run.status == "failed"


def test_a_failing_branch_leaves_its_sibling_running_to_success(clock, smtp, tenant_a):
    smtp.refuse["gone@example.com"] = "550 5.1.1 No such user here"
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                email(to="gone@example.com", subject="A", text="a"),
                {
                    "kind": "wait",
                    "config": {"mode": "duration", "amount": 5, "unit": "minutes"},
                    "children": [
                        email(to="ok@example.com", subject="B", text="b"),
                    ],
                },
            ]
        ),
    )
    run = start_run(workflow, {}, "evt-1")
    settle(clock, step_seconds=600)
    run.refresh_from_db()
    assert smtp.recipients() == ["ok@example.com"]
    assert run.status == Run.Status.PARTIAL


def test_transient_errors_give_up_after_max_attempts(clock, smtp, tenant_a):
    smtp.script = ["451 busy"] * 3
    workflow = build_workflow(tenant_a, webhook([email(max_attempts=3)]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    settle(clock, step_seconds=60)
    send = StepExecution.objects.get(run=run, step__kind="send_email")
    assert (send.status, send.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in send.error
    assert smtp.recipients() == []


REFUSE_BOBS_DELIVERY = """
CREATE FUNCTION test_refuse_bob() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.recipient = 'bob@example.com' THEN RAISE EXCEPTION 'disk full (test)'; END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_bob BEFORE INSERT ON runs_delivery FOR EACH ROW EXECUTE FUNCTION test_refuse_bob();
"""


def test_a_message_leaves_only_after_its_delivery_row_is_committed(
    clock, smtp, tenant_a, tenant_database, settings
):
    """Over one SMTP connection, the envelope overlaps the Delivery insert; the message itself waits for
    the commit. Here Rowbell's own database refuses Bob's row (a real trigger standing in for a failing
    disk). (Several connections: tests/engine/test_concurrent_sends.py.)"""
    from django.db import connection

    settings.EMAIL_SMTP_CONNECTIONS = 1

    customer_db(
        tenant_database,
        "CREATE TABLE people (id int PRIMARY KEY, email text, name text);"
        "INSERT INTO people VALUES (1, 'ann@example.com', 'Ann'), (2, 'bob@example.com', 'Bob'),"
        " (3, 'cid@example.com', 'Cid');",
    )
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(
        tenant_a,
        webhook([query(source, "SELECT id, email, name FROM people ORDER BY id", children=[email()])]),
    )
    with connection.cursor() as cursor:
        cursor.execute(REFUSE_BOBS_DELIVERY)
    run = start_run(workflow, {}, "evt-1")
    work(clock)

    assert sorted(smtp.recipients()) == ["ann@example.com", "cid@example.com"]  # Bob's never left
    # Ann's `sent` mark rode on Bob's failed statement: it is written with Cid's instead.
    assert dict(Delivery.objects.values_list("recipient", "status")) == {
        "ann@example.com": "sent",
        "cid@example.com": "sent",
    }
    bob = StepExecution.objects.get(run=run, step__kind="send_email", input__name="Bob")
    assert bob.status == "pending" and "disk full (test)" in bob.error

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_bob ON runs_delivery; DROP FUNCTION test_refuse_bob()")
    settle(clock, step_seconds=60)
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert sorted(smtp.recipients()) == ["ann@example.com", "bob@example.com", "cid@example.com"]
