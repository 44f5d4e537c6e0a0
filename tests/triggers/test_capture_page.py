"""The data source page's Capture block (workflows/views/capture.py): switching to logical decoding and
back, who may, what a server without wal_level=logical says, and the page in a browser at 1366x768.
Screenshot: docs/screenshots/datasource-capture-logical.png."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from playwright.sync_api import expect

from integrations.models import DataSource
from runs.listener import Listener
from runs.models import Run
from tests.builder.conftest import page  # noqa: F401 (fixture)
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS, customer_execute
from tests.triggers.conftest import CUSTOMER_SCHEMA, db_trigger_workflow

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def logical_url(logical_server) -> str:
    url = logical_server.create_database(f"page_{uuid.uuid4().hex[:10]}")
    customer_execute(url, CUSTOMER_SCHEMA)
    return url


def capture_url(source: DataSource) -> str:
    return f"/datasources/{source.pk}/capture/"


def switch(client, source: DataSource, mode: str):
    return client.post(
        capture_url(source), {"capture_mode": mode, "slot_guard": "fallback", "slot_max_retained_mb": 1024}
    )


def test_an_owner_switches_to_logical_decoding_and_back(owner_client, tenant_a, logical_url):
    source = DataSource.objects.create(tenant=tenant_a, name="Shop", connection_url=logical_url)
    workflow = db_trigger_workflow(source)
    answer = switch(owner_client, source, "logical")
    assert answer.status_code == 200 and b"Saved." in answer.content
    assert b"replication slot" in answer.content
    source.refresh_from_db()
    assert source.capture_mode == "logical" and source.slot_from_lsn
    assert customer_execute(logical_url, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rowbell%'") == [
        (0,)
    ]
    assert b"REPLICATION;" in owner_client.get(capture_url(source)).content  # the setup it needs
    customer_execute(logical_url, "INSERT INTO orders (email) VALUES ('a@x.org')")
    Listener().run(until_idle=True)
    assert Run.objects.filter(workflow=workflow).count() == 1
    metrics = Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    assert f'rowbell_listener_slot_bytes{{datasource="{source.pk}",measure="retained"}}' in metrics
    answer = switch(owner_client, source, "trigger")
    assert b"being read to its end" in answer.content
    assert customer_execute(logical_url, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'rowbell%'") == [
        (1,)
    ]


def test_a_server_without_logical_wal_says_what_to_change_and_keeps_the_triggers(owner_client, datasource):
    db_trigger_workflow(datasource)
    answer = switch(owner_client, datasource, "logical")
    assert b"wal_level = logical" in answer.content
    datasource.refresh_from_db()
    assert datasource.capture_mode == "trigger"


def test_members_read_the_block_but_cannot_switch_and_other_tenants_get_404(
    member_client, outsider_client, datasource
):
    assert member_client.get(capture_url(datasource)).status_code == 200
    assert switch(member_client, datasource, "logical").status_code == 403
    assert outsider_client.get(capture_url(datasource)).status_code == 404
    assert switch(outsider_client, datasource, "logical").status_code == 404
    datasource.refresh_from_db()
    assert datasource.capture_mode == "trigger"


def test_a_limit_below_16_mb_is_refused_with_the_reason(owner_client, datasource):
    answer = owner_client.post(
        capture_url(datasource), {"capture_mode": "trigger", "slot_guard": "drop", "slot_max_retained_mb": 1}
    )
    assert b"At least 16 MB" in answer.content
    datasource.refresh_from_db()
    assert datasource.slot_max_retained_mb == 1024


@pytest.mark.browser
def test_the_capture_block_in_a_browser(live_server, page, owner, tenant_a, logical_url):  # noqa: F811
    source = DataSource.objects.create(tenant=tenant_a, name="Shop", connection_url=logical_url)
    db_trigger_workflow(source)
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/datasources/{source.pk}/")
    block = page.locator("#capture")
    expect(block).to_contain_text("row triggers")
    block.get_by_text("Change how changes are captured").click()
    block.get_by_label("Logical decoding (a replication slot; nothing on the tables)").check()
    block.get_by_role("button", name="Save").click()
    expect(page.locator("#capture")).to_contain_text("Saved.")
    customer_execute(logical_url, "INSERT INTO orders (email) VALUES ('a@x.org')")
    Listener().run(until_idle=True)
    page.reload()
    expect(page.locator("#capture")).to_contain_text("of WAL held on the server")
    page.locator("#capture").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "datasource-capture-logical.png")
