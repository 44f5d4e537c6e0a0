"""The wait "until the row matches, at most a while", against a real customer database and the real
listener: woken by `UPDATE … SET status = 'paid'` without the clock moving (no polling), the timeout path
otherwise, a condition already true, a row deleted while waiting, many runs on one row, and a change racing
the timeout (exactly one outcome, one path)."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from django.db import connection

from runs import row_changes
from runs.engine import start_run
from runs.engine.enqueue import enqueue_batch
from runs.listener import Listener
from runs.models import Run, StepExecution
from tests.engine.conftest import (
    build_workflow,
    customer_db,
    data_source,
    email,
    on_path,
    settle,
    webhook,
    work,
)
from tests.triggers.conftest import pg_triggers
from workflows.models import ROW_WATCH_BASE, RowWait, RowWatch
from workflows.publishing import unpublish
from workflows.steps import ConfigError, get_kind

ORDERS = """
CREATE TABLE orders (id int PRIMARY KEY, email text, name text, status text);
INSERT INTO orders SELECT n, 'u' || n || '@example.com', 'User ' || n, 'new' FROM generate_series(1, 30) n;
"""
PAID = "row.status == 'paid'"


def row_wait(source, condition: str = PAID, key: str = "{{ item.order_id }}", days: float = 3) -> dict:
    return {
        "mode": "row",
        "datasource": source.pk,
        "table": "orders",
        "key": key,
        "condition": condition,
        "timeout_amount": days,
        "timeout_unit": "days",
    }


def pay_reminder(tenant, source, **wait) -> object:
    """webhook → wait until the order is paid (3 days at most) → met: thanks / timed out: reminder."""
    spec = webhook(
        [
            {
                "kind": "wait",
                "config": row_wait(source, **wait),
                "children": [
                    on_path("met", email(subject="Thanks for paying {{ item._row.status }}")),
                    on_path("timed_out", email(subject="Please pay")),
                ],
            }
        ]
    )
    return build_workflow(tenant, spec, name="Pay reminder")


@pytest.fixture
def source(tenant_a, tenant_database):
    customer_db(tenant_database, ORDERS)
    return data_source(tenant_a, tenant_database)


def start(workflow, order_id: int, n: int = 0) -> Run:
    return start_run(
        workflow,
        {"email": f"u{order_id}@example.com", "name": "U", "order_id": order_id},
        f"ev-{order_id}-{n}",
    )


def the_wait(run) -> StepExecution:
    return StepExecution.objects.get(run=run, step__kind="wait")


def subjects(smtp) -> list[str]:
    return sorted(message["Subject"] for message in smtp.messages)


def listen() -> int:
    return Listener().run(until_idle=True)


def test_publishing_a_row_wait_watches_its_table_though_no_workflow_triggers_on_it(
    clock, tenant_a, tenant_database, source
):
    workflow = pay_reminder(tenant_a, source)
    watch = RowWatch.objects.get()
    assert (watch.schema, watch.table, watch.key_column) == ("public", "orders", "id")
    number = ROW_WATCH_BASE + watch.pk
    assert pg_triggers(tenant_database) == [
        ("orders", f"rowbell_wf_{number}_delete"),
        ("orders", f"rowbell_wf_{number}_update"),
    ]
    unpublish(workflow)  # nothing waits and nothing published needs it: the capture goes
    assert pg_triggers(tenant_database) == [] and not RowWatch.objects.exists()


def test_a_wait_woken_by_update_paid_takes_the_met_path_without_the_clock_moving(
    clock, smtp, tenant_a, tenant_database, source
):
    run = start(pay_reminder(tenant_a, source), 1)
    work(clock)
    wait = the_wait(run)
    assert wait.status == "pending" and wait.output["waiting_for"] == PAID
    assert wait.next_attempt_at == clock.now + clock_days(3)

    customer_db(tenant_database, "UPDATE orders SET status = 'paid' WHERE id = 1")
    assert listen() == 1
    assert the_wait(run).next_attempt_at == clock.now  # due at once: no travel, no sweep, no poll
    work(clock)

    assert subjects(smtp) == ["Thanks for paying paid"]
    wait = the_wait(run)
    assert wait.status == "succeeded" and wait.output["path"] == "Row matched"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_other_changes_do_not_wake_it_and_the_timeout_takes_the_timed_out_path(
    clock, smtp, tenant_a, tenant_database, source
):
    run = start(pay_reminder(tenant_a, source), 2)
    work(clock)
    customer_db(tenant_database, "UPDATE orders SET name = 'Bea', status = 'shipped' WHERE id = 2")
    customer_db(tenant_database, "UPDATE orders SET status = 'paid' WHERE id = 3")  # another order
    listen()
    assert the_wait(run).next_attempt_at == clock.now + clock_days(3)
    work(clock)
    assert smtp.messages == []

    settle(clock, step_seconds=86400)
    assert subjects(smtp) == ["Please pay"]
    assert RowWait.objects.get().outcome == "timed_out"


def test_a_condition_already_true_when_the_wait_starts_goes_on_at_once(
    clock, smtp, tenant_a, tenant_database, source
):
    customer_db(tenant_database, "UPDATE orders SET status = 'paid' WHERE id = 4")
    run = start(pay_reminder(tenant_a, source), 4)
    work(clock)
    assert subjects(smtp) == ["Thanks for paying paid"]
    assert the_wait(run).status == "succeeded"


def test_a_row_deleted_while_waiting_ends_the_path_filtered(clock, smtp, tenant_a, tenant_database, source):
    run = start(pay_reminder(tenant_a, source), 5)
    work(clock)
    customer_db(tenant_database, "DELETE FROM orders WHERE id = 5")
    listen()
    work(clock)
    wait = the_wait(run)
    assert (wait.status, wait.output["filtered"]) == ("filtered", "row deleted")
    assert smtp.messages == []
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_a_row_gone_before_the_wait_starts_ends_the_path_filtered(clock, smtp, tenant_a, source):
    run = start(pay_reminder(tenant_a, source), 999)
    work(clock)
    assert the_wait(run).output["filtered"] == "row deleted" and smtp.messages == []


def test_many_runs_waiting_on_one_row_are_all_woken_by_its_one_change(
    clock, smtp, tenant_a, tenant_database, source
):
    workflow = pay_reminder(tenant_a, source)
    runs = [start(workflow, 6, n) for n in range(12)]
    other = start(workflow, 7)
    work(clock)
    customer_db(tenant_database, "UPDATE orders SET status = 'paid' WHERE id = 6")
    listen()
    work(clock)
    assert subjects(smtp) == ["Thanks for paying paid"] * 12
    assert {the_wait(run).status for run in runs} == {"succeeded"}
    assert the_wait(other).status == "pending"


def test_the_timeout_decided_first_leaves_a_later_change_nothing_to_do(
    clock, smtp, tenant_a, tenant_database, source
):
    run = start(pay_reminder(tenant_a, source), 8)
    work(clock)
    settle(clock, step_seconds=86400)
    assert subjects(smtp) == ["Please pay"]
    customer_db(tenant_database, "UPDATE orders SET status = 'paid' WHERE id = 8")
    listen()
    work(clock)
    assert subjects(smtp) == ["Please pay"] and RowWait.objects.get().outcome == "timed_out"
    assert the_wait(run).status == "succeeded"


def test_a_change_racing_the_timeout_gives_each_wait_exactly_one_outcome_and_one_path(
    clock, smtp, tenant_a, tenant_database, source
):
    """30 waits past their timeout while their rows turn paid: the workers (deciding `timed_out`) and the
    listener (deciding `met`) race in two threads; each wait ends on one path, the one its outcome names."""
    workflow = pay_reminder(tenant_a, source)
    runs = [start(workflow, n) for n in range(1, 31)]
    work(clock)
    clock.travel(seconds=3 * 86400 + 1)
    StepExecution.objects.filter(step__kind="wait").update(next_attempt_at=clock.now)
    for run in runs:  # queued as the sweeper would
        enqueue_batch(run.pk, the_wait(run).step_id, execution_id=the_wait(run).pk, attempt=2)
    customer_db(tenant_database, "UPDATE orders SET status = 'paid'")

    def listener() -> None:
        try:
            listen()
        finally:
            connection.close()

    thread = threading.Thread(target=listener)
    thread.start()
    work(clock)
    thread.join(timeout=60)
    work(clock)

    outcomes = dict(RowWait.objects.values_list("execution_id", "outcome"))
    for run in runs:
        wait = the_wait(run)
        children = list(StepExecution.objects.filter(parent=wait).values_list("step__path", flat=True))
        assert len(children) == 1, children
        assert children[0] == outcomes[wait.pk] and wait.status == "succeeded"
    assert len(smtp.messages) == 30


def test_a_wait_without_its_watch_fails_with_the_reason(clock, tenant_a, source):
    workflow = pay_reminder(tenant_a, source)
    RowWatch.objects.all().delete()
    run = start(workflow, 9)
    work(clock)
    assert "is not watched yet" in the_wait(run).error


def test_the_form_names_what_a_row_wait_lacks():
    with pytest.raises(ConfigError) as caught:
        get_kind("wait").validate({"mode": "row", "table": "or ders", "condition": "", "timeout_amount": -1})
    assert set(caught.value.errors) == {"datasource", "table", "condition", "timeout_amount"}
    config = get_kind("wait").validate(
        {"mode": "row", "datasource": 1, "table": "orders", "condition": PAID, "timeout_amount": 2}
    )
    assert config["key"] == "{{ item.id }}" and get_kind("wait").paths(config) == [
        ("met", "Row matched"),
        ("timed_out", "Timed out"),
    ]


def clock_days(days: float) -> timedelta:
    return timedelta(days=days)


def test_a_wait_decided_while_its_execution_runs_is_woken_again_once_it_settled(
    clock, smtp, tenant_a, tenant_database, source
):
    """The instant between an execution's last look at the outcome and its settle: the listener decides
    `met` while the execution is `running`, the execution then settles as waiting until the timeout; the
    listener's next pass (rewake) makes it due at once."""
    run = start(pay_reminder(tenant_a, source), 10)
    work(clock)
    wait = the_wait(run)
    StepExecution.objects.filter(pk=wait.pk).update(status="running")  # a worker is checking the row
    customer_db(tenant_database, "UPDATE orders SET status = 'paid' WHERE id = 10")
    with psycopg.connect(tenant_database) as conn:
        rows = conn.execute("SELECT id, workflow_id, op, new_row, old_row FROM rowbell.event_log").fetchall()
    _done, running = row_changes.handle(source.pk, rows)
    assert running == [wait.pk] and RowWait.objects.get().outcome == "met"

    timeout = clock.now + clock_days(3)
    StepExecution.objects.filter(pk=wait.pk).update(status="pending", next_attempt_at=timeout)  # its settle
    assert row_changes.rewake(running) == []
    assert the_wait(run).next_attempt_at == clock.now
    work(clock)
    assert subjects(smtp) == ["Thanks for paying paid"]
