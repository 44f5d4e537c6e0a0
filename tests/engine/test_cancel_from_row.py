"""Cancel from the row's state: a database trigger that starts runs from inserts cancels them when the
row's status becomes `cancelled` or the row is deleted (a tombstone with source `row`, from the listener's
capture of that row), and only then; a schedule trigger's runs get a cancel key too."""

from __future__ import annotations

import pytest

from runs.engine import start_run
from runs.listener import Listener
from runs.models import CancelTombstone, Run
from tests.engine.conftest import build_workflow, customer_db, data_source, email, settle, work
from tests.triggers.conftest import pg_triggers
from workflows.models import ROW_WATCH_BASE, RowWatch
from workflows.steps import ConfigError, get_kind

ORDERS = "CREATE TABLE orders (id int PRIMARY KEY, email text, name text, status text);"
CANCELS = {"cancel_when_column": "status", "cancel_when_value": "cancelled", "cancel_when_deleted": True}


@pytest.fixture
def source(tenant_a, tenant_database):
    customer_db(tenant_database, ORDERS)
    return data_source(tenant_a, tenant_database)


def order_reminder(tenant, source):
    trigger = {
        "kind": "database_trigger",
        "config": {
            "datasource": source.pk,
            "table": "orders",
            "operations": ["insert"],
            "cancel_key": "order:{{ item.id }}",
            **CANCELS,
        },
        "children": [
            {
                "kind": "wait",
                "config": {"mode": "duration", "amount": 1, "unit": "days"},
                "children": [email(subject="Your order {{ item.id }}")],
            }
        ],
    }
    return build_workflow(tenant, trigger, name="Order reminder")


def by_order(workflow) -> dict[int, Run]:
    return {run.payload["id"]: run for run in Run.objects.filter(workflow=workflow)}


def test_a_status_that_becomes_cancelled_or_a_deleted_row_cancels_that_orders_runs(
    clock, smtp, tenant_a, tenant_database, source
):
    workflow = order_reminder(tenant_a, source)
    watch = RowWatch.objects.get()
    names = [name for _table, name in pg_triggers(tenant_database)]
    assert names == sorted(
        [
            f"rowbell_wf_{ROW_WATCH_BASE + watch.pk}_delete",
            f"rowbell_wf_{ROW_WATCH_BASE + watch.pk}_update",
            f"rowbell_wf_{workflow.pk}_insert",
        ]
    )
    customer_db(
        tenant_database,
        "INSERT INTO orders VALUES (1, 'a@example.com', 'A', 'new'), (2, 'b@example.com', 'B', 'new'), "
        "(3, 'c@example.com', 'C', 'new')",
    )
    assert Listener().run(until_idle=True) == 3
    work(clock)

    customer_db(tenant_database, "UPDATE orders SET status = 'cancelled' WHERE id = 1")
    customer_db(
        tenant_database, "UPDATE orders SET name = 'C.' WHERE id = 1"
    )  # still cancelled: no new cancel
    customer_db(tenant_database, "DELETE FROM orders WHERE id = 2")
    customer_db(tenant_database, "UPDATE orders SET status = 'paid' WHERE id = 3")
    Listener().run(until_idle=True)

    tombstones = list(
        CancelTombstone.objects.order_by("key").values_list("key", "source", "cancelled", "created_by")
    )
    assert tombstones == [
        ("order:1", "row", 1, "a change of orders (status → cancelled)"),
        ("order:2", "row", 1, "a delete in orders"),
    ]
    settle(clock, step_seconds=86400)
    runs = by_order(workflow)
    assert [runs[n].status for n in (1, 2, 3)] == ["cancelled", "cancelled", "succeeded"]
    assert [m["Subject"] for m in smtp.messages] == ["Your order 3"]


def test_a_later_run_of_a_cancelled_order_is_cancelled_at_its_claim(
    clock, smtp, tenant_a, tenant_database, source
):
    workflow = order_reminder(tenant_a, source)
    customer_db(tenant_database, "INSERT INTO orders VALUES (7, 'g@example.com', 'G', 'new')")
    Listener().run(until_idle=True)
    customer_db(tenant_database, "UPDATE orders SET status = 'cancelled' WHERE id = 7")
    Listener().run(until_idle=True)  # the tombstone is written before any of the run's work was claimed
    settle(clock, step_seconds=86400)
    assert by_order(workflow)[7].status == "cancelled" and smtp.messages == []


def test_cancelling_from_the_row_needs_a_cancel_key_and_a_column_for_its_value():
    kind = get_kind("database_trigger")
    with pytest.raises(ConfigError) as caught:
        kind.validate(
            {"datasource": 1, "table": "orders", "cancel_when_deleted": True, "cancel_when_value": "x"}
        )
    assert set(caught.value.errors) == {"cancel_key", "cancel_when_column"}


def test_a_schedule_triggers_runs_carry_its_cancel_key(clock, tenant_a):
    trigger = {
        "kind": "schedule_trigger",
        "config": {
            "frequency": "daily",
            "time": "09:00",
            "timezone": "UTC",
            "cancel_key": "daily:{{ item.timezone }}",
        },
        "children": [],
    }
    workflow = build_workflow(tenant_a, trigger, name="Daily")
    run = start_run(workflow, {"scheduled_at": "2026-03-01T09:00:00Z", "timezone": "UTC"}, "schedule:1")
    assert run.cancel_key == "daily:UTC"
