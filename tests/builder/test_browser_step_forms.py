"""Headless Chromium at 1366×768: the builder's panel shows what applies. A webhook trigger's panel starts
with how to call it (URL, secret, curl) above the fold and its node shows the URL path; a wait shows only
its current mode's fields and switches them as the mode changes.
Screenshots: docs/screenshots/webhook-panel-1366.png, wait-until-1366.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builder.conftest import htmx_idle, saved
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SMALL_SCREEN = {"width": 1366, "height": 768}


def webhook_with_wait(tenant) -> tuple[Workflow, Step, Step]:
    workflow = Workflow.objects.create(tenant=tenant, name="Trial ends")
    draft = get_or_create_draft(workflow)
    trigger = Step.objects.create(
        tenant=tenant,
        version=draft,
        kind="webhook_trigger",
        name="Signup webhook",
        config={"sample": {"email": "ada@example.com", "trial_ends_at": "2026-12-20T09:00:00Z"}},
    )
    wait = Step.objects.create(
        tenant=tenant,
        version=draft,
        parent=trigger,
        kind="wait",
        name="Wait",
        config={"mode": "duration", "amount": 1, "unit": "days"},
    )
    return workflow, trigger, wait


def above_the_fold(locator) -> bool:
    box = locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= SMALL_SCREEN["height"]


def test_the_webhook_panel_starts_with_how_to_call_it_above_the_fold(live_server, page, owner, tenant_a):
    workflow, trigger, _wait = webhook_with_wait(tenant_a)
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={trigger.pk}")
    htmx_idle(page)

    panel = page.locator(".webhook-panel")
    expect(panel.get_by_role("heading", name="Calling this webhook")).to_be_visible()
    expect(panel.locator("#webhook-url")).to_have_text(f"{live_server.url}/hooks/{workflow.pk}/")
    for part in (
        panel.get_by_role("heading", name="Calling this webhook"),
        panel.locator("#webhook-url"),
        panel.locator("#webhook-secret"),
        panel.locator("summary", has_text="Example with curl"),
    ):
        assert above_the_fold(part), part
    expect(page.locator(f"#node-summary-{trigger.pk}")).to_have_text(f"POST /hooks/{workflow.pk}/")
    page.screenshot(path=SCREENSHOTS / "webhook-panel-1366.png")


def test_the_wait_form_shows_only_the_current_modes_fields(live_server, page, owner, tenant_a):
    workflow, _trigger, wait = webhook_with_wait(tenant_a)
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={wait.pk}")
    htmx_idle(page)

    expect(page.locator("#f-amount")).to_be_visible()
    expect(page.locator("#f-unit")).to_be_visible()
    for other in ("#f-field", "#f-offset_amount", "#f-offset_unit", "#f-offset_direction"):
        expect(page.locator(other)).to_have_count(0)

    saved(page, lambda: page.locator("#f-mode").select_option("until"))
    expect(page.locator("#f-field")).to_be_visible()
    expect(page.locator("#f-offset_direction")).to_be_visible()
    expect(page.locator("#f-amount")).to_have_count(0)
    expect(page.locator("#f-unit")).to_have_count(0)

    saved(page, lambda: page.locator("#f-field").fill("trial_ends_at"))
    saved(page, lambda: page.locator("#f-offset_amount").fill("2"))
    expect(page.locator(f"#node-summary-{wait.pk}")).to_have_text("until 2 days before trial_ends_at")
    wait.refresh_from_db()
    assert wait.config == {
        "mode": "until",
        "field": "trial_ends_at",
        "offset_amount": 2,
        "offset_unit": "days",
        "offset_direction": "before",
    }
    page.screenshot(path=SCREENSHOTS / "wait-until-1366.png")

    saved(page, lambda: page.locator("#f-mode").select_option("duration"))
    expect(page.locator("#f-amount")).to_be_visible()
    expect(page.locator("#f-field")).to_have_count(0)
