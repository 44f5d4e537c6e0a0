"""Headless Chromium at 1366×768: the wait's "read the row again" options in the builder, ticked and saved
with a condition. Screenshot: docs/screenshots/wait-reread-1366.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from integrations.models import DataSource
from tests.builder.conftest import htmx_idle, saved
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_wait_offers_to_read_the_row_again_with_a_condition(
    live_server, page, owner, tenant_a, tenant_database
):
    source = DataSource.objects.create(tenant=tenant_a, name="Shop DB", connection_url=tenant_database)
    workflow = Workflow.objects.create(tenant=tenant_a, name="Payment reminder")
    draft = get_or_create_draft(workflow)
    trigger = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        kind="database_trigger",
        name="New order",
        config={"datasource": source.pk, "schema": "public", "table": "orders", "operations": ["insert"]},
    )
    wait = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        parent=trigger,
        kind="wait",
        name="Until 1 day before pay_by",
        config={"mode": "until", "field": "pay_by", "offset_amount": 1, "offset_unit": "days"},
    )
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={wait.pk}")
    htmx_idle(page)

    expect(page.locator("#f-reread")).to_be_visible()
    saved(page, lambda: page.locator("#f-reread").check())
    saved(page, lambda: page.locator("#f-still_matches").fill("item.status != 'paid'"))
    wait.refresh_from_db()
    assert wait.config["reread"] is True
    assert wait.config["still_matches"] == "item.status != 'paid'"
    page.locator("#f-reread").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "wait-reread-1366.png")
