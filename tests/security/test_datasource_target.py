"""A data source cannot reach the PostgreSQL server that holds Rowbell's own data.

The tests' customer databases share the server with Rowbell's test database, which the test settings
allow (tests/conftest.py); here the setting is off, as in production, so each of them is Rowbell's server.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote

import pytest
from django.test import Client

from integrations.datasources import DataSourceUnavailable, connect_datasource
from integrations.datasources.target import DataSourceTargetRefused, pinned_conninfo
from integrations.models import DataSource
from integrations.query import QueryError, fetch_rows
from runs.engine import start_run
from runs.models import StepExecution
from tests.engine.conftest import build_workflow, clock, query, webhook, work  # noqa: F401 (fixtures)
from tests.support import PASSWORD

SERVER_PORT = 5432


@pytest.fixture
def production(settings):
    settings.DATA_SOURCE_ALLOW_ROWBELL_SERVER = False
    return settings


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://postgres@127.0.0.1:5432/app", "holds Rowbell's own data"),
        ("postgresql://postgres@localhost/app", "holds Rowbell's own data"),  # the default port
        ("postgresql://postgres@[::ffff:127.0.0.1]:5432/app", "holds Rowbell's own data"),
        ("postgresql://postgres@0x7f.1:5432/app", "holds Rowbell's own data"),  # 127.0.0.1 spelled in hex
        ("postgresql://postgres@2130706433:5432/app", "holds Rowbell's own data"),  # and as one number
        ("postgresql://postgres@0.0.0.0:5432/app", "holds Rowbell's own data"),
        ("postgresql://postgres@db.example.invalid,127.0.0.1:6000,5432/app", "was not found"),
        ("postgresql://postgres@[::1]:6000,127.0.0.1:5432/app", "holds Rowbell's own data"),
        ("postgresql:///app", "over TCP"),  # no host: libpq would use the local socket
        ("postgresql://postgres@%2Fvar%2Frun%2Fpostgresql/app", "over TCP"),
        ("postgresql://postgres@example.com/app?host=/var/run/postgresql", "over TCP"),
        ("postgresql://postgres@example.com/app?host=@abstract", "over TCP"),
        ("postgresql://postgres@127.0.0.1:6000/app?service=rowbell", "may not use “service”"),
        ("postgresql://postgres@127.0.0.1:6000/app?passfile=/root/.pgpass", "may not use “passfile”"),
        ("postgresql://postgres@127.0.0.1:port/app", "not a number"),
    ],
)
def test_urls_that_reach_rowbells_server_are_refused(production, url, reason):
    with pytest.raises(DataSourceTargetRefused) as refused:
        pinned_conninfo(url)
    assert reason in str(refused.value)
    if "own data" in reason or "TCP" in reason:
        assert "DATA_SOURCE_ALLOW_ROWBELL_SERVER" in str(refused.value)  # says what an operator can do


def test_another_port_on_this_machine_is_allowed_and_pinned(production):
    """Another server on the same machine (a customer's app database on :6000) is not Rowbell's."""
    pinned = pinned_conninfo("postgresql://app@localhost:6000,127.0.0.1:6001/app")
    addresses = pinned["hostaddr"].split(",")
    assert len(addresses) == 2
    assert all(ipaddress.ip_address(a).is_loopback for a in addresses)


def test_the_operator_can_allow_it(settings):
    settings.DATA_SOURCE_ALLOW_ROWBELL_SERVER = True
    assert pinned_conninfo("postgresql://postgres@127.0.0.1:5432/app") == {}


def test_every_connection_path_refuses_rowbells_server(production, db, tenant_a, tenant_database):
    """Triggers, the listener, introspection (connect) and tenant SQL (fetch_rows) all refuse it."""
    source = DataSource.objects.create(tenant=tenant_a, name="Rowbell's own", connection_url=tenant_database)
    with pytest.raises(DataSourceUnavailable, match="holds Rowbell's own data"):
        connect_datasource(source)
    with pytest.raises(QueryError, match="holds Rowbell's own data") as refused:
        fetch_rows(tenant_database, "SELECT 1 AS one", [])
    assert refused.value.permanent
    socket_url = f"postgresql://postgres@{quote('/var/run/postgresql', safe='')}/postgres"
    with pytest.raises(QueryError, match="over TCP"):
        fetch_rows(socket_url, "SELECT 1 AS one", [])


def test_test_connection_page_says_why(production, db, tenant_a, owner, tenant_database):
    source = DataSource.objects.create(tenant=tenant_a, name="Rowbell's own", connection_url=tenant_database)
    client = Client()
    assert client.login(username=owner.username, password=PASSWORD)
    response = client.post(f"/datasources/{source.pk}/test/")
    assert response.status_code == 200
    assert "holds Rowbell" in response.content.decode()
    source.refresh_from_db()
    assert source.status != "ok"


def test_a_run_fails_permanently_and_reads_nothing(production, clock, tenant_a, tenant_database):  # noqa: F811
    source = DataSource.objects.create(tenant=tenant_a, name="Rowbell's own", connection_url=tenant_database)
    workflow = build_workflow(
        tenant_a, webhook([query(source, "SELECT 1 AS id")]), validate=False, publish_it=False
    )
    run = start_run(workflow, {}, "evt", version=workflow.versions.get())
    work(clock)
    execution = StepExecution.objects.get(run=run, step__kind="data_query")
    assert execution.status == "failed" and execution.attempts == 1
    assert "holds Rowbell's own data" in execution.error
    assert StepExecution.objects.filter(run=run).count() == 2  # the trigger and the refused query
