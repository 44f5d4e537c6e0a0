"""Headless Chromium against the live server, with a real RQ worker process and a real SMTP server:
test-run the onboarding draft on a live row and watch it happen; release held sandbox messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from playwright.sync_api import expect, sync_playwright

from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tests.activity.conftest import build_workflow, email, webhook
from tests.support import launch_chromium, subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(redis_conn, smtp, tmp_path):
    """`manage.py rqworker` as its own process on the test database, sending to the test's SMTP server."""
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(settings.EMAIL_PORT),
        # The HTTP step calls the test's local server: allowed only when the test allowed it (httpserver).
        "OUTBOUND_ALLOWED_NETWORKS": ",".join(settings.OUTBOUND_ALLOWED_NETWORKS),
    }
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (closed below, after the process ends)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "default", "low", "--with-scheduler"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield process
    # The worker, its work horses and its scheduler share the new session's process group.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    log.close()


@pytest.fixture
def browser_page(live_server, owner, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes meanwhile are
    # ordinary blocking calls, so Django's async-context guard does not apply.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The live server answers each request on a new thread; with persistent connections (CONN_MAX_AGE)
    # those threads' sessions outlive them and block dropping the test database.
    monkeypatch.setitem(connections.databases["default"], "CONN_MAX_AGE", 0)
    client = Client()
    client.force_login(owner)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    with sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context()
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        browser.close()
        # Inside Playwright's event loop the ORM works on context-local connections of its own; close them
        # here, or they outlive the test and block dropping the test database.
        connections.close_all()


def test_test_run_of_the_onboarding_draft_on_a_live_row(
    live_server, browser_page, worker, smtp, onboarding_draft
):
    page = browser_page
    page.goto(f"{live_server.url}/workflows/{onboarding_draft.pk}/test/")
    nia = page.locator(".live-rows tr", has_text="nia@example.com")
    nia.get_by_role("link", name="Use this row").click()
    expect(page.locator("textarea[name=item]")).to_contain_text('"email": "nia@example.com"')
    expect(page.get_by_label("Skip waits")).to_be_checked()
    page.get_by_role("button", name="Run the draft").click()

    # The run page refreshes itself until the run is over: no reload from here on.
    expect(page.get_by_test_id("run-status")).to_have_text("Partially failed", timeout=40_000)
    # The failing step's items open by themselves beside the tree.
    side = page.locator("#run-side")
    expect(side.locator("h2")).to_contain_text("Tell the team")
    expect(side.locator("li.execution.failed .exec-error")).to_contain_text("company")
    # What the test run captured is listed under the tree.
    welcome = page.locator(".test-message", has_text="Welcome Nia")
    welcome.locator("summary").first.click()
    expect(welcome.locator(".subject").first).to_have_text("Welcome Nia")
    expect(welcome.frame_locator("iframe.email-html").first.locator("h1")).to_have_text("Hi Nia")
    # Both branches below the trigger ran; the wait was skipped and the nudge went (captured) too.
    expect(page.locator(".run-node[data-kind=wait] .badge.skipped")).to_have_text("1 skipped")
    expect(page.locator(".test-message", has_text="Finish onboarding")).to_have_count(1)
    page.locator('.run-node[data-step-name="Add to CRM"] .node-body').click()
    expect(side.locator("h2")).to_contain_text("Add to CRM")
    expect(side.locator("li.execution.succeeded")).to_have_count(1)
    side.locator("li.execution details.output summary").click()
    expect(side.locator("li.execution details.output pre")).to_contain_text("nia@example.com")
    assert smtp.messages == []
    run = Run.objects.get()
    assert run.is_test and set(Delivery.objects.values_list("status", flat=True)) == {"captured"}
    assert not StepExecution.objects.filter(run=run, status__in=StepExecution.OPEN).exists()


def test_release_all_held_messages_from_the_messages_page(live_server, browser_page, worker, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]), name="Sandboxed", sandbox=True)
    for n in range(3):
        start_run(workflow, {"email": f"p{n}@example.com", "name": f"P{n}"}, f"evt-{n}")
    page = browser_page
    page.goto(f"{live_server.url}/activity/messages/?status=held")
    for _ in range(60):  # until the worker has held all three
        page.reload()
        if page.locator("tr.message.held").count() == 3:
            break
        page.wait_for_timeout(500)
    expect(page.locator("tr.message.held")).to_have_count(3)
    page.get_by_role("button", name="Release all held").click()
    expect(page.get_by_text("Released and sent 3 messages.")).to_be_visible()
    assert sorted(smtp.recipients()) == ["p0@example.com", "p1@example.com", "p2@example.com"]
