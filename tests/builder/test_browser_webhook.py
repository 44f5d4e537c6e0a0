"""Headless Chromium: the webhook trigger's panel in the builder. Reveal and copy the secret, rotate it
(confirmed), send a test event (confirmed). Screenshot: docs/screenshots/webhook-panel.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from runs.models import Run
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS
from tests.triggers.conftest import make_workflow
from workflows.publishing import publish

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_webhook_panel_reveal_copy_rotate_and_send_a_test_event(live_server, page, owner, tenant_a):
    workflow = make_workflow(
        tenant_a, "webhook_trigger", {"sample": {"email": "ada@example.com", "name": "Ada"}}, name="Welcome"
    )
    publish(workflow)
    workflow.refresh_from_db()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/")

    panel = page.locator(".webhook-panel")
    expect(panel.locator("#webhook-url")).to_have_text(f"{live_server.url}/hooks/{workflow.pk}/")
    expect(panel).not_to_contain_text(workflow.webhook_secret)
    panel.get_by_role("button", name="Reveal").click()
    expect(panel.locator("#webhook-secret-value")).to_have_text(workflow.webhook_secret)
    panel.get_by_role("button", name="Copy the secret").click()
    assert page.evaluate("navigator.clipboard.readText()") == workflow.webhook_secret
    panel.locator("summary", has_text="Example with curl").click()
    expect(panel.locator("#webhook-curl")).to_contain_text("openssl dgst -sha256 -hmac")
    # The side panel scrolls on its own: bring the webhook section to its top, then shoot the window.
    panel.evaluate("element => element.scrollIntoView({block: 'start'})")
    page.screenshot(path=SCREENSHOTS / "webhook-panel.png")

    page.once("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Rotate…").click()
    expect(panel).to_contain_text("requests signed with the old one are refused")
    workflow.refresh_from_db()
    expect(panel.locator("#webhook-secret-value")).to_have_text(workflow.webhook_secret)

    page.once("dialog", lambda dialog: dialog.accept())
    panel.get_by_role("button", name="Send a test event").click()
    expect(panel.locator("#webhook-test-result")).to_contain_text("Accepted (202)")
    assert Run.objects.get(workflow=workflow).payload == {"email": "ada@example.com", "name": "Ada"}
