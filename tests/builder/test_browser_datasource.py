"""Headless Chromium: the data source's page lists the published workflow that uses it, and its edit page
switches NOTIFY on, which reinstalls the trigger. Screenshots: docs/screenshots/datasource-edit.png (the
form) and datasource-detail.png (the page after saving)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builder.test_browser_errors import sign_in
from tests.builder.test_datasource_edit import publish_trigger_workflow, trigger_functions
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_edit_page_switches_notify_on(live_server, page, owner, datasource, customer_db):
    workflow = publish_trigger_workflow(datasource, name="Welcome new users")
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/datasources/{datasource.pk}/")
    used_by = page.locator("h2:has-text('Used by') + ul")
    expect(used_by.get_by_role("link", name="Welcome new users")).to_have_attribute(
        "href", f"/workflows/{workflow.pk}/"
    )

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Edit App DB")
    expect(page.get_by_label("Connection URL")).to_have_value("")
    notify = page.get_by_label("Wake the listener with NOTIFY")
    expect(notify).not_to_be_checked()
    notify.check()
    expect(page.locator("#schema-picker").get_by_role("checkbox", name="public")).to_be_checked()
    expect(page.locator("#setup-sql-text")).to_contain_text("the-password-in-your-connection-url")
    page.screenshot(path=SCREENSHOTS / "datasource-edit.png")
    page.get_by_role("button", name="Save and test").click()

    flash = page.locator(".flash")
    expect(flash.locator(".flash-success").first).to_contain_text("Saved App DB. Connected to PostgreSQL")
    expect(flash).to_contain_text("Reinstalled the triggers of 1 published workflow.")
    expect(page.locator("#tables")).to_contain_text("public.users")
    page.screenshot(path=SCREENSHOTS / "datasource-detail.png", full_page=True)
    assert trigger_functions(customer_db) == [
        (f"rowbell_wf_{workflow.pk}_insert", "rowbell.capture_row_notify")
    ]
