"""Headless Chromium at 1366x768: an owner invites someone from the Members page, sees the pending
invitation, revokes it; then reads and filters the audit log. Screenshots: docs/screenshots/members.png
and docs/screenshots/audit-log.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tenants.audit import record
from tenants.models import ApiKey, Invitation
from tests.builder import conftest as builder
from tests.builder.test_browser_errors import sign_in
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
page, mailbox = builder.page, builder.mailbox  # fixtures


def fits_the_width(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_members_page_with_a_pending_invitation_and_the_audit_log(live_server, page, mailbox, owner, admin):
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Members").click()

    page.get_by_label("Email of the person to invite").fill("grace.hopper@example.com")
    page.get_by_label("Role", exact=True).select_option("admin")
    page.get_by_role("button", name="Send invitation").click()

    expect(page.get_by_text("Invitation sent to grace.hopper@example.com.")).to_be_visible()
    row = page.locator("tbody tr", has_text="grace.hopper@example.com")
    expect(row).to_contain_text("Admin")
    expect(row).to_contain_text("Pending")
    expect(row).to_contain_text("olivia")
    assert mailbox.messages[-1]["To"] == "grace.hopper@example.com"
    assert fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / "members.png", full_page=True)

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Revoked the invitation to grace.hopper@example.com")).to_be_visible()
    expect(page.get_by_role("heading", name="Pending invitations")).to_have_count(0)
    assert Invitation.objects.get().revoked_at is not None

    api_key, _key = ApiKey.issue(owner.memberships.get().tenant, "Signup service", owner)
    tenant = api_key.tenant
    record(tenant, admin, "workflow.published", label="Welcome series", version=3, sandbox=False)
    record(tenant, api_key, "run.cancelled", label="Run #1284", stopped=2)
    record(
        tenant,
        admin,
        "messages.released",
        label="12 messages",
        object_type="delivery",
        ids=list(range(100, 112)),
    )
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()

    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    table = page.locator("table.audit tbody")
    expect(table.locator("tr")).to_have_count(5)
    expect(table.locator("tr").first).to_contain_text("ada")
    expect(table).to_contain_text("API key “Signup service”")
    expect(table).to_contain_text("invitation.revoked")
    assert fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / "audit-log.png", full_page=True)

    page.get_by_label("Action").select_option("invitation.created")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tr")).to_have_count(1)
    expect(table).to_contain_text("grace.hopper@example.com as admin")
