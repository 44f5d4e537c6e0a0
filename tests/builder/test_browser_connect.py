"""Headless Chromium: a new admin connects a database whose tables live in schema `app`, with a URL for a role
named like `rowbell_ux` (unique per test: roles are cluster-wide), using only what the page shows: the setup
SQL is copied with its button and run as superuser, the check passes, the schema list appears, and after a
grant is revoked the check says what is missing and how to fix it. Screenshots: docs/screenshots/datasource-connect.png (the connect page with the
setup SQL) and datasource-check-missing.png (the check listing a missing grant with its fix)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.builder.test_browser_errors import sign_in
from tests.support import (
    SCREENSHOTS,
    customer_execute,
    role_url,
    run_with_psql,
    unique_role,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_connect_a_database_from_what_the_page_says(live_server, page, admin, app_db):
    role = unique_role()
    app_db["roles"].append(role)
    url = role_url(app_db["url"], role, "ux-Pass-123")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, admin)

    page.goto(f"{live_server.url}/datasources/")
    page.get_by_role("link", name="Add a data source").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connect a database")
    page.get_by_label("Name", exact=True).fill("Shop")
    page.get_by_label("Connection URL").fill(url)
    page.get_by_label("Connection URL").press("Tab")  # leaving the box looks the server's schemas up
    picker = page.locator("#schema-picker")
    expect(picker).to_contain_text("expected before the setup SQL has run")
    page.get_by_label("Schemas, separated by commas").fill("app")
    sql = page.locator("#setup-sql-text")
    expect(sql).to_contain_text(f'GRANT USAGE ON SCHEMA "app" TO "{role}"')
    expect(sql).to_contain_text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'ux-Pass-123'")
    page.screenshot(path=SCREENSHOTS / "datasource-connect.png", full_page=True)

    page.get_by_role("button", name="Copy the SQL").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == sql.text_content()
    run_with_psql(app_db["url"], copied)

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#setup-check")).to_contain_text("Connected to PostgreSQL")
    # Now that the role exists, the server's schemas are listed, the chosen one ticked.
    expect(picker.get_by_role("checkbox", name="app")).to_be_checked()
    expect(picker.get_by_role("checkbox", name="public")).not_to_be_checked()
    page.get_by_role("button", name="Save and test").click()

    expect(page.locator(".flash-success")).to_contain_text("Saved Shop. Connected to PostgreSQL")
    expect(page.locator("#tables")).to_contain_text("app.orders")
    expect(page.locator("#tables")).to_contain_text("app.users")

    customer_execute(app_db["url"], f'REVOKE TRIGGER ON app.orders FROM "{role}"')
    page.get_by_role("button", name="Test connection").click()
    check = page.locator("#check")
    expect(check).to_contain_text("1 thing is still missing")
    expect(check).to_contain_text(f"“{role}” cannot read or put triggers on 1 table in “app”: orders.")
    fix = check.locator("pre")
    expect(fix).to_have_text(f'GRANT SELECT, TRIGGER ON ALL TABLES IN SCHEMA "app" TO "{role}";')
    check.locator("pre").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "datasource-check-missing.png", full_page=True)

    page.get_by_role("button", name="Copy the fix").click()
    run_with_psql(app_db["url"], page.evaluate("navigator.clipboard.readText()"))
    page.get_by_role("button", name="Test connection").click()
    expect(check).to_contain_text("Connected to PostgreSQL")


def test_a_schema_typed_while_the_picker_redraws_is_kept(live_server, page, admin, app_db):
    """Typing the schema right after leaving the URL box: the redraw the URL asked for (which carried an
    empty box) must not wipe what was typed, and the setup SQL follows the typed schema."""
    sign_in(page, live_server, admin)
    page.goto(f"{live_server.url}/datasources/new/")
    expect(page.locator("#schemas-typed")).to_have_count(1)  # the first look-up (no URL yet) has drawn it
    role = unique_role("rowbell_ux_race")
    page.get_by_label("Connection URL").fill(role_url(app_db["url"], role, "pw-123"))
    app_db["roles"].append(role)
    # The URL's change sends the picker's request, then the schema is typed before its answer arrives.
    page.evaluate(
        """() => {
            document.getElementById("id_connection_url").dispatchEvent(new Event("change", {bubbles: true}));
            const box = document.getElementById("schemas-typed");
            box.value = "app";
            box.dispatchEvent(new Event("input", {bubbles: true}));
        }"""
    )
    expect(page.locator("#schema-picker")).to_contain_text("expected before the setup SQL has run")
    expect(page.get_by_label("Schemas, separated by commas")).to_have_value("app")
    expect(page.locator("#setup-sql-text")).to_contain_text(f'GRANT USAGE ON SCHEMA "app" TO "{role}"')
