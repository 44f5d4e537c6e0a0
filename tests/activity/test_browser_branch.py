"""Headless Chromium, a real RQ worker process and a real SMTP server: build the seed example with one
branch step through the UI, test-run it, and see the right email per item; and measure the run page.

The seed example: webhook → wait 3 days → branch: "Finished onboarding" → next-steps email,
otherwise → finish-onboarding email. Screenshots (docs/screenshots/): the builder with the branch step,
the test page, and the run page's tree with its side panel, at 1366×768 and wide.
"""

from __future__ import annotations

import json
import re
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import Page, expect, sync_playwright

from runs.engine import start_run
from runs.models import Run, StepExecution
from tests.activity.test_browser import worker  # noqa: F401 (fixture)
from tests.engine.conftest import branch, build_workflow, email, on_path, webhook, work
from tests.support import SCREENSHOTS, launch_chromium

LAPTOP = {"width": 1366, "height": 768}
WIDE = {"width": 1920, "height": 1080}
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@contextmanager
def signed_in_page(live_server, user, monkeypatch, viewport=LAPTOP):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport=viewport)
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            browser.close()
            connections.close_all()


def idle(page: Page) -> None:
    # A locator, not wait_for_function: the pages' Content-Security-Policy forbids the eval that needs.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def saved(page: Page, action) -> None:
    idle(page)
    with page.expect_response(lambda r: r.url.endswith("/save/") and r.status == 200):
        action()
    idle(page)


def add_wait_and_branch(page: Page, field: str) -> None:
    """Below the trigger: "Wait 3 days", then a branch whose first path ("Finished onboarding") is taken
    when the item's `field` is true, chosen by clicking its variable chip."""
    add_below(page, page.locator("summary[title='Add a step below']").first, "wait")
    saved(page, lambda: page.fill("#step-name", "Wait 3 days"))
    saved(page, lambda: page.fill("#f-amount", "3"))
    expect(page.locator(".node.selected .node-summary")).to_have_text("for 3 days")

    add_below(
        page, page.locator(".node-wrap", has=page.locator(".node.selected")).locator("summary"), "branch"
    )
    saved(page, lambda: page.fill("#step-name", "Finished onboarding?"))
    saved(page, lambda: page.fill("input[name=config-paths-0-label]", "Finished onboarding"))
    # Point and click: the field box takes a variable chip's name; "is true" is the default comparison.
    page.locator("input[name=config-paths-0-field]").click()
    saved(page, lambda: page.locator(".chips .chip", has_text=re.compile(f"^{field}$")).click())
    expect(page.locator("input[name=config-paths-0-field]")).to_have_value(field)
    expect(page.locator("#warn-paths")).to_be_empty()


def add_below(page: Page, summary, kind: str) -> None:
    summary.click()
    with page.expect_response(lambda r: r.url.endswith("/steps/add/") and r.status == 200):
        page.locator(f'details.add-menu[open] .menu button[data-kind="{kind}"]').click()
    idle(page)
    expect(page.locator("#step-form[data-ready]")).to_have_count(1)


def document_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def build_seed_example(page: Page, base: str) -> None:
    page.goto(f"{base}/workflows/")
    page.get_by_label("Name of the new workflow").fill("Onboarding follow-up")
    page.get_by_role("button", name="New workflow").click()
    page.wait_for_url(re.compile(r"/workflows/\d+/$"), wait_until="load")
    with page.expect_response(lambda r: r.url.endswith("/steps/add/") and r.status == 200):
        page.get_by_role("button", name="Webhook trigger").click()
    idle(page)
    sample = {"email": "ada@example.com", "name": "Ada", "onboarded": False}
    saved(page, lambda: page.fill("#f-sample", json.dumps(sample)))

    add_wait_and_branch(page, "onboarded")
    expect(page.locator(".path-label", has_text="Finished onboarding")).to_have_count(1)  # the tree follows

    add_below(
        page,
        page.locator(".branch.path", has=page.locator("[data-path=p1]")).locator("summary").first,
        "send_email",
    )
    saved(page, lambda: page.fill("#step-name", "Next steps email"))
    saved(page, lambda: page.fill("#f-subject", "Next steps for {{ item.nmae }}"))
    # A misspelled variable is pointed out while typing, before any run fails.
    expect(page.locator("#warn-subject")).to_contain_text("item.nmae (did you mean item.name?)")
    saved(page, lambda: page.fill("#f-subject", "Next steps for {{ item.name }}"))
    expect(page.locator("#warn-subject")).to_be_empty()
    saved(page, lambda: page.fill("#f-text", "You are all set up; here is what to try next."))

    otherwise = page.locator(".branch.path", has=page.locator("[data-path=otherwise]"))
    add_below(page, otherwise.locator("summary").first, "send_email")
    saved(page, lambda: page.fill("#step-name", "Finish onboarding email"))
    saved(page, lambda: page.fill("#f-subject", "Finish onboarding, {{ item.name }}"))
    saved(page, lambda: page.fill("#f-text", "Three steps left to set up your account."))
    expect(page.locator(".node-warn:not(:empty)")).to_have_count(0)


