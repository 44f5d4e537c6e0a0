"""Database trigger end to end against a real customer database, with the listener run in-process."""

from __future__ import annotations

import psycopg
import pytest

from integrations.datasources import installed_triggers
from runs.listener import Listener
from runs.models import Run
from tests.triggers.conftest import customer_execute, db_trigger_workflow, pg_triggers, set_root_config
from workflows.publishing import archive_or_delete, publish, unpublish
from workflows.steps.base import PublishError

pytestmark = pytest.mark.django_db


def listen_until_idle() -> int:
    return Listener().run(until_idle=True)


def payloads(workflow) -> list[dict]:
    return [run.payload for run in Run.objects.filter(workflow=workflow).order_by("id")]


def test_insert_starts_one_run_with_the_row_as_item(datasource, customer_db):
    workflow = db_trigger_workflow(datasource)
    customer_execute(customer_db, "INSERT INTO orders (email, amount) VALUES ('a@example.com', 12.5)")

    assert listen_until_idle() == 1

    run = Run.objects.get(workflow=workflow)
    assert run.payload == {"id": 1, "email": "a@example.com", "status": "new", "note": None, "amount": 12.5}
    assert run.event_key.startswith(f"db:{datasource.pk}:")
    assert run.version_id == workflow.published_version_id
    assert customer_execute(customer_db, "SELECT count(*) FROM rowbell.event_log") == [(0,)]


def test_update_of_a_watched_column_carries_old_and_new_rows(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, operations=("update",), watch=("status",))
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
    customer_execute(customer_db, "UPDATE orders SET note = 'unwatched' WHERE id = 1")
    customer_execute(customer_db, "UPDATE orders SET status = 'paid' WHERE id = 1")

    listen_until_idle()

    [item] = payloads(workflow)
    assert item["status"] == "paid"
    assert item["note"] == "unwatched"
    assert item["_old"]["status"] == "new"
    assert item["_old"]["note"] == "unwatched"


def test_insert_only_trigger_ignores_updates(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, operations=("insert",))
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
    customer_execute(customer_db, "UPDATE orders SET status = 'paid'")

    listen_until_idle()

    assert [item["status"] for item in payloads(workflow)] == ["new"]
    assert "_old" not in payloads(workflow)[0]


def test_update_without_watched_columns_fires_only_when_something_changed(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, operations=("insert", "update"))
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
    customer_execute(customer_db, "UPDATE orders SET status = status")  # a no-op update
    customer_execute(customer_db, "UPDATE orders SET note = 'x'")

    listen_until_idle()

    items = payloads(workflow)
    assert len(items) == 2
    assert "_old" not in items[0]
    assert items[1]["_old"]["note"] is None and items[1]["note"] == "x"


def test_events_written_while_the_listener_was_down_all_run_in_order(datasource, customer_db):
    workflow = db_trigger_workflow(datasource)
    customer_execute(
        customer_db,
        "INSERT INTO orders (email) SELECT 'u' || n || '@example.com' FROM generate_series(1, 200) n",
    )

    listen_until_idle()

    assert [item["id"] for item in payloads(workflow)] == list(range(1, 201))


def test_rows_committed_out_of_id_order_all_get_their_run(datasource, customer_db):
    workflow = db_trigger_workflow(datasource)
    slow = psycopg.connect(customer_db)
    try:
        slow.execute("INSERT INTO orders (email) VALUES ('slow@example.com')")  # takes id 1, not committed
        for n in range(2, 6):
            customer_execute(customer_db, "INSERT INTO orders (email) VALUES (%s)", (f"u{n}@example.com",))
        listen_until_idle()
        assert sorted(item["id"] for item in payloads(workflow)) == [2, 3, 4, 5]
        slow.commit()
    finally:
        slow.close()

    listen_until_idle()

    assert sorted(item["id"] for item in payloads(workflow)) == [1, 2, 3, 4, 5]


def test_two_workflows_on_one_table_each_get_every_event(datasource, customer_db):
    first = db_trigger_workflow(datasource, name="First")
    second = db_trigger_workflow(datasource, name="Second")
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com'), ('b@example.com')")

    listen_until_idle()

    assert [item["email"] for item in payloads(first)] == ["a@example.com", "b@example.com"]
    assert [item["email"] for item in payloads(second)] == ["a@example.com", "b@example.com"]


def test_a_log_row_processed_twice_starts_one_run(datasource, customer_db):
    """A crash after the runs committed but before the delete: the next claim must not start them again."""
    from runs.listener import start_runs_for_events

    workflow = db_trigger_workflow(datasource)
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
    rows = customer_execute(
        customer_db, "SELECT id, workflow_id, op, new_row, old_row FROM rowbell.event_log"
    )
    start_runs_for_events(datasource, rows)  # the "crashed" listener: runs committed, rows not deleted

    listen_until_idle()

    assert Run.objects.filter(workflow=workflow).count() == 1
    assert customer_execute(customer_db, "SELECT count(*) FROM rowbell.event_log") == [(0,)]


def test_unpublish_and_archive_remove_the_trigger(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, operations=("insert", "update"))
    assert pg_triggers(customer_db) == [
        ("orders", f"rowbell_wf_{workflow.pk}_insert"),
        ("orders", f"rowbell_wf_{workflow.pk}_update"),
    ]

    unpublish(workflow)
    assert pg_triggers(customer_db) == []

    publish_again(workflow)
    assert len(pg_triggers(customer_db)) == 2
    archive_or_delete(workflow)
    assert pg_triggers(customer_db) == []


