"""The wait's "read the row again" option, against a real customer database: a row deleted during the
wait ends the path `filtered`; a due column moved later reschedules the wait; a condition on the row as
it is now; a fresh item passed on; and the clear errors (no database trigger, no primary key, bad form)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs.engine import start_run
from runs.models import Run, StepExecution
from tests.engine.conftest import build_workflow, customer_db, data_source, email, settle, webhook, work
from workflows.steps import ConfigError, get_kind

ORDERS = """
CREATE TABLE orders (id int PRIMARY KEY, email text, name text, status text, pay_by timestamptz);
INSERT INTO orders VALUES (1, 'ada@example.com', 'Ada', 'new', '2026-03-05T09:00:00Z');
"""
ROW = {
    "id": 1,
    "email": "ada@example.com",
    "name": "Ada",
    "status": "new",
    "pay_by": "2026-03-05T09:00:00+00:00",
}


def reminder(tenant, source, wait_config: dict):
    trigger = {
        "kind": "database_trigger",
        "config": {"datasource": source.pk, "table": "orders", "operations": ["insert"]},
        "children": [
            {
                "kind": "wait",
                "config": wait_config,
                "children": [email(subject="Please pay, {{ item.name }}", text="status {{ item.status }}")],
            }
        ],
    }
    return build_workflow(tenant, trigger, name="Pay reminder")


def the_wait(run) -> StepExecution:
    return StepExecution.objects.get(run=run, step__kind="wait")


@pytest.fixture
def source(tenant_a, tenant_database):
    customer_db(tenant_database, ORDERS)
    return data_source(tenant_a, tenant_database)


DURATION = {"mode": "duration", "amount": 1, "unit": "days", "reread": True}


def test_a_row_deleted_during_the_wait_ends_the_path_filtered(clock, smtp, tenant_a, tenant_database, source):
    run = start_run(reminder(tenant_a, source, DURATION), ROW, "db:1")
    work(clock)
    customer_db(tenant_database, "DELETE FROM orders WHERE id = 1")
    settle(clock)

    wait = the_wait(run)
    assert (wait.status, wait.output) == ("filtered", {"filtered": "row deleted"})
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and smtp.recipients() == []


def test_the_row_as_it_is_now_goes_on(clock, smtp, tenant_a, tenant_database, source):
    run = start_run(reminder(tenant_a, source, DURATION), ROW, "db:1")
    work(clock)
    customer_db(tenant_database, "UPDATE orders SET name = 'Ada L.', status = 'reminded' WHERE id = 1")
    settle(clock)
    assert smtp.recipients() == ["ada@example.com"]
    assert smtp.messages[0]["Subject"] == "Please pay, Ada L."
    assert the_wait(run).output["status"] == "reminded"


def test_a_due_column_moved_later_reschedules_the_wait(clock, smtp, tenant_a, tenant_database, source):
    until = {"mode": "until", "field": "pay_by", "offset_amount": 1, "offset_unit": "days", "reread": True}
    run = start_run(reminder(tenant_a, source, until), ROW, "db:1")
    work(clock)
    assert the_wait(run).next_attempt_at == clock.now + timedelta(days=2)  # 1 day before pay_by
    customer_db(tenant_database, "UPDATE orders SET pay_by = '2026-03-10T09:00:00Z' WHERE id = 1")

    clock.travel(days=2, minutes=5)
    work(clock)
    from runs.engine.sweeper import sweep

    sweep()
    work(clock)
    wait = the_wait(run)
    assert wait.status == "pending" and smtp.recipients() == []
    assert wait.next_attempt_at.isoformat() == "2026-03-09T09:00:00+00:00"  # follows the new pay_by
    assert wait.output == {"waiting": "pay_by moved", "until": "2026-03-09T09:00:00+00:00"}

    clock.travel(days=5)
    sweep()
    work(clock)
    assert smtp.recipients() == ["ada@example.com"]
    assert the_wait(run).status == "succeeded"


def test_a_due_column_cleared_ends_the_path(clock, smtp, tenant_a, tenant_database, source):
    until = {"mode": "until", "field": "pay_by", "reread": True}
    run = start_run(reminder(tenant_a, source, until), ROW, "db:1")
    work(clock)
    customer_db(tenant_database, "UPDATE orders SET pay_by = NULL")
    settle(clock, step_seconds=86400)
    assert the_wait(run).output == {"filtered": "row's pay_by is empty now"}
    assert smtp.recipients() == []


def test_the_row_must_still_match_the_condition(clock, smtp, tenant_a, tenant_database, source):
    config = {**DURATION, "still_matches": "item.status != 'paid'"}
    paid = start_run(reminder(tenant_a, source, config), ROW, "db:1")
    work(clock)
    customer_db(tenant_database, "UPDATE orders SET status = 'paid'")
    settle(clock)
    assert the_wait(paid).output == {"filtered": "row no longer matches: item.status != 'paid'"}
    assert smtp.recipients() == []


def test_rereading_under_a_webhook_trigger_fails_with_the_reason(clock, smtp, tenant_a):
    workflow = build_workflow(
        tenant_a, webhook([{"kind": "wait", "config": DURATION, "children": [email()]}])
    )
    run = start_run(workflow, {"id": 1, "email": "a@example.com", "name": "A"}, "w1")
    settle(clock)
    wait = the_wait(run)
    assert wait.status == "failed" and "needs a database trigger" in wait.error


def test_a_table_without_primary_key_or_a_row_without_its_key_fails_with_the_reason(
    clock, smtp, tenant_a, tenant_database, source
):
    run = start_run(reminder(tenant_a, source, DURATION), {"email": "x@example.com"}, "db:nokey")
    customer_db(tenant_database, "CREATE TABLE audit (note text)")
    settle(clock)
    assert "has no id" in the_wait(run).error
    assert the_wait(run).status == "failed"


def test_the_form_refuses_a_condition_without_reread_and_a_bad_expression():
    wait = get_kind("wait")
    with pytest.raises(ConfigError) as missing:
        wait.validate({"mode": "duration", "amount": 1, "unit": "days", "still_matches": "item.a"})
    assert "Read the row again" in str(missing.value.errors)
    with pytest.raises(ConfigError):
        wait.validate({**DURATION, "still_matches": "item.status =="})
    stored = wait.validate({**DURATION, "still_matches": "item.status != 'paid'"})
    assert stored == {**DURATION, "still_matches": "item.status != 'paid'"}
    assert wait.validate({"mode": "duration", "amount": 1, "unit": "days"}) == {
        "mode": "duration",
        "amount": 1,
        "unit": "days",
    }
