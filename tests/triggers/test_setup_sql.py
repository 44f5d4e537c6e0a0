"""The setup SQL made for one connection, run exactly as shown by `psql` as a superuser on a real database:
the role and password come from the URL, the grants cover the chosen schemas, odd names are quoted and never
injected, and the connection check lists each missing grant with the statement that fixes it."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import psycopg
import pytest

from integrations import datasources
from integrations.datasources.setup import plan_from_url
from integrations.models import DataSource
from runs.listener import Listener
from runs.models import Run
from tests.support import customer_execute, role_url, run_with_psql, unique_role
from tests.triggers.conftest import make_workflow, pg_triggers
from workflows.publishing import publish, unpublish

pytestmark = pytest.mark.django_db


def test_setup_sql_for_rowbell_ux_in_schema_app_works_end_to_end(tenant_a, app_db):
    password = "s3cret 'quoted' $$ \\ pass"
    role = unique_role()
    url = role_url(app_db["url"], role, password)
    app_db["roles"].append(role)
    plan = plan_from_url(url, ["app"])
    assert (plan.role, plan.password, plan.proposed) == (role, password, ())

    run_with_psql(app_db["url"], plan.sql())

    source = DataSource.objects.create(tenant=tenant_a, name="App", connection_url=url, schemas=["app"])
    check = datasources.test_connection(source)
    assert check.ok, check.message
    assert [t.qualified_name for t in datasources.list_tables(source)] == ["app.orders", "app.users"]
    customer_execute(app_db["app_url"], "INSERT INTO app.users (email) VALUES ('a@example.com')")
    assert customer_execute(url, "SELECT email FROM app.users") == [("a@example.com",)]
    for statement in (
        "INSERT INTO app.users (email) VALUES ('intruder@example.com')",
        "UPDATE app.users SET email = 'x'",
        "DELETE FROM app.users",
        "SELECT * FROM public.unrelated",  # a schema that was not chosen stays closed
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            customer_execute(url, statement)

    # Publishing installs the trigger as today, through the role; the app's writes start runs.
    config = {"datasource": source.pk, "schema": "app", "table": "users", "operations": ["insert"]}
    workflow = make_workflow(tenant_a, "database_trigger", config, name="Welcome")
    publish(workflow)
    assert pg_triggers(app_db["url"]) == [("app.users", f"rowbell_wf_{workflow.pk}_insert")]
    customer_execute(app_db["app_url"], "INSERT INTO app.users (email) VALUES ('b@example.com')")
    Listener().run(until_idle=True)
    assert [run.payload["email"] for run in Run.objects.filter(workflow=workflow)] == ["b@example.com"]
    unpublish(workflow)  # the role does not own app.users: removal goes through rowbell.drop_trigger
    assert pg_triggers(app_db["url"]) == []

    # Running the script again is safe and leaves the role's password alone.
    notices = run_with_psql(
        app_db["url"], plan_from_url(role_url(app_db["url"], role, "other"), ["app"]).sql()
    )
    assert "exists already" in notices
    assert datasources.test_connection(source).ok


@pytest.mark.parametrize(
    "role, schema",
    [
        ('Row"bell-UX', 'My "App"-x'),
        ("x; DROP TABLE app.users; --", "s'); DROP TABLE app.users; --"),
        ("$rowbell$", "$$"),
    ],
)
def test_odd_role_and_schema_names_are_quoted_never_injected(tenant_a, app_db, role, schema):
    customer_execute(
        app_db["url"],
        psycopg.sql.SQL("CREATE SCHEMA {} CREATE TABLE t (id int)")
        .format(psycopg.sql.Identifier(schema))
        .as_string(None),
    )
    password = "p'w$rowbell$;--"
    url = role_url(app_db["url"], role, password)
    app_db["roles"].append(role)

    run_with_psql(app_db["url"], plan_from_url(url, ["app", schema]).sql())

    source = DataSource.objects.create(
        tenant=tenant_a, name="Odd", connection_url=url, schemas=["app", schema]
    )
    assert datasources.test_connection(source).ok
    tables = {t.qualified_name for t in datasources.list_tables(source)}
    assert tables == {"app.orders", "app.users", f"{schema}.t"}
    assert customer_execute(app_db["url"], "SELECT count(*) FROM app.users") == [(0,)]  # still there
    assert customer_execute(
        app_db["url"], "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = %s", (role,)
    ) == [(False, False)]


def test_script_naming_an_existing_superuser_leaves_it_superuser(app_db):
    run_with_psql(app_db["url"], plan_from_url(app_db["url"], ["app"]).sql())  # the URL's user: postgres
    user = urlsplit(app_db["url"]).username or "postgres"
    assert customer_execute(app_db["url"], "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (user,)) == [
        (True,)
    ]


def test_connection_check_lists_each_missing_grant_with_the_statement_that_fixes_it(tenant_a, app_db):
    role = f"rowbell_{uuid.uuid4().hex[:6]}"
    app_db["roles"].append(role)
    url = role_url(app_db["url"], role, "pw")
    run_with_psql(app_db["url"], plan_from_url(url, ["app"]).sql())
    for statement in (
        f'REVOKE USAGE ON SCHEMA app FROM "{role}"',
        f'REVOKE TRIGGER ON app.orders FROM "{role}"',
        "DROP FUNCTION rowbell.drop_trigger(regclass, name)",
    ):
        customer_execute(app_db["url"], statement)
    source = DataSource.objects.create(
        tenant=tenant_a, name="App", connection_url=url, schemas=["app", "nope"]
    )

    check = datasources.test_connection(source)

    assert not check.ok
    assert [(m.problem, m.fix.splitlines()[0] if m.fix else "") for m in check.missing] == [
        (f"“{role}” cannot use the schema “app”.", f'GRANT USAGE ON SCHEMA "app" TO "{role}";'),
        (
            f"“{role}” cannot read or put triggers on 1 table in “app”: orders.",
            f'GRANT SELECT, TRIGGER ON ALL TABLES IN SCHEMA "app" TO "{role}";',
        ),
        (
            "There is no schema “nope” in this database: choose the schemas your tables are in on the data "
            "source's edit page.",
            "",
        ),
        (
            "The function rowbell.drop_trigger is missing: without it Rowbell cannot remove its triggers from "
            f"tables “{role}” does not own.",
            "CREATE OR REPLACE FUNCTION rowbell.drop_trigger(target regclass, trigger_name name) RETURNS void",
        ),
    ]
    # Each fix, run as given, removes its problem.
    run_with_psql(app_db["url"], "\n".join(m.fix for m in check.missing if m.fix))
    source.schemas = ["app"]
    assert datasources.test_connection(source).ok
