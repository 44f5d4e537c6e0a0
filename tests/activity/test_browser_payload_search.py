"""Headless Chromium: the activity page finds runs by a payload field (Field … equals …), a plain one and a
hashed one, and the page's other filters and pager keep the search.

Writes docs/screenshots/activity-payload-search.png (1366x768 unless VIEW_W / VIEW_H say otherwise).
"""

from __future__ import annotations

import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.engine import start_run
from tests.activity.test_browser import browser_page  # noqa: F401 (fixture)
from tests.engine.conftest import build_workflow, work
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
FIELDS = [{"path": "item.account_id"}, {"path": "item.email", "hashed": True}]


def test_the_activity_page_filtered_by_a_payload_field(live_server, browser_page, clock, tenant_a):  # noqa: F811
    clock.now = timezone.now()
    trigger = {"kind": "webhook_trigger", "config": {"search_fields": FIELDS, "run_label": "{{ item.name }}"}}
    orders = build_workflow(tenant_a, trigger, name="Order shipped")
    invoices = build_workflow(tenant_a, trigger, name="Invoice due")
    people = [("Ada Lovelace", "acc-1042"), ("Grace Hopper", "acc-2077"), ("Alan Turing", "acc-1042")]
    for n in range(12):
        name, account = people[n % 3]
        workflow = orders if n % 2 else invoices
        email = f"{name.split()[0].lower()}@example.com"
        start_run(workflow, {"name": name, "account_id": account, "email": email}, f"evt-{n}")
    clock.now = timezone.now()
    work(clock)

    page = browser_page
    page.set_viewport_size(
        {"width": int(os.environ.get("VIEW_W", 1366)), "height": int(os.environ.get("VIEW_H", 768))}
    )
    page.goto(f"{live_server.url}/activity/")
    page.get_by_label("Payload field").select_option("item.account_id")
    page.get_by_label("equals").fill("acc-1042")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(8)
    expect(rows.filter(has_text="Grace Hopper")).to_have_count(0)
    expect(page.get_by_label("equals")).to_have_value("acc-1042")
    shots = SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)
    # The filters and the runs they found (the chart above them is the same as on any activity page).
    page.evaluate("document.querySelector('form.filters').scrollIntoView()")
    page.screenshot(path=str(shots / "activity-payload-search.png"), full_page=False)

    page.get_by_label("Workflow").select_option(label="Order shipped")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(4)

    page.goto(f"{live_server.url}/activity/")
    page.get_by_label("Payload field").select_option(label="item.email (hashed)")
    page.get_by_label("equals").fill("grace@example.com")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(4)
    expect(rows.filter(has_text="Grace Hopper")).to_have_count(4)
