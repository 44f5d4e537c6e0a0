"""Data sources: connection checks in words, introspection, and the least-privilege role of the setup SQL."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from integrations import datasources
from integrations.datasources import connection as connection_module
from integrations.models import DataSource
from runs.listener import Listener
from runs.models import Run
from tests.support import free_port
from tests.triggers.conftest import customer_execute, db_trigger_workflow, pg_triggers, set_root_config
from workflows.publishing import publish, unpublish

pytestmark = pytest.mark.django_db


def with_credentials(url: str, user: str, password: str = "", database: str | None = None) -> str:
    parts = urlsplit(url)
    auth = f"{user}:{password}@" if password else f"{user}@"
    path = f"/{database}" if database else parts.path
    host_and_port = parts.netloc.rpartition("@")[2]  # as written: a socket path keeps its case
    return urlunsplit(parts._replace(netloc=auth + host_and_port, path=path))


@pytest.fixture
def least_privilege(customer_db, pg_admin_url):
    """The customer's app role owning the tables, and Rowbell's role created by the setup SQL."""
    suffix = uuid.uuid4().hex[:8]
    app_role, rowbell_role, password = f"app_{suffix}", f"rowbell_{suffix}", f"pw-{suffix}"
    database = urlsplit(customer_db).path.lstrip("/")
    with psycopg.connect(customer_db, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{app_role}" LOGIN')
        conn.execute(f'ALTER TABLE orders OWNER TO "{app_role}"')
        conn.execute(f'ALTER TABLE signups OWNER TO "{app_role}"')
        conn.execute(datasources.setup_sql(rowbell_role, password, database, ["public"]))
    yield {
        "app_url": with_credentials(customer_db, app_role),
        "rowbell_url": with_credentials(customer_db, rowbell_role, password),
        "rowbell_role": rowbell_role,
    }
    with psycopg.connect(customer_db, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)",
            ([app_role, rowbell_role],),
        )
        conn.execute(f'DROP OWNED BY "{app_role}", "{rowbell_role}" CASCADE')
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP ROLE "{app_role}"')
        conn.execute(f'DROP ROLE "{rowbell_role}"')


def test_setup_role_can_do_everything_rowbell_needs_and_cannot_write(tenant_a, least_privilege):
    datasource = DataSource.objects.create(
        tenant=tenant_a, name="Shop", connection_url=least_privilege["rowbell_url"]
    )
    check = datasources.test_connection(datasource, [("public", "orders"), ("public", "signups")])
    assert check.ok, check.message

    workflow = db_trigger_workflow(datasource, operations=("insert", "update"), watch=("status",))
    app_url = least_privilege["app_url"]
    customer_execute(app_url, "INSERT INTO orders (email) VALUES ('a@example.com')")
    customer_execute(app_url, "UPDATE orders SET status = 'paid'")
    Listener().run(until_idle=True)
    items = [run.payload for run in Run.objects.filter(workflow=workflow).order_by("id")]
    assert [(item["status"], item.get("_old", {}).get("status")) for item in items] == [
        ("new", None),
        ("paid", "new"),
    ]
    assert [c.name for c in datasources.list_columns(datasource, "public", "orders")][:2] == ["id", "email"]

    # Re-publishing onto another table and unpublishing remove triggers on tables the role does not own.
    set_root_config(
        workflow,
        {"datasource": datasource.pk, "schema": "public", "table": "signups", "operations": ["insert"]},
    )
    publish(workflow)
    assert pg_triggers(app_url) == [("signups", f"rowbell_wf_{workflow.pk}_insert")]
    unpublish(workflow)
    assert pg_triggers(app_url) == []

    rowbell_url = least_privilege["rowbell_url"]
    for statement in (
        "INSERT INTO orders (email) VALUES ('intruder@example.com')",
        "UPDATE orders SET status = 'hacked'",
        "DELETE FROM orders",
        "TRUNCATE orders",
        "ALTER TABLE orders ADD COLUMN x int",
        "CREATE TABLE public.rowbell_was_here (id int)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            customer_execute(rowbell_url, statement)


def test_drop_helper_refuses_triggers_that_are_not_rowbells(tenant_a, least_privilege, customer_db):
    customer_execute(
        customer_db,
        "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;"
        "CREATE TRIGGER audit_orders AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION audit()",
    )
    with pytest.raises(psycopg.errors.RaiseException, match="only drops Rowbell's own triggers"):
        customer_execute(
            least_privilege["rowbell_url"], "SELECT rowbell.drop_trigger('orders', 'audit_orders')"
        )
    assert ("orders", "audit_orders") in customer_execute(
        customer_db, "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal"
    )


def test_connection_check_names_the_missing_grant(tenant_a, least_privilege, customer_db):
    customer_execute(customer_db, f'REVOKE TRIGGER ON orders FROM "{least_privilege["rowbell_role"]}"')
    datasource = DataSource.objects.create(
        tenant=tenant_a, name="Shop", connection_url=least_privilege["rowbell_url"]
    )

    check = datasources.test_connection(datasource, [("public", "orders"), ("public", "missing")])

    assert not check.ok
    role = least_privilege["rowbell_role"]
    assert f"“{role}” cannot read or put triggers on 1 table in “public”: orders." in check.problems
    assert "The table public.missing does not exist" in check.message
    datasource.refresh_from_db()
    assert datasource.status == DataSource.Status.ERROR
    assert "cannot read or put triggers" in datasource.last_error


def test_connection_check_ok_records_status(datasource):
    check = datasources.test_connection(datasource)

    assert check.ok and check.message.startswith("Connected to PostgreSQL")
    datasource.refresh_from_db()
    assert datasource.status == DataSource.Status.OK and datasource.checked_at is not None


@pytest.mark.parametrize(
    "make_url, expected",
    [
        (
            lambda url: with_credentials(url, "postgres").replace(
                f":{urlsplit(url).port or 5432}/", f":{free_port()}/"
            ),
            "Nothing accepts connections at",
        ),
        (lambda url: with_credentials(url, "no_such_user_x"), "The user “no_such_user_x” does not exist"),
        (
            lambda url: with_credentials(url, "postgres", database="no_such_db_x"),
            "“no_such_db_x” does not exist",
        ),
        (lambda url: "not a url at all", "cannot be used"),
    ],
)
def test_connection_failures_are_explained(tenant_a, customer_db, make_url, expected):
    datasource = DataSource.objects.create(tenant=tenant_a, name="Bad", connection_url=make_url(customer_db))

    check = datasources.test_connection(datasource)

    assert not check.ok
    assert expected in check.message
    assert DataSource.objects.get(pk=datasource.pk).last_error == check.message


def test_password_failure_message():
    """This server trusts local connections, so the driver's wording is fed in as PostgreSQL sends it."""
    error = psycopg.OperationalError(
        'connection failed: connection to server at "10.0.0.5", port 5432 failed: '
        'FATAL:  password authentication failed for user "rowbell"'
    )
    message = datasources.describe_error(error, "postgresql://rowbell:x@10.0.0.5:5432/shop")
    assert message == "The server rejected the password for user “rowbell”. Check the user name and password."


