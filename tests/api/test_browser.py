"""Headless Chromium: an owner creates an API key on its page, copies it, and a program uses it against the
live server to start a run and read it back. Screenshot: docs/screenshots/api-keys.png."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from runs.models import Run
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def call(url: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_create_a_key_in_the_page_and_start_a_run_with_it(live_server, page, owner, welcome):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="No API key yet")).to_be_visible()

    page.get_by_label("Name of the new key").fill("Signup service")
    page.get_by_role("button", name="Create key").click()

    expect(page.get_by_role("heading", name="Copy your new key now")).to_be_visible()
    key = page.get_by_label("The new API key").input_value()
    assert key.startswith("rb_live_")
    row = page.locator("tbody tr", has_text="Signup service")
    expect(row).to_contain_text(f"{key[:16]}…")
    expect(row).to_contain_text("Never")
    page.screenshot(path=SCREENSHOTS / "api-keys.png", full_page=True)
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == key

    status, started = call(
        f"{live_server.url}/api/v1/workflows/{welcome.pk}/runs/",
        key,
        {"payload": {"email": "ada@example.com"}},
    )
    assert status == 202 and started["created"] is True
    status, run = call(f"{live_server.url}/api/v1/runs/{started['run_id']}/", key)
    assert status == 200
    assert (run["workflow_name"], run["payload"]) == ("Welcome", {"email": "ada@example.com"})
    assert Run.objects.get().pk == started["run_id"]

    page.get_by_role("link", name="Done, I have copied it").click()
    expect(page.get_by_label("The new API key")).to_have_count(0)
    expect(page.locator("tbody tr", has_text="Signup service")).to_contain_text("ago")
