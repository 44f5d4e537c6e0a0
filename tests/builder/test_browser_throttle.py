"""Headless Chromium at 1366×768: the throttle's panel shows its limit, window, key and overflow policy,
and the digest's name only once "fold" is chosen. Screenshots: docs/screenshots/throttle-panel-1366.png,
throttle-fold-1366.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builder.conftest import htmx_idle
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SMALL_SCREEN = {"width": 1366, "height": 768}


def test_the_throttle_panel_shows_its_settings_and_the_digest_only_when_folding(
    live_server, page, owner, tenant_a
):
    workflow = Workflow.objects.create(tenant=tenant_a, name="Comment fan-out")
    draft = get_or_create_draft(workflow)
    trigger = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        kind="webhook_trigger",
        name="New comment",
        config={"sample": {"email": "ada@example.com", "post_id": 42}},
    )
    throttle = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        parent=trigger,
        kind="throttle",
        name="At most 3 an hour",
        config={"limit": 3, "amount": 1, "unit": "hours", "key": "{{ item.email }}", "policy": "drop"},
    )
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={throttle.pk}")
    htmx_idle(page)

    for field in ("#f-limit", "#f-amount", "#f-unit", "#f-key", "#f-policy"):
        expect(page.locator(field)).to_be_visible()
    expect(page.locator("#f-fold_into")).to_have_count(0)
    expect(page.locator(f"#node-summary-{throttle.pk}")).to_have_text("at most 3 per hour, then drop")
    page.screenshot(path=SCREENSHOTS / "throttle-panel-1366.png")

    page.locator("#f-policy").select_option("fold")
    htmx_idle(page)
    expect(page.locator("#f-fold_into")).to_be_visible()
    expect(page.locator("#f-fold_into").locator("xpath=..")).to_contain_text("Name the digest step")
    page.locator("#f-fold_into").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "throttle-fold-1366.png")
