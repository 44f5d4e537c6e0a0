"""Headless Chromium at 1366×768: the Supabase page creates the auth-email starter in one click, the
builder draws it, and the page then shows the hook's URL and secret. Screenshots:
docs/screenshots/supabase-setup.png and supabase-auth-email-starter.png."""

from __future__ import annotations

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from integrations.supabase_hook import hook_secret
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS, launch_chromium
from workflows.models import Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(live_server, monkeypatch, redis_conn):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        connections.close_all()
    connections.close_all()


def test_create_the_auth_email_starter_and_see_its_hook(live_server, page, owner, tenant_a):
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/")
    page.get_by_role("link", name="Send its auth emails through Rowbell").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rowbell with Supabase")
    page.get_by_role("button", name="Create the auth-email workflow").click()

    workflow = Workflow.objects.get(tenant=tenant_a)
    expect(page).to_have_url(f"{live_server.url}/workflows/{workflow.pk}/")
    for subject in (
        "Confirm your sign-up",
        "Your sign-in link",
        "Reset your password",
        "Your confirmation code",
    ):
        expect(page.locator("main")).to_contain_text(subject)
    page.screenshot(path=SCREENSHOTS / "supabase-auth-email-starter.png")

    page.goto(f"{live_server.url}/supabase/")
    expect(page.locator(f"#hook-url-{workflow.pk}")).to_have_text(
        f"{live_server.url}/hooks/supabase/{workflow.pk}/"
    )
    expect(page.locator(f"#hook-secret-{workflow.pk}")).to_have_text(hook_secret(workflow.webhook_secret))
    page.screenshot(path=SCREENSHOTS / "supabase-setup.png")