def test_the_seed_example_with_one_branch_step_sends_the_right_email_per_item(
    live_server,
    owner,
    monkeypatch,
    worker,  # noqa: F811 (a fixture)
    smtp,
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with signed_in_page(live_server, owner, monkeypatch) as page:
        build_seed_example(page, live_server.url)
        page.locator(".node-body", has_text="Finished onboarding?").click()
        idle(page)
        expect(page.locator("input[name=config-paths-0-label]")).to_have_value("Finished onboarding")
        assert document_width(page) <= LAPTOP["width"]
        page.screenshot(path=SCREENSHOTS / "builder-branch.png")

        page.get_by_role("link", name="Test", exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Test")
        assert document_width(page) <= LAPTOP["width"]
        test_url = page.url

        people = [
            ({"email": "ada@example.com", "name": "Ada", "onboarded": True}, "Next steps for Ada"),
            ({"email": "bob@example.com", "name": "Bob", "onboarded": False}, "Finish onboarding, Bob"),
        ]
        for item, subject in people:
            page.goto(test_url)
            page.get_by_label("Trigger item (JSON)").fill(json.dumps(item))
            page.get_by_role("button", name="Run the draft").click()
            expect(page.get_by_test_id("run-status")).to_have_text("Succeeded", timeout=30_000)
            message = page.locator(".test-message")
            expect(message).to_have_count(1)
            expect(message).to_contain_text(item["email"])
            expect(message).to_contain_text(subject)

        # The test page draws the latest test run (Bob's) as the draft's tree, with counts.
        page.goto(test_url)
        latest = page.locator(".test-tree")
        expect(
            latest.locator(".run-node", has_text="Finish onboarding email").locator(".badge.succeeded")
        ).to_have_text("1 succeeded")
        expect(latest.locator(".run-node", has_text="Next steps email")).to_contain_text("not reached")
        assert document_width(page) <= LAPTOP["width"]
        page.screenshot(path=SCREENSHOTS / "test-page.png", full_page=True)

        # Ada's run: the branch's node says which path she took; the wait says it was skipped.
        ada = Run.objects.filter(is_test=True, label="ada@example.com").get()
        page.goto(f"{live_server.url}/activity/runs/{ada.pk}/")
        expect(page.locator(".run-node[data-kind=wait] .badge.skipped")).to_have_text("1 skipped")
        page.locator(".run-node[data-kind=branch] .node-body").click()
        expect(page.locator("#run-side")).to_contain_text("took the path Finished onboarding")
        expect(page.locator(".run-node", has_text="Finish onboarding email")).to_contain_text("not reached")
        assert document_width(page) <= LAPTOP["width"]
        page.screenshot(path=SCREENSHOTS / "run-page-test.png")

    # What each item got, by the engine's own records: one email each, the right one.
    sent = {
        e.input["email"]: e.step.name
        for e in StepExecution.objects.filter(run__is_test=True, step__kind="send_email").select_related(
            "step"
        )
    }
    assert sent == {"ada@example.com": "Next steps email", "bob@example.com": "Finish onboarding email"}


def wide_run(tenant):
    """A 4-level, 3-branch workflow: webhook → branch (3 paths) → condition → email, one path failing."""

    def leaf(name, to="{{ item.email }}"):
        return {
            "kind": "condition",
            "name": f"{name} check",
            "config": {"expression": "true"},
            "children": [email(name=f"{name} email with a long descriptive name", to=to)],
        }

    paths = [
        {"id": "pro", "label": "Pro customers on the yearly plan", "expression": "item.plan == 'pro'"},
        {
            "id": "team",
            "label": "Teams with more than five seats",
            "field": "seats",
            "operator": "greater_than",
            "value": "5",
        },
    ]
    children = [
        on_path("pro", leaf("Pro")),
        on_path("team", leaf("Team", to="{{ item.name }}")),  # not an address: this path's email fails
        on_path("otherwise", leaf("Everyone else")),
    ]
    return build_workflow(tenant, webhook([branch(paths, children, otherwise=True)]), name="Three ways")


def test_the_run_page_of_a_four_level_three_branch_run_fits_a_laptop_screen(
    live_server, owner, tenant_a, monkeypatch, redis_conn, smtp
):
    # The real clock (not the engine tests' fixed one), so the page's times and durations read true.
    workflow = wide_run(tenant_a)
    run = None
    for n, item in enumerate(
        [
            {"email": "p@example.com", "name": "Pat", "plan": "pro", "seats": 1},
            {"email": "t@example.com", "name": "Tam", "plan": "team", "seats": 9},
            {"email": "e@example.com", "name": "Eve", "plan": "free", "seats": 1},
        ]
    ):
        started = start_run(workflow, item, f"evt-{n}")
        run = started if item["plan"] == "team" else run
    wait = {
        "kind": "wait",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email()],
    }
    waiting = build_workflow(tenant_a, webhook([wait]), name="Nudge after three days")
    start_run(waiting, {"email": "grace@example.com", "name": "Grace"}, "signup-7")
    work()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    with signed_in_page(live_server, owner, monkeypatch) as page:
        # The list says whom each run is about, and that a run waits, not that it has been "running".
        page.goto(f"{live_server.url}/activity/")
        row = page.locator("tr", has_text="grace@example.com")
        expect(row.locator(".badge.waiting").first).to_contain_text("Waiting until")
        expect(page.locator("tr", has_text="t@example.com").locator(".badge.failed").first).to_be_visible()
        assert document_width(page) <= LAPTOP["width"]
        page.screenshot(path=SCREENSHOTS / "activity-list.png")
    for viewport, name in ((LAPTOP, "run-page.png"), (WIDE, "run-page-wide.png")):
        with signed_in_page(live_server, owner, monkeypatch, viewport) as page:
            page.goto(f"{live_server.url}/activity/runs/{run.pk}/")
            # The failing step's items open by themselves, beside the tree.
            expect(page.locator("#run-side")).to_contain_text("is not an email address")
            failed = page.locator(".run-node", has_text="Team email").locator(".badge.failed")
            expect(failed).to_have_text("1 failed")
            width = document_width(page)
            assert width <= viewport["width"], f"the page is {width} px wide at {viewport['width']} px"
            failed.scroll_into_view_if_needed()
            box = failed.bounding_box()
            assert box is not None and box["x"] + box["width"] <= viewport["width"]  # on screen, not off it
            page.screenshot(path=SCREENSHOTS / name)


def test_the_test_page_with_long_live_rows_fits_a_laptop_screen(
    live_server, owner, tenant_a, monkeypatch, tenant_database
):
    """Live rows with long values wrap inside their column instead of widening the page."""
    import psycopg

    from integrations.models import DataSource

    with psycopg.connect(tenant_database, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id bigserial PRIMARY KEY, email text, bio text)")
        conn.execute("INSERT INTO users (email, bio) VALUES ('ada@example.com', repeat('x', 400))")
    source = DataSource.objects.create(tenant=tenant_a, name="App DB", connection_url=tenant_database)
    trigger = {
        "kind": "database_trigger",
        "config": {"datasource": source.pk, "schema": "public", "table": "users"},
        "children": [email(name="Welcome")],
    }
    workflow = build_workflow(tenant_a, trigger, publish_it=False)
    with signed_in_page(live_server, owner, monkeypatch) as page:
        page.goto(f"{live_server.url}/workflows/{workflow.pk}/test/")
        expect(page.locator(".live-rows")).to_contain_text("xxxxxxxxxxxxxxxx")
        width = document_width(page)
        assert width <= LAPTOP["width"], f"the test page is {width} px wide"
