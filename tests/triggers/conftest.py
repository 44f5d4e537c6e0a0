"""Fixtures for trigger tests: a customer database with tables, a data source, published workflows."""

from __future__ import annotations

import psycopg
import pytest

from integrations.models import DataSource
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft, publish

CUSTOMER_SCHEMA = """
CREATE TABLE orders (
    id serial PRIMARY KEY,
    email text NOT NULL,
    status text NOT NULL DEFAULT 'new',
    note text,
    amount numeric(10, 2) NOT NULL DEFAULT 0
);
CREATE TABLE signups (id bigserial PRIMARY KEY, email text NOT NULL);
"""


@pytest.fixture
def customer_db(tenant_database) -> str:
    """The customer's database, with an `orders` and a `signups` table; yields a superuser URL."""
    with psycopg.connect(tenant_database, autocommit=True) as conn:
        conn.execute(CUSTOMER_SCHEMA)
    return tenant_database


@pytest.fixture
def second_customer_db(pg_admin_url) -> str:
    """Another customer's database with the same tables, for tests with two data sources; dropped after."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    name = f"rowbell_customer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(pg_admin_url)._replace(path=f"/{name}"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CUSTOMER_SCHEMA)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def datasource(tenant_a, customer_db) -> DataSource:
    return DataSource.objects.create(tenant=tenant_a, name="Shop", connection_url=customer_db)


@pytest.fixture
def fast_listener(settings):
    """Short intervals so loops and reconnects take milliseconds in tests."""
    settings.LISTENER_POLL_INTERVAL = 0.02
    settings.LISTENER_BUSY_POLL_INTERVAL = 0.005
    settings.LISTENER_REFRESH_INTERVAL = 0.2
    settings.LISTENER_MIN_BACKOFF = 0.05
    settings.LISTENER_MAX_BACKOFF = 0.2
    return settings


def make_workflow(tenant, root_kind: str, config: dict, name: str = "Workflow") -> Workflow:
    workflow = Workflow.objects.create(tenant=tenant, name=name)
    draft = get_or_create_draft(workflow)
    Step.objects.create(tenant=tenant, version=draft, kind=root_kind, config=config)
    return workflow


def set_root_config(workflow: Workflow, config: dict) -> None:
    draft = get_or_create_draft(workflow)
    root = draft.root_step()
    root.config = config
    root.save()


def db_trigger_workflow(datasource, table="orders", operations=("insert",), watch=(), name="On order"):
    config = {
        "datasource": datasource.pk,
        "schema": "public",
        "table": table,
        "operations": list(operations),
        "watch_columns": list(watch),
    }
    workflow = make_workflow(datasource.tenant, "database_trigger", config, name=name)
    publish(workflow)
    workflow.refresh_from_db()
    return workflow


def customer_execute(url: str, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def pg_triggers(url: str) -> list[tuple[str, str]]:
    """(table, trigger name) of Rowbell's triggers, straight from pg_trigger."""
    return customer_execute(
        url,
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgname LIKE 'rowbell%%' ORDER BY 1, 2",
    )
