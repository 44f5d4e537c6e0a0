"""Capturing deletes: the deleted row reaches the run as its item and as `_old`; installs made by an
older Rowbell are upgraded; a setup SQL too old to drop delete triggers is named before anything is
installed."""

from __future__ import annotations

import pytest

from integrations import datasources
from integrations.datasources.triggers import CAPTURE_FUNCTION, SQL_VERSION
from integrations.models import DataSource
from runs.listener import Listener
from runs.models import Run
from tests.triggers.conftest import customer_execute, db_trigger_workflow, pg_triggers
from tests.triggers.test_datasources import least_privilege  # noqa: F401  (fixture)
from workflows.publishing import unpublish
from workflows.steps import get_kind
from workflows.steps.base import PublishError

pytestmark = pytest.mark.django_db

# The capture function as Rowbell 1 wrote it: no DELETE branch (what an existing source still has).
OLD_CAPTURE = CAPTURE_FUNCTION.replace(
    "to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END)", "to_jsonb(NEW)"
).replace("TG_OP IN ('UPDATE', 'DELETE')", "TG_OP = 'UPDATE'")


def payloads(workflow) -> list[dict]:
    return [run.payload for run in Run.objects.filter(workflow=workflow).order_by("id")]


def test_a_deleted_row_starts_a_run_whose_item_and_old_carry_the_row(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, operations=("delete",))
    customer_execute(customer_db, "INSERT INTO orders (email, status) VALUES ('a@example.com', 'paid')")
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('b@example.com')")
    customer_execute(customer_db, "UPDATE orders SET note = 'x'")
    customer_execute(customer_db, "DELETE FROM orders WHERE email = 'a@example.com'")

    assert Listener().run(until_idle=True) == 1

    [item] = payloads(workflow)
    assert item["id"] == 1 and item["email"] == "a@example.com" and item["_deleted"] is True
    assert item["_old"] == {"id": 1, "email": "a@example.com", "status": "paid", "note": "x", "amount": 0.0}
    assert sorted(name for _, name in pg_triggers(customer_db)) == [f"rowbell_wf_{workflow.pk}_delete"]


def test_all_three_operations_each_start_their_run_and_unpublish_drops_all_three(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, operations=("insert", "update", "delete"))
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
    customer_execute(customer_db, "UPDATE orders SET status = 'paid'")
    customer_execute(customer_db, "DELETE FROM orders")
    Listener().run(until_idle=True)

    items = payloads(workflow)
    assert [(i["status"], i.get("_old", {}).get("status"), i.get("_deleted")) for i in items] == [
        ("new", None, None),
        ("paid", "new", None),
        ("paid", "paid", True),
    ]
    unpublish(workflow)
    assert pg_triggers(customer_db) == []


def test_truncate_is_not_a_delete_and_starts_nothing(datasource, customer_db):
    workflow = db_trigger_workflow(datasource, operations=("delete",))
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('a@example.com')")
    customer_execute(customer_db, "TRUNCATE orders")
    Listener().run(until_idle=True)
    assert payloads(workflow) == []


def test_a_source_installed_by_an_older_rowbell_is_upgraded_on_publish(datasource, customer_db):
    insert_only = db_trigger_workflow(datasource, operations=("insert",), name="Old")
    # Turn the installed functions back into Rowbell 1's, as on a source set up before deletes existed.
    for name in ("capture_row", "capture_row_notify"):
        customer_execute(customer_db, OLD_CAPTURE.format(name=name, notify=""))
        customer_execute(customer_db, f"COMMENT ON FUNCTION rowbell.{name}() IS 'rowbell-triggers-1'")
    customer_execute(customer_db, "INSERT INTO orders (email) VALUES ('old@example.com')")
    Listener().run(until_idle=True)
    assert [item["email"] for item in payloads(insert_only)] == ["old@example.com"]  # old triggers work

    deletes = db_trigger_workflow(datasource, operations=("delete",), name="Deletes")
    customer_execute(customer_db, "DELETE FROM orders")
    Listener().run(until_idle=True)

    assert [item["email"] for item in payloads(deletes)] == ["old@example.com"]
    assert customer_execute(
        customer_db, "SELECT obj_description('rowbell.capture_row()'::regprocedure, 'pg_proc')"
    ) == [(SQL_VERSION,)]


def test_delete_is_refused_with_the_fix_when_the_setup_sql_predates_it(
    tenant_a,
    least_privilege,  # noqa: F811  (the fixture imported above)
    customer_db,
):
    source = DataSource.objects.create(
        tenant=tenant_a, name="Shop", connection_url=least_privilege["rowbell_url"]
    )
    app_url = least_privilege["app_url"]
    # The drop helper as an older setup SQL created it: it refuses `_delete` names.
    helper = datasources.setup.DROP_HELPER.replace("(insert|update|delete)", "(insert|update)")
    customer_execute(customer_db, helper)  # the admin who ran the setup owns it

    with pytest.raises(PublishError) as failure:
        db_trigger_workflow(source, operations=("insert", "delete"))
    message = str(failure.value.step_errors)
    assert "run it again" in message and "public.orders" in message
    assert pg_triggers(app_url) == []

    # After re-running the setup SQL's helper, publishing works and unpublishing drops the delete trigger.
    customer_execute(customer_db, datasources.setup.DROP_HELPER)
    workflow = db_trigger_workflow(source, operations=("delete",), name="Again")
    customer_execute(app_url, "INSERT INTO orders (email) VALUES ('a@example.com')")
    customer_execute(app_url, "DELETE FROM orders")
    Listener().run(until_idle=True)
    assert [item["email"] for item in payloads(workflow)] == ["a@example.com"]
    unpublish(workflow)
    assert pg_triggers(app_url) == []


def test_the_form_accepts_delete_and_names_bad_operations(datasource):
    kind = get_kind("database_trigger")
    assert "deleted" in kind.summary({"operations": ["update", "delete"], "table": "orders"})
    with pytest.raises(Exception, match="insert, update and delete"):
        kind.validate({"datasource": datasource.pk, "table": "orders", "operations": ["drop"]})