def publish_again(workflow):
    from workflows.publishing import get_or_create_draft

    get_or_create_draft(workflow)
    publish(workflow)


def test_republish_on_another_table_removes_the_old_trigger(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, table="orders")
    set_root_config(
        workflow,
        {"datasource": datasource.pk, "schema": "public", "table": "signups", "operations": ["insert"]},
    )
    publish(workflow)

    assert pg_triggers(customer_db) == [("signups", f"rowbell_wf_{workflow.pk}_insert")]
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('ignored@example.com')")
    customer_execute(customer_db, "INSERT INTO signups (email) VALUES ('new@example.com')")
    listen_until_idle()
    assert [item["email"] for item in payloads(workflow)] == ["new@example.com"]


def test_installing_twice_leaves_one_trigger_per_operation(datasource, customer_db):
    workflow = db_trigger_workflow(datasource)
    publish_again(workflow)
    publish_again(workflow)

    assert installed_triggers(datasource, workflow.pk) == [
        ("public", "orders", f"rowbell_wf_{workflow.pk}_insert")
    ]


def test_publishing_onto_a_missing_table_fails_with_the_reason_and_publishes_nothing(datasource):
    from tests.triggers.conftest import make_workflow

    config = {"datasource": datasource.pk, "schema": "public", "table": "nope", "operations": ["insert"]}
    workflow = make_workflow(datasource.tenant, "database_trigger", config)

    with pytest.raises(PublishError) as raised:
        publish(workflow)

    [errors] = raised.value.step_errors.values()
    assert "public.nope" in errors["table"] and "does not exist" in errors["table"]
    workflow.refresh_from_db()
    assert workflow.published_version is None


def test_another_tenants_data_source_cannot_be_used(datasource, tenant_b):
    from tests.triggers.conftest import make_workflow

    config = {"datasource": datasource.pk, "schema": "public", "table": "orders", "operations": ["insert"]}
    workflow = make_workflow(tenant_b, "database_trigger", config)

    with pytest.raises(PublishError) as raised:
        publish(workflow)

    [errors] = raised.value.step_errors.values()
    assert "does not exist" in errors["datasource"]


def test_events_of_unknown_workflows_neither_block_the_queue_nor_stay_forever(
    datasource, customer_db, settings
):
    from integrations.datasources import TriggerSpec, install_trigger

    settings.LISTENER_ORPHAN_GRACE = 3600
    install_trigger(datasource, 424242, TriggerSpec(schema="public", table="orders"))  # a leftover trigger
    workflow = db_trigger_workflow(datasource)
    settings.LISTENER_BATCH_SIZE = 2  # the leftover's rows come first in id order
    customer_execute(customer_db, "INSERT INTO orders (email) SELECT 'u' || n FROM generate_series(1, 5) n")

    listen_until_idle()

    assert len(payloads(workflow)) == 5
    assert customer_execute(
        customer_db, "SELECT workflow_id, count(*) FROM rowbell.event_log GROUP BY 1"
    ) == [(424242, 5)]
    settings.LISTENER_ORPHAN_GRACE = 0
    listen_until_idle()
    assert customer_execute(customer_db, "SELECT count(*) FROM rowbell.event_log") == [(0,)]


def test_an_orphan_sweep_that_times_out_does_not_hold_up_events_and_big_backlogs_go_in_slices(
    datasource, customer_db, settings
):
    from integrations.datasources import TriggerSpec, install_trigger

    settings.LISTENER_ORPHAN_GRACE = 0
    settings.LISTENER_STATEMENT_TIMEOUT = 1
    settings.LISTENER_ORPHAN_BATCH = 2
    install_trigger(datasource, 424242, TriggerSpec(schema="public", table="orders"))  # a leftover trigger
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('before')")  # its first orphan row
    workflow = db_trigger_workflow(datasource)
    customer_execute(customer_db, "INSERT INTO orders (email) SELECT 'u' || n FROM generate_series(1, 3) n")
    locker = psycopg.connect(customer_db)  # holds an orphan row: the sweep's DELETE waits, then is cancelled
    locker.execute(
        "SELECT 1 FROM rowbell.event_log WHERE workflow_id = 424242 ORDER BY id LIMIT 1 FOR UPDATE"
    )
    try:
        listen_until_idle()
        assert len(payloads(workflow)) == 3
    finally:
        locker.close()
    assert customer_execute(customer_db, "SELECT count(*) FROM rowbell.event_log") == [(4,)]
    listen_until_idle()  # four orphans, two per slice: one sweep
    assert customer_execute(customer_db, "SELECT count(*) FROM rowbell.event_log") == [(0,)]


def test_listener_status_follows_publishing(datasource, customer_db):
    from integrations.models import DataSource

    workflow = db_trigger_workflow(datasource)
    listener = Listener()
    listener.run_once()
    source = DataSource.objects.get(pk=datasource.pk)
    assert (source.listener_status, source.listener_error) == ("listening", "")
    assert source.listener_seen_at is not None

    unpublish(workflow)
    listener.refresh_sources()

    assert DataSource.objects.get(pk=datasource.pk).listener_status == "idle"
    assert listener.pollers == {}
