"""The guided setup SQL on a Supabase-like database: the person runs it as a role that is not a
superuser (Supabase's `postgres` has CREATEROLE and owns the app's tables, nothing more), the `auth`
schema belongs to another role and is readable only where granted, and `pg_read_all_data` exists."""

from __future__ import annotations

import pytest

from integrations import datasources
from integrations.datasources.setup import plan_from_url
from integrations.models import DataSource
from runs.listener import Listener
from runs.models import Run
from tests.support import customer_execute, drop_roles, role_url, run_with_psql, unique_role
from tests.triggers.conftest import make_workflow, pg_triggers
from workflows.publishing import publish, unpublish

pytestmark = pytest.mark.django_db


@pytest.fixture
def supabase_like(tenant_database):
    """`owner` plays Supabase's `postgres` (LOGIN CREATEROLE, not a superuser, owns the database and the
    public tables); `auth_admin` plays supabase_auth_admin, owner of the `auth` schema."""
    owner, auth_admin = unique_role("supa_owner"), unique_role("supa_auth")
    database = tenant_database.rsplit("/", 1)[1]
    customer_execute(tenant_database, f'CREATE ROLE "{owner}" LOGIN CREATEROLE NOSUPERUSER')
    customer_execute(tenant_database, f'CREATE ROLE "{auth_admin}" NOLOGIN NOSUPERUSER')
    customer_execute(tenant_database, f'GRANT pg_read_all_data TO "{owner}"')
    customer_execute(tenant_database, f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
    customer_execute(tenant_database, f'ALTER SCHEMA public OWNER TO "{owner}"')
    customer_execute(
        tenant_database,
        f'CREATE SCHEMA auth AUTHORIZATION "{auth_admin}"; '
        "CREATE TABLE auth.users (id uuid PRIMARY KEY, email text); "
        f'ALTER TABLE auth.users OWNER TO "{auth_admin}"',
    )
    owner_url = role_url(tenant_database, owner)
    customer_execute(
        owner_url, "CREATE TABLE public.profiles (id bigserial PRIMARY KEY, email text NOT NULL)"
    )
    roles = [owner, auth_admin]
    yield {"url": tenant_database, "owner_url": owner_url, "roles": roles}
    customer_execute(tenant_database, f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER')
    customer_execute(tenant_database, "ALTER SCHEMA public OWNER TO pg_database_owner")
    drop_roles(tenant_database, roles)


def test_the_setup_sql_works_when_run_by_a_role_that_is_not_a_superuser(tenant_a, supabase_like):
    owner_url = supabase_like["owner_url"]
    assert customer_execute(owner_url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [
        (False,)
    ]
    role = unique_role("rowbell_supa")
    supabase_like["roles"].insert(0, role)
    url = role_url(supabase_like["url"], role, "pw-" + role)
    plan = plan_from_url(url, ["public"])

    run_with_psql(owner_url, plan.sql())  # as the person would, in Supabase's SQL editor

    source = DataSource.objects.create(
        tenant=tenant_a, name="Supabase", connection_url=url, schemas=["public"]
    )
    check = datasources.test_connection(source)
    assert check.ok, check.message
    assert [t.qualified_name for t in datasources.list_tables(source)] == ["public.profiles"]
    config = {"datasource": source.pk, "schema": "public", "table": "profiles", "operations": ["insert"]}
    workflow = make_workflow(tenant_a, "database_trigger", config, name="Welcome")
    publish(workflow)
    customer_execute(owner_url, "INSERT INTO public.profiles (email) VALUES ('ada@example.com')")
    Listener().run(until_idle=True)
    assert [run.payload["email"] for run in Run.objects.filter(workflow=workflow)] == ["ada@example.com"]
    unpublish(workflow)  # the role does not own profiles: rowbell.drop_trigger, defined by the owner
    assert pg_triggers(supabase_like["url"]) == []
    # Its role reads auth.users only where granted: here it is not.
    assert "auth.users" not in [t.qualified_name for t in datasources.list_tables(source)]

    # Running it again is safe.
    assert "exists already" in run_with_psql(owner_url, plan.sql())
    assert datasources.test_connection(source).ok


def test_choosing_the_auth_schema_says_what_its_owner_must_grant(tenant_a, supabase_like):
    """The script runs (PostgreSQL only warns for grants the runner may not give); the check then names
    what is missing in `auth`, with the statement its owner runs."""
    role = unique_role("rowbell_supa")
    supabase_like["roles"].insert(0, role)
    url = role_url(supabase_like["url"], role, "pw-" + role)
    notices = run_with_psql(supabase_like["owner_url"], plan_from_url(url, ["public", "auth"]).sql())
    assert "no privileges were granted" in notices
    source = DataSource.objects.create(
        tenant=tenant_a, name="Supabase", connection_url=url, schemas=["public", "auth"]
    )
    check = datasources.test_connection(source)
    assert not check.ok
    assert [grant.problem for grant in check.missing] == [
        f"“{role}” cannot use the schema “auth”.",
        f"“{role}” cannot read or put triggers on 1 table in “auth”: users.",
    ]
    assert check.missing[0].fix == f'GRANT USAGE ON SCHEMA "auth" TO "{role}";'
    # The public schema, which the runner owns, was granted: only auth is missing.


def test_the_check_through_the_pooler_as_the_least_privileged_role(tenant_a, supabase_like, pooler):
    role = unique_role("rowbell_supa")
    supabase_like["roles"].insert(0, role)
    url = role_url(supabase_like["url"], role, "pw-" + role)
    run_with_psql(supabase_like["owner_url"], plan_from_url(url, ["public"]).sql())
    pooler.allow(role)
    source = DataSource.objects.create(
        tenant=tenant_a, name="Pooled", connection_url=pooler.url_for(url), schemas=["public"]
    )
    check = datasources.test_connection(source)
    assert check.ok, check.message
