"""Headless Chromium against the live server: sign up, connect a real database, build the onboarding
workflow through the UI alone, publish it, and check the published tree and the installed trigger.
Screenshots of the builder, the publish dialog and the dashboard go to docs/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from integrations.datasources import installed_triggers
from integrations.models import DataSource
from tests.builder.conftest import htmx_idle, preview_finished, saved
from tests.support import SCREENSHOTS
from workflows.models import Workflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def add_step(page: Page, label: str, kind: str) -> None:
    page.locator("summary", has_text=label).click()
    menu = page.locator("details.add-menu[open] .menu")
    with page.expect_response(lambda r: r.url.endswith("/steps/add/") and r.status == 200):
        menu.locator(f'button[data-kind="{kind}"]').click()
    htmx_idle(page)


def name_step(page: Page, name: str) -> None:
    saved(page, lambda: page.fill("#step-name", name))
    expect(page.locator(".node.selected .node-name")).to_have_text(name)


def sign_up_and_connect(page: Page, base: str, customer_db: str) -> None:
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Organisation").fill("Rowbell Test Co")
    page.get_by_label("Username").fill("founder")
    page.get_by_label("Email").fill("founder@example.com")
    page.get_by_label("Password").fill("a-long-enough-password-1")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rowbell Test Co")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Data sources").click()
    page.get_by_role("link", name="Add a data source").click()
    page.get_by_label("Name").fill("App DB")
    page.get_by_label("Connection URL").fill(customer_db)
    # Leaving the box lists the server's schemas; the one holding `users` is ticked (never assumed).
    page.get_by_label("Connection URL").press("Tab")
    expect(page.locator("#schema-picker input[value=public]")).to_be_checked()
    page.get_by_role("button", name="Save and test").click()
    expect(page.locator("#check .badge-ok")).to_have_text("Connected")
    expect(page.locator("#tables")).to_contain_text("public.users")


def build_onboarding(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    page.get_by_label("Name of the new workflow").fill("Onboarding")
    page.get_by_role("button", name="New workflow").click()
    # htmx is a deferred script: wait for the builder page to finish loading before clicking its buttons.
    page.wait_for_url(re.compile(r"/workflows/\d+/$"), wait_until="load")
    with page.expect_response(lambda r: r.url.endswith("/steps/add/") and r.status == 200):
        page.get_by_role("button", name="Database trigger").click()
    htmx_idle(page)
    name_step(page, "New user")
    saved(page, lambda: page.select_option("#f-datasource", label="App DB"))
    expect(page.locator("#f-table option", has_text="public.users")).to_have_count(1)
    saved(page, lambda: page.select_option("#f-table", "users"))
    expect(page.locator("#f-operations, input[name=config-operations][value=insert]")).to_be_checked()

    add_step(page, "Add a step below: New user", "send_email")
    name_step(page, "Welcome email")
    saved(page, lambda: page.fill("#f-subject", "Welcome "))
    saved(page, lambda: page.locator(".chips .chip", has_text=re.compile("^email$")).click())
    expect(page.locator("#f-subject")).to_have_value("Welcome {{ item.email }}")
    saved(page, lambda: page.fill("#f-text", "Hi {{ item.name }}, thanks for joining."))
    expect(page.locator("#step-preview .preview-subject")).to_have_text("Welcome someone@example.com")

    add_step(page, "Add a step below: Welcome email", "wait")
    name_step(page, "Wait 3 days")
    saved(page, lambda: page.fill("#f-amount", "3"))

    add_step(page, "Add a step below: Wait 3 days", "data_query")
    name_step(page, "Find their team")
    saved(page, lambda: page.select_option("#f-datasource", label="App DB"))
    saved(page, lambda: page.select_option("#f-mode", "first"))
    sql = "SELECT id AS team_id, name AS team_name FROM teams WHERE owner_id = {{ item.id }}"
    saved(page, lambda: page.fill("#f-sql", sql))
    expect(page.locator("#err-sql")).to_be_empty()
    add_step(page, "Add a step below: Find their team", "send_email")
    name_step(page, "Team tips")
    saved(page, lambda: page.fill("#f-subject", "Tips for {{ item.team_name }}"))
    saved(page, lambda: page.fill("#f-text", "Invite your team."))

    add_step(page, "Add a parallel path (every path runs): Wait 3 days", "data_query")
    name_step(page, "Find admins")
    saved(page, lambda: page.select_option("#f-datasource", label="App DB"))
    saved(page, lambda: page.fill("#f-sql", "SELECT id, email FROM users WHERE plan = 'admin'"))
    add_step(page, "Add a step below: Find admins", "send_email")
    name_step(page, "Tell admins")
    saved(page, lambda: page.fill("#f-subject", "A new user signed up"))
    saved(page, lambda: page.fill("#f-text", "Say hello."))
    expect(page.locator(".node-warn:not(:empty)")).to_have_count(0)


def published_tree(workflow: Workflow) -> list:
    steps = list(workflow.published_version.steps.all())

    def below(parent_id):
        return [
            (s.kind, s.name, below(s.id))
            for s in sorted(steps, key=lambda s: (s.position, s.id))
            if s.parent_id == parent_id
        ]

    return below(None)


def test_sign_up_build_and_publish_the_onboarding_workflow(live_server, page, customer_db):
    sign_up_and_connect(page, live_server.url, customer_db)
    build_onboarding(page)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".node-body", has_text="Welcome email").click()
    expect(page.locator("#step-preview .preview-subject")).to_have_text("Welcome someone@example.com")
    # Keep the page's title in view and scroll the side panel down to the email preview.
    page.locator("#panel").evaluate("p => { p.scrollTop = p.querySelector('#step-preview').offsetTop - 380 }")
    page.screenshot(path=SCREENSHOTS / "builder.png")

    page.get_by_role("button", name="Publish…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Installs a row trigger (insert) on public.users")
    expect(dialog.locator(".added li")).to_have_count(7)
    preview_finished(page)
    page.screenshot(path=SCREENSHOTS / "publish-dialog.png")
    dialog.get_by_role("button", name="Publish version 1").click()
    expect(page.locator("h1 .badge-ok")).to_have_text("Live v1")

    workflow = Workflow.objects.get(name="Onboarding")
    assert published_tree(workflow) == [
        (
            "database_trigger",
            "New user",
            [
                (
                    "send_email",
                    "Welcome email",
                    [
                        (
                            "wait",
                            "Wait 3 days",
                            [
                                ("data_query", "Find their team", [("send_email", "Team tips", [])]),
                                ("data_query", "Find admins", [("send_email", "Tell admins", [])]),
                            ],
                        )
                    ],
                )
            ],
        )
    ]
    root = workflow.published_version.root_step()
    source = DataSource.objects.get(name="App DB")
    assert root.config == {
        "datasource": source.pk,
        "schema": "public",
        "table": "users",
        "operations": ["insert"],
        "watch_columns": [],
    }
    wait = workflow.published_version.steps.get(kind="wait")
    assert wait.config["amount"] == 3 and wait.config["unit"] == "days"
    assert installed_triggers(source, workflow.pk), "the row trigger is installed in the customer database"

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.locator("table.table")).to_contain_text("Onboarding")
    page.screenshot(path=SCREENSHOTS / "dashboard.png")
