"""A new user's whole path in headless Chromium at 1366×768, using only what the pages show.

Sign up; connect a customer database whose tables live in schema `app`, with a URL for a role the user
names (`rowbell_ux_…`, unique per run: roles are cluster-wide); run exactly the setup SQL the page shows, as a superuser; build the seed example
(database trigger on new users → wait 3 days → branch "Finished onboarding" → "Next steps" email, otherwise
→ "Finish onboarding" email); test it on a live row; publish; insert a row as the customer's app would;
`manage.py listen` (a real process) starts the run, real RQ burst workers run it, the 3-day wait passes on
the test's clock, and the email arrives at a real SMTP server (aiosmtpd); the run page draws the tree.

The listener process keeps the real clock; the run's steps run in this process on a clock the test moves.
Screenshots: docs/screenshots/new-user-journey-*.png.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django_rq
import psycopg
import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from runs.engine.sweeper import sweep
from runs.models import Run
from tests.activity.test_browser_branch import add_below, add_wait_and_branch, document_width, idle, saved
from tests.builder.conftest import preview_finished
from tests.engine.conftest import Clock, smtp, work  # noqa: F401 (smtp: a fixture)
from tests.support import SCREENSHOTS, customer_execute, role_url, subprocess_database_url, unique_role

ROOT = Path(__file__).resolve().parents[2]

LAPTOP = {"width": 1366, "height": 768}
ROLE, ROLE_PASSWORD = unique_role(), "ux-Pass-123"
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CUSTOMER_COLUMNS = """
ALTER TABLE app.users ADD COLUMN name text, ADD COLUMN finished_onboarding boolean NOT NULL DEFAULT false,
                      ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