def test_old_server_is_refused_with_the_minimum_version(datasource, monkeypatch):
    monkeypatch.setattr(connection_module, "MIN_SERVER_VERSION", 990000)

    check = datasources.test_connection(datasource)

    assert not check.ok
    assert "Rowbell needs PostgreSQL 99 or newer" in check.message


def test_introspection_lists_schemas_tables_columns_and_keys(datasource, customer_db):
    customer_execute(
        customer_db,
        'CREATE SCHEMA "Sales"; CREATE TABLE "Sales".line_items (order_id int, position int, sku text NOT NULL,'
        " price numeric(8,2), PRIMARY KEY (order_id, position))",
    )
    db_trigger_workflow(datasource)  # creates the rowbell schema, which must stay hidden

    assert datasources.list_schemas(datasource) == ["Sales", "public"]
    assert [t.qualified_name for t in datasources.list_tables(datasource)] == [
        "Sales.line_items",
        "public.orders",
        "public.signups",
    ]
    assert [t.name for t in datasources.list_tables(datasource, "public")] == ["orders", "signups"]
    columns = datasources.list_columns(datasource, "Sales", "line_items")
    assert [(c.name, c.type, c.nullable, c.is_primary_key) for c in columns] == [
        ("order_id", "integer", False, True),
        ("position", "integer", False, True),
        ("sku", "text", False, False),
        ("price", "numeric(8,2)", True, False),
    ]
    assert datasources.primary_key(datasource, "Sales", "line_items") == ["order_id", "position"]
    assert datasources.primary_key(datasource, "public", "orders") == ["id"]
    assert datasources.list_columns(datasource, "public", "missing") == []
