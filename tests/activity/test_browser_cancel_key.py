"""Headless Chromium: the run page of a run cancelled by key says by which key, from where and how much,
undoes it while nothing was due, and cancels by key from the page.

Writes docs/screenshots/run-cancelled-by-key.png (1366x768 unless VIEW_W / VIEW_H say otherwise).
"""

from __future__ import annotations

import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.engine import cancel_by_key, start_run
from runs.models import CancelTombstone, Run
from tests.activity.test_browser import browser_page  # noqa: F401 (fixture)
from tests.engine.conftest import build_workflow, email, work
from tests.engine.test_cancel_by_key import keyed, wait
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_run_cancelled_by_key_on_its_page(live_server, browser_page, clock, smtp, tenant_a):  # noqa: F811
    clock.now = timezone.now()
    workflow = build_workflow(
        tenant_a, keyed([wait(3, [email(subject="Your cart", text="Still there")])]), name="Cart reminder"
    )
    run = start_run(workflow, {"order_id": 42, "email": "ada@example.com"}, "cart-42")
    work(clock)
    clock.travel(minutes=4)  # the customer cancelled the order a few minutes later
    cancel_by_key(workflow, "order:42", by="billing service")

    page = browser_page
    page.set_viewport_size(
        {"width": int(os.environ.get("VIEW_W", 1366)), "height": int(os.environ.get("VIEW_H", 768))}
    )
    page.goto(f"{live_server.url}/activity/runs/{run.pk}/")
    expect(page.get_by_test_id("run-status")).to_have_text("Cancelled")
    expect(page.get_by_test_id("cancel-key")).to_have_text("order:42")
    notice = page.get_by_test_id("key-cancel")
    expect(notice).to_contain_text("Cancelled by key order:42 via REST API")
    expect(notice).to_contain_text("1 execution cancelled so far")
    shots = SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "run-cancelled-by-key.png"), full_page=True)

    notice.get_by_role("button", name="Undo this cancel").click()
    expect(page.locator(".flash-success")).to_contain_text(
        "Cancel of order:42 undone; 1 execution(s) restored"
    )
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING

    page.get_by_role("button", name="Cancel all for order:42").click()
    expect(page.locator(".flash-success")).to_contain_text(
        "Cancelled by key order:42: 1 run(s), 1 execution(s)"
    )
    assert CancelTombstone.objects.filter(source="page", undone_at=None).count() == 1
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
