"""Headless Chromium: an owner adds an endpoint from the nav, copies its secret, and sends a test event that
a real local HTTP server receives, signed with that secret. Screenshot: docs/screenshots/event-webhooks.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from integrations.models import EventEndpoint
from integrations.signing import compute_signature
from tests.builder.test_browser_errors import sign_in
from tests.events.conftest import body, posts
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_add_an_endpoint_and_send_it_a_test_event(live_server, page, owner, httpserver):
    httpserver.expect_request("/rowbell/events", method="POST").respond_with_data("ok")
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Event webhooks").click()
    expect(page.get_by_role("heading", name="No endpoint yet")).to_be_visible()

    page.get_by_role("link", name="Add an endpoint").click()
    page.get_by_label("URL", exact=True).fill(httpserver.url_for("/rowbell/events"))
    page.get_by_label("Description").fill("Billing service: marks invoices as notified")
    page.get_by_label("run.failed").check()
    page.get_by_label("run.partial").check()
    page.get_by_role("button", name="Add endpoint").click()

    expect(page.get_by_role("heading", name="Copy the signing secret now")).to_be_visible()
    secret = page.get_by_label("The signing secret", exact=True).input_value()
    assert secret == EventEndpoint.objects.get().secret
    page.get_by_role("link", name="Done, I have copied it").click()
    expect(page.get_by_label("The signing secret", exact=True)).to_have_count(0)

    page.get_by_role("button", name="Send a test event").click()
    card = page.locator("section.card", has_text="Billing service")
    expect(card.get_by_role("status")).to_have_text("Test event delivered, the endpoint answered HTTP 200.")
    expect(card.locator("tbody tr")).to_have_count(1)
    expect(card.locator("tbody tr")).to_contain_text("Delivered")
    (request,) = posts(httpserver, "/rowbell/events")
    assert body(request)["type"] == "ping"
    stamp = request.headers["X-Rowbell-Timestamp"]
    assert request.headers["X-Rowbell-Signature"] == compute_signature(secret, stamp, request.get_data())
    page.screenshot(path=SCREENSHOTS / "event-webhooks.png", full_page=True)
