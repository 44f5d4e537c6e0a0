"""Headless Chromium: a run whose worker died mid-send shows its uncertain message in its own colour,
the attempt history of that execution, and resolves it with a confirmed "Send again".

Writes docs/screenshots/run-uncertain.png (VIEW_W / VIEW_H set the window, 1366x768 by default).
"""

from __future__ import annotations

import os

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.models import Delivery
from tests.activity.conftest import email, webhook
from tests.activity.test_browser import browser_page  # noqa: F401 (fixture)
from tests.engine.test_uncertain_and_attempts import uncertain_run
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_uncertain_message_on_the_run_page(live_server, browser_page, clock, smtp, tenant_a):  # noqa: F811
    clock.now = timezone.now()  # times on the page read like a real run's
    spec = webhook([email(name="Welcome"), email(name="Tell the team", to="team@example.com")])
    run, execution = uncertain_run(tenant_a, clock, spec)
    delivery = Delivery.objects.get(step_execution=execution)
    assert delivery.status == "uncertain"

    page = browser_page
    page.set_viewport_size(
        {"width": int(os.environ.get("VIEW_W", 1366)), "height": int(os.environ.get("VIEW_H", 768))}
    )
    page.goto(f"{live_server.url}/activity/runs/{run.pk}/")
    summary = page.get_by_test_id("message-summary")
    expect(summary.locator('.badge[data-status="uncertain"]')).to_have_text("1 uncertain")
    expect(summary.locator('.badge[data-status="sent"]')).to_have_text("1 sent")
    colour = summary.locator('.badge[data-status="uncertain"]').evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    failed_colour = page.evaluate(
        "() => { const b = document.createElement('span'); b.className = 'badge failed';"
        " document.body.append(b); const c = getComputedStyle(b).backgroundColor; b.remove(); return c; }"
    )
    assert colour != failed_colour, "uncertain has its own colour"
    history = page.locator(f"#execution-{execution.pk}").get_by_test_id("attempt-history")
    history.locator("summary").click()
    expect(history.locator("li.attempt")).to_have_count(2)
    expect(history.locator("li.attempt").last).to_contain_text("worker-7f3a stopped (no heartbeat)")
    history.scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    shots = SCREENSHOTS
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "run-uncertain.png"), full_page=True)

    # "Send again" needs its confirmation ticked; the browser refuses the form until then.
    resend = summary.locator("form.resend")
    resend.get_by_role("button", name="Send again").click()
    assert Delivery.objects.get(pk=delivery.pk).status == "uncertain"
    resend.get_by_label("I understand it may be a duplicate").check()
    resend.get_by_role("button", name="Send again").click()
    expect(page.locator(".flash-success")).to_contain_text(
        "Sending the email message to ann@example.com again"
    )
    assert Delivery.objects.get(pk=delivery.pk).status == "failed"  # reset, queued to be sent once more