"""


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def shot(page: Page, name: str, **options) -> None:
    assert document_width(page) <= LAPTOP["width"], f"{name}: the page is wider than the screen"
    page.screenshot(path=SCREENSHOTS / f"new-user-journey-{name}.png", **options)


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def sign_up(page: Page, base: str) -> None:
    page.goto(base)
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Organisation").fill("Tiny SaaS")
    page.get_by_label("Username").fill("founder")
    page.get_by_label("Email").fill("founder@example.com")
    page.get_by_label("Password").fill("a-long-enough-password-1")
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tiny SaaS")


def connect_database(page: Page, customer: dict) -> None:
    """The connect page: the URL names the role; the SQL the page shows is copied and run as superuser."""
    nav(page, "Data sources")
    page.get_by_role("link", name="Add a data source").click()
    page.get_by_label("Name", exact=True).fill("Shop")
    page.get_by_label("Connection URL").fill(role_url(customer["url"], ROLE, ROLE_PASSWORD))
    page.get_by_label("Connection URL").press("Tab")  # leaving the box looks the server's schemas up
    # The role does not exist yet, so the page asks for the schema by name (and says why).
    expect(page.locator("#schema-picker")).to_contain_text("expected before the setup SQL has run")
    page.get_by_label("Schemas, separated by commas").fill("app")
    sql = page.locator("#setup-sql-text")
    expect(sql).to_contain_text(f'GRANT USAGE ON SCHEMA "app" TO "{ROLE}"')
    shot(page, "connect", full_page=True)

    page.get_by_role("button", name="Copy the SQL").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == sql.text_content()
    with psycopg.connect(customer["url"], autocommit=True) as superuser:
        superuser.execute(copied)  # exactly what the page showed, as one script

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#setup-check")).to_contain_text("Connected to PostgreSQL")
    page.get_by_role("button", name="Save and test").click()
    expect(page.locator(".flash-success")).to_contain_text("Saved Shop. Connected to PostgreSQL")
    expect(page.locator("#tables")).to_contain_text("app.users")


def build_seed_example(page: Page) -> None:
    nav(page, "Workflows")
    page.get_by_label("Name of the new workflow").fill("Onboarding follow-up")
    page.get_by_role("button", name="New workflow").click()
    page.wait_for_url(re.compile(r"/workflows/\d+/$"), wait_until="load")
    with page.expect_response(lambda r: r.url.endswith("/steps/add/") and r.status == 200):
        page.get_by_role("button", name="Database trigger").click()
    idle(page)
    saved(page, lambda: page.fill("#step-name", "New user"))
    # The only data source is chosen already; its schema and then its table are picked from lists.
    expect(page.locator("#f-datasource option:checked")).to_have_text("Shop")
    saved(page, lambda: page.get_by_label("Schema").select_option("app"))
    saved(page, lambda: page.get_by_label("Table").select_option("users"))
    expect(page.locator(".node.selected .node-summary")).to_contain_text("app.users")

    add_wait_and_branch(page, "finished_onboarding")

    first_path = page.locator(".branch.path", has=page.locator("[data-path=p1]"))
    add_below(page, first_path.locator("summary").first, "send_email")
    saved(page, lambda: page.fill("#step-name", "Next steps email"))
    saved(page, lambda: page.fill("#f-subject", "Next steps for {{ item.name }}"))
    saved(page, lambda: page.fill("#f-text", "You are all set up; here is what to try next."))

    otherwise = page.locator(".branch.path", has=page.locator("[data-path=otherwise]"))
    add_below(page, otherwise.locator("summary").first, "send_email")
    saved(page, lambda: page.fill("#step-name", "Finish onboarding email"))
    saved(page, lambda: page.fill("#f-subject", "Finish onboarding, {{ item.name }}"))
    saved(page, lambda: page.fill("#f-text", "Three steps left to set up your account."))
    expect(page.locator(".node-warn:not(:empty)")).to_have_count(0)
    shot(page, "builder")


def try_on_a_live_row(page: Page, clock: Clock) -> None:
    """The test page lists the table's live rows: use Ada's (finished), waits skipped; the right email."""
    page.get_by_role("link", name="Test", exact=True).click()
    rows = page.locator(".live-rows")
    expect(rows).to_contain_text("ada@example.com")
    rows.locator("tr", has_text="ada@example.com").get_by_role("link", name="Use this row").click()
    expect(page.get_by_label("Trigger item (JSON)")).to_contain_text("ada@example.com")
    expect(page.get_by_label("Skip waits")).to_be_checked()
    page.get_by_role("button", name="Run the draft").click()
    page.wait_for_url(re.compile(r"/activity/runs/\d+/$"))
    work(clock)
    expect(page.get_by_test_id("run-status")).to_have_text("Succeeded", timeout=30_000)
    message = page.locator(".test-message")
    expect(message).to_have_count(1)
    expect(message).to_contain_text("ada@example.com")
    expect(message).to_contain_text("Next steps for Ada")


def publish(page: Page) -> None:
    # The test run's page leads back to the builder, where Publish is.
    page.get_by_role("link", name="back to the builder").click()
    page.get_by_role("button", name="Publish…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("app.users")
    preview_finished(page)  # the preview the dialog queued, run as a worker would; then Publish is enabled
    dialog.get_by_role("button", name="Publish version 1").click()
    expect(page.locator("h1 .badge-ok")).to_have_text("Live v1")


def start_listener(tmp_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DB_CONN_MAX_AGE": "0",
    }
    log = open(tmp_path / "listener.log", "w")  # noqa: SIM115 (the process holds it; closed with it)
    return subprocess.Popen(
        [sys.executable, "manage.py", "listen"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def queued() -> int:
    return sum(django_rq.get_queue(name).count for name in ("default", "low"))


class RunningClock(Clock):
    """The real time plus however far the test travelled: the listener process stamps the runs it starts
    with the real time, and the steps run here must not find them in their future."""

    def __init__(self):
        super().__init__(datetime.now(UTC))
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @property
    def now(self) -> datetime:  # what the engine fixtures' work() promotes scheduled jobs by
        return self()

    @now.setter
    def now(self, value: datetime) -> None:
        pass

    def travel(self, **delta) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def running_clock(monkeypatch) -> RunningClock:
    fake = RunningClock()
    monkeypatch.setattr("integrations.clock.now", fake)
    return fake


def test_a_new_user_gets_from_sign_up_to_a_live_workflow_from_what_the_pages_show(
    live_server,
    page,
    app_db,
    smtp,  # noqa: F811 (a fixture)
    running_clock,
    tmp_path,
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(LAPTOP)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    app_db["roles"].append(ROLE)
    customer_execute(app_db["url"], CUSTOMER_COLUMNS)
    customer_execute(
        app_db["app_url"],
        "INSERT INTO app.users (email, name, finished_onboarding) VALUES ('ada@example.com', 'Ada', true)",
    )

    sign_up(page, live_server.url)
    connect_database(page, app_db)
    build_seed_example(page)
    try_on_a_live_row(page, running_clock)
    publish(page)
    assert not smtp.messages, "a test run captures its messages instead of sending them"

    listener = start_listener(tmp_path)
    try:
        customer_execute(
            app_db["app_url"],
            "INSERT INTO app.users (email, name, finished_onboarding) VALUES ('bob@example.com', 'Bob', false)",
        )
        # The listener starts the run and queues its first step for the workers.
        started = wait_for(lambda: Run.objects.filter(is_test=False).exists() and queued() > 0)
        assert started, (tmp_path / "listener.log").read_text()
    finally:
        listener.send_signal(signal.SIGTERM)
        listener.wait(timeout=20)
    work(running_clock)
    run = Run.objects.get(is_test=False)
    assert run.label == "bob@example.com"
    assert not smtp.messages, "the email waits three days"

    # Three days later the sweeper (a scheduled job in production) queues the wait's due items.
    running_clock.travel(days=3, minutes=1)
    sweep()
    work(running_clock)
    assert wait_for(lambda: len(smtp.messages) == 1)
    message = smtp.messages[0]
    assert message["To"] == "bob@example.com"
    assert message["Subject"] == "Finish onboarding, Bob"

    nav(page, "Activity")
    page.locator("tr", has_text="bob@example.com").get_by_role("link").first.click()
    expect(page.get_by_test_id("run-status")).to_have_text("Succeeded")
    tree = page.locator(".run-flow")
    expect(tree.locator(".run-node[data-kind=wait] .badge.succeeded")).to_have_text("1 succeeded")
    expect(tree.locator(".path-label", has_text="Finished onboarding")).to_have_count(1)
    expect(tree.locator(".run-node", has_text="Next steps email")).to_contain_text("not reached")
    expect(
        tree.locator(".run-node", has_text="Finish onboarding email").locator(".badge.succeeded")
    ).to_have_text("1 succeeded")
    tree.locator(".run-node[data-kind=branch] .node-body").click()
    expect(page.locator("#run-side")).to_contain_text("took the path Otherwise")
    tree.locator(".run-node", has_text="Finish onboarding email").scroll_into_view_if_needed()
    shot(page, "run")


# ---- a customer table whose people have a `full_name`, not a `name` (#21) -------------------------------

CUSTOMERS = """
CREATE TABLE app.customers (id bigserial PRIMARY KEY, email text, full_name text);
INSERT INTO app.customers (email, full_name) VALUES ('grace@example.com', 'Grace Hopper');
"""


def shot_fullname(page: Page, name: str, **options) -> None:
    assert document_width(page) <= LAPTOP["width"], f"{name}: the page is wider than the screen"
    page.screenshot(path=SCREENSHOTS / f"full-name-journey-{name}.png", **options)


def build_customer_welcome(page: Page) -> None:
    """Database trigger on app.customers → wait → branch on full_name → a welcome email whose subject
    says `item.name`, as a new user writes it first (the table has no `name`)."""
    nav(page, "Workflows")
    page.get_by_label("Name of the new workflow").fill("Welcome customers")
    page.get_by_role("button", name="New workflow").click()
    page.wait_for_url(re.compile(r"/workflows/\d+/$"), wait_until="load")
    with page.expect_response(lambda r: r.url.endswith("/steps/add/") and r.status == 200):
        page.get_by_role("button", name="Database trigger").click()
    idle(page)
    saved(page, lambda: page.fill("#step-name", "New customer"))
    saved(page, lambda: page.get_by_label("Schema").select_option("app"))
    saved(page, lambda: page.get_by_label("Table").select_option("customers"))
    add_wait_and_branch(page, "full_name")
    first_path = page.locator(".branch.path", has=page.locator("[data-path=p1]"))
    add_below(page, first_path.locator("summary").first, "send_email")
    saved(page, lambda: page.fill("#step-name", "Welcome email"))
    saved(page, lambda: page.fill("#f-subject", "Welcome, {{ item.name }}"))
    saved(page, lambda: page.fill("#f-text", "Glad you are here."))
    # "+ parallel path" (every path runs) is not the Branch step (one path runs): its own words.
    expect(page.locator(".add-menu summary", has_text="+ parallel path")).not_to_have_count(0)
    expect(page.locator(".add-menu summary", has_text="+ branch")).to_have_count(0)


def open_every_step(page: Page) -> None:
    """Click each node of the run: its items open beside the tree, never an error."""
    nodes = page.locator(".run-flow .run-node")
    for index in range(nodes.count()):
        node = nodes.nth(index)
        name = node.get_attribute("data-step-name") or ""
        with page.expect_response(lambda r: "step=" in r.url) as answer:
            node.locator(".node-body").click()
        assert answer.value.status == 200, f"step {index} ({name}) answered {answer.value.status}"
        idle(page)
        expect(page.locator("#run-side")).to_be_visible()
        expect(page.locator(".load-error")).to_have_count(0)


def run_the_draft_on_grace(page: Page, clock: Clock) -> None:
    page.get_by_role("link", name="Test", exact=True).click()
    rows = page.locator(".live-rows")
    # The live rows are a table of the table's columns, not JSON cut mid-word.
    expect(rows.locator("thead th")).to_have_text(["", "id", "email", "full_name"])
    rows.locator("tr", has_text="Grace Hopper").get_by_role("link", name="Use this row").click()
    page.get_by_role("button", name="Run the draft").click()
    page.wait_for_url(re.compile(r"/activity/runs/\d+/$"))
    work(clock)


def test_a_new_user_whose_customers_have_a_full_name_opens_every_run_and_step(
    live_server,
    page,
    app_db,
    smtp,  # noqa: F811 (a fixture)
    running_clock,
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(LAPTOP)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    app_db["roles"].append(ROLE)
    customer_execute(app_db["url"], CUSTOMERS)
    customer_execute(app_db["url"], f'ALTER TABLE app.customers OWNER TO "{app_db["roles"][0]}"')

    sign_up(page, live_server.url)
    connect_database(page, app_db)
    build_customer_welcome(page)
    shot_fullname(page, "builder")

    # First try: the subject names item.name, which these rows do not have. The run fails, and its page
    # opens on the failed step (it answered 500 before #21) with the reason in words.
    run_the_draft_on_grace(page, running_clock)
    expect(page.get_by_test_id("run-status")).to_have_text("Failed", timeout=30_000)
    side = page.locator("#run-side")
    expect(side).to_contain_text("Welcome email")
    expect(side.locator(".item-who")).to_have_text("grace@example.com")
    expect(side.locator(".exec-error")).to_contain_text("name")
    shot_fullname(page, "failed-run")
    failed_run_url = page.url
    open_every_step(page)
    branch = page.locator(".run-flow .run-node[data-kind=branch]")
    branch.locator(".node-body").click()
    idle(page)
    expect(page.locator("#run-side .took-path")).to_contain_text(
        "took the path Finished onboarding: full_name is true"
    )
    expect(page.locator(".path-label[data-path=p1] .path-count")).to_have_text("· 1")

    # The branch's preview says which path and why.
    page.get_by_role("link", name="back to testing").click()
    page.locator(".previews summary").click()
    page.locator(".previews .node[data-kind=branch] a").click()
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("branch-decision")).to_contain_text(
        "takes Finished onboarding: full_name is true"
    )
    shot_fullname(page, "branch-preview")

    # Fixed as the error says; every step's panel in the builder opens; the run succeeds.
    page.goto(failed_run_url)
    page.get_by_role("link", name="back to the builder").click()
    builder_nodes = page.locator("#builder-body .node .node-body")
    for index in range(builder_nodes.count()):
        with page.expect_response(lambda r: "/steps/" in r.url and r.request.method == "GET") as answer:
            builder_nodes.nth(index).click()
        assert answer.value.status == 200
        idle(page)
        expect(page.locator("#step-form[data-ready]")).to_have_count(1)
    page.locator(".node .node-body", has_text="Welcome email").click()
    idle(page)
    saved(page, lambda: page.fill("#f-subject", "Welcome, {{ item.full_name }}"))
    run_the_draft_on_grace(page, running_clock)
    expect(page.get_by_test_id("run-status")).to_have_text("Succeeded", timeout=30_000)
    expect(page.locator(".test-message")).to_contain_text("Welcome, Grace Hopper")
    open_every_step(page)
    shot_fullname(page, "run")
