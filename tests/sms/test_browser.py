"""Headless Chromium at 1366×768: an admin adds the test SMS gateway from its channel's provider list,
with the kind's credentials form, and sends a test SMS to a phone number from the provider's page.
Screenshot: docs/screenshots/sms-provider-test.png."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from integrations.models import Provider
from tests.builder.conftest import page  # noqa: F401 (fixture)
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_add_an_sms_provider_and_send_a_test_sms(sms, gateway, live_server, page, owner, tenant_a):  # noqa: F811
    gateway.expect_request("/messages", method="POST").respond_with_json({"id": "sms-7781"})
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/settings/providers/sms/")
    expect(page.get_by_role("heading", name="SMS providers")).to_be_visible()
    page.get_by_role("link", name="Test SMS gateway").click()
    page.get_by_label("Name").fill("Carrier A")
    page.get_by_label("API URL").fill(gateway.url_for("/"))
    page.get_by_label("API key").fill("sk-live-0123456789abcdef")
    page.get_by_role("button", name="Add provider").click()
    expect(page.get_by_role("heading", name="Carrier A")).to_be_visible()
    provider = Provider.objects.get()
    assert (provider.channel, provider.secret_values) == ("sms", {"api_key": "sk-live-0123456789abcdef"})

    page.get_by_label("To (phone)").fill("+15550000001")
    page.get_by_role("button", name="Send a test SMS").click()
    expect(page.locator("#last-test")).to_contain_text(
        "Accepted by Test SMS gateway; its message id is sms-7781."
    )
    [(request, _)] = gateway.log
    assert json.loads(request.get_data())["to"] == "+15550000001"
    expect(page.get_by_label("Tracking webhook URL")).to_have_value(
        f"{live_server.url.replace('://', '://' + provider.webhook_credentials + '@')}/hooks/providers/{provider.webhook_token}/"
    )
    page.goto(f"{live_server.url}/settings/providers/sms/{provider.pk}/")  # the top, not the #test anchor
    page.screenshot(path=SCREENSHOTS / "sms-provider-test.png", full_page=True)
