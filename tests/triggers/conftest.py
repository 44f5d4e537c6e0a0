"""Fixtures for trigger tests: a customer database with tables, a data source, published workflows."""

from __future__ import annotations

import pytest

from integrations.models import DataSource
from tests.support import customer_execute, scratch_database
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
    customer_execute(tenant_database, CUSTOMER_SCHEMA)
    return tenant_database


@pytest.fixture
def second_customer_db(pg_admin_url) -> str:
    """Another customer's database with the same tables, for tests with two data sources; dropped after."""
    with scratch_database(pg_admin_url) as url:
        customer_execute(url, CUSTOMER_SCHEMA)
        yield url


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


def pg_triggers(url: str) -> list[tuple[str, str]]:
    """(table, trigger name) of Rowbell's triggers, straight from pg_trigger."""
    return customer_execute(
        url,
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgname LIKE 'rowbell%%' ORDER BY 1, 2",
    )
