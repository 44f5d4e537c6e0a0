"""Headless Chromium at 1366×768: send windows in the step panel (a bad window is refused under its field,
a good one saved), the workspace's sending defaults, and a run whose message is held for its window.
Screenshots: docs/screenshots/send-window-panel.png, sending-defaults.png, run-held-for-window.png."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from runs.engine import start_run
from runs.models import StepExecution
from tests.builder.conftest import htmx_idle, saved
from tests.builder.test_browser_errors import draft_email, sign_in  # noqa: F401 (a fixture)
from tests.engine.conftest import build_workflow, email, webhook, work
from tests.support import SCREENSHOTS
from workflows.models import Step

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SMALL_SCREEN = {"width": 1366, "height": 768}


def test_the_send_window_is_set_in_the_step_panel(live_server, page, owner, draft_email):  # noqa: F811
    workflow, step = draft_email
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={step.pk}")
    htmx_idle(page)

    page.locator("summary", has_text="Send window").click()
    saved(page, lambda: page.locator("#f-send_window").fill("weekdays 9 to 5"))
    expect(page.locator("#f-send_window").locator("xpath=..").get_by_role("alert")).to_contain_text(
        "write days and a span"
    )
    saved(page, lambda: page.locator("#f-send_window").fill("mon-fri 09:00-18:00; not fri 12:00-13:00"))
    saved(page, lambda: page.locator("#f-send_window_zone").fill("{{ item.timezone }}"))
    step.refresh_from_db()
    assert step.config["send_window"] == "mon-fri 09:00-18:00; not fri 12:00-13:00"
    assert step.config["send_window_zone"] == "{{ item.timezone }}"
    page.locator("#f-send_window_zone").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "send-window-panel.png")


def test_an_admin_sets_the_workspace_defaults(live_server, page, owner, tenant_a):
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/settings/sending/")
    page.get_by_label("Time zone").fill("Europe/Berlln")
    page.get_by_label("Default send window").fill("not daily 22:00-06:00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("“Europe/Berlln” is not a time zone")
    tenant_a.refresh_from_db()
    assert tenant_a.time_zone == "UTC"  # nothing saved

    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages, [role=status]").first).to_contain_text("Saved")
    tenant_a.refresh_from_db()
    assert (tenant_a.time_zone, tenant_a.send_window) == ("Europe/Berlin", "not daily 22:00-06:00")
    page.screenshot(path=SCREENSHOTS / "sending-defaults.png")


def test_the_run_page_says_a_message_is_held_for_its_window(live_server, page, owner, tenant_a):
    tenant_a.time_zone = "Europe/Berlin"
    tenant_a.save()
    # A one-hour window that starts three hours from now, in Berlin: closed now whatever the time.
    opens = (datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")).hour + 3) % 24
    window = f"daily {opens:02d}:00-{(opens + 1) % 24:02d}:00"
    step = email(send_window=window, send_window_zone="{{ item.timezone }}", name="Welcome")
    workflow = build_workflow(tenant_a, webhook([step]), name="Welcome")
    run = start_run(
        workflow, {"email": "ann@example.com", "name": "Ann", "timezone": "Atlantis/Capital"}, "e1"
    )
    work()
    assert StepExecution.objects.get(run=run, step__kind="send_email").status == "pending"
    welcome = Step.objects.get(version=workflow.published_version, kind="send_email")

    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/activity/runs/{run.pk}/?step={welcome.pk}")
    item = page.locator(".execution").first
    expect(item.locator(".badge").first).to_have_text("held for send window")
    expect(item).to_contain_text("Held for send window until")
    expect(item).to_contain_text(f"{opens:02d}:00 Europe/Berlin")
    expect(item).to_contain_text("Europe/Berlin (in ")
    expect(item).to_contain_text("zone “Atlantis/Capital” is not a time zone, used Europe/Berlin")
    page.screenshot(path=SCREENSHOTS / "run-held-for-window.png")
