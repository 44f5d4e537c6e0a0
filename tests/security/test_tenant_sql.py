"""Tenant-written SQL reaches a customer's database only as one read-only SELECT with a time limit.

The customer database here is connected as the `postgres` superuser: the worst case a self-hoster can
configure. Every path that sends a tenant's SQL (the builder's describe check on save, the step preview,
the engine's run on real RQ workers, the test page's sample and live rows) gets the same corpus of
writing SQL as a member, and each must answer with a clear error and change nothing.
"""

from __future__ import annotations

import pytest

from tenants.models import Role
from tests.conftest import PASSWORD, make_user
from tests.support import customer_execute
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft

CUSTOMER_SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE app.users (id bigserial PRIMARY KEY, email text NOT NULL, full_name text);
INSERT INTO app.users (email, full_name) VALUES ('ada@example.com', 'Ada'), ('bob@example.com', 'Bob');
"""

# The exact text from the report: it closes the describe wrapper's subquery, commits, inserts, and
# reopens a subquery so that the wrapper's tail still parses.
REPORTED = (
    "select 1 as id) q; commit; insert into app.users (email, full_name) values ('x@pwn','p'); "
    "select * from (select 1 as id"
)


@pytest.fixture
def customer(tenant_database) -> str:
    customer_execute(tenant_database, CUSTOMER_SCHEMA)
    return tenant_database


@pytest.fixture
def source(tenant_a, customer):
    from integrations.models import DataSource

    return DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=customer)


@pytest.fixture
def member_client(client, tenant_a):
    user = make_user("max", tenant_a, Role.MEMBER)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def customer_rows(url: str) -> list[tuple]:
    return customer_execute(url, "SELECT id, email, full_name FROM app.users ORDER BY id")


def draft_query_step(tenant, source) -> tuple[Workflow, Step]:
    workflow = Workflow.objects.create(tenant=tenant, name="Digest")
    draft = get_or_create_draft(workflow)
    root = Step.objects.create(tenant=tenant, version=draft, kind="webhook_trigger", config={})
    step = Step.objects.create(
        tenant=tenant,
        version=draft,
        parent=root,
        kind="data_query",
        config={"datasource": source.pk, "sql": "SELECT id, email FROM app.users", "mode": "fanout"},
    )
    return workflow, step


def save_sql(client, workflow: Workflow, step: Step, sql: str):
    revision = WorkflowVersion.objects.get(pk=step.version_id).revision
    return client.post(
        f"/workflows/{workflow.pk}/steps/{step.pk}/save/",
        {
            "name": step.name,
            "revision": revision,
            "config-sql": sql,
            "config-datasource": step.config["datasource"],
        },
    )


@pytest.mark.django_db
def test_the_reported_describe_injection_writes_nothing(member_client, tenant_a, source, customer):
    before = customer_rows(customer)
    workflow, step = draft_query_step(tenant_a, source)
    response = save_sql(member_client, workflow, step, REPORTED)
    assert response.status_code == 200
    assert customer_rows(customer) == before
    assert "one SELECT" in response.content.decode()
