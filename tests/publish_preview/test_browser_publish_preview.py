"""Headless Chromium at 1366×768: the publish dialog previews the draft on the workflow's real events (the
preview's job runs while the dialog polls), shows the recipients lost and the sample email's diff, the
blast radius of the draft's fan-out query, and the runs waiting in "Wait 3 days" with a choice; publishing
with "move" moves them. Screenshots: docs/screenshots/publish-preview-diff-1366.png,
publish-preview-blast-1366.png, publish-preview-in-flight-1366.png."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from consent.models import Suppression, Topic, Unsubscribe
from runs.engine import start_runs
from runs.models import Run
from tests.builder.test_browser_errors import sign_in
from tests.engine.conftest import build_workflow, customer_db, data_source, email, query, webhook, work
from tests.publish_preview.conftest import insert_above
from tests.support import SCREENSHOTS
from workflows.models import PublishPreview, Step
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SMALL_SCREEN = {"width": 1366, "height": 768}
TEAM = "SELECT g AS id, 'member' || g || '@example.com' AS email, 'Member ' || g AS name FROM generate_series(1, {n}) g"
SIGNUPS = [
    {"email": "ada@example.com", "name": "Ada", "plan": "pro"},
    {"email": "bob@example.com", "name": "Bob", "plan": "free"},
    {"email": "cy@example.com", "name": "Cy", "plan": "pro"},
    {"email": "dee@example.com", "name": "Dee", "plan": "free"},
    {"email": "eve@example.com", "name": "Eve", "plan": "team"},
]


def signup_workflow(tenant, tenant_database):
    customer_db(tenant_database, "SELECT 1")
    source = data_source(tenant, tenant_database)
    tips = Topic.objects.create(tenant=tenant, name="Team news")
    team_mail = email(
        name="Tell the team", subject="{{ item.name }}, someone joined", allow_unsubscribe=True, topic=tips.pk
    )
    wait = {
        "kind": "wait",
        "name": "Wait 3 days",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [query(source, TEAM.format(n=20), children=[team_mail])],
    }
    welcome = email(
        name="Welcome", subject="Welcome, {{ item.name }}", text="Hi {{ item.name }},\nthanks for signing up."
    )
    workflow = build_workflow(tenant, webhook([welcome, wait]), name="Signups")
    Suppression.objects.bulk_create(
        Suppression(tenant=tenant, address=f"member{i}@example.com") for i in (3, 17, 22)
    )
    Unsubscribe.objects.bulk_create(
        Unsubscribe(tenant=tenant, address=f"member{i}@example.com", topic=tips) for i in (5, 24)
    )
    return workflow


def test_the_publish_dialog_previews_the_draft_and_moves_runs_in_flight(
    live_server, page, owner, tenant_a, tenant_database, smtp
):
    workflow = signup_workflow(tenant_a, tenant_database)
    start_runs(workflow, [(p, f"signup-{p['name']}") for p in SIGNUPS])
    work()  # the welcomes go out; every run now waits in "Wait 3 days"
    draft = get_or_create_draft(workflow)
    insert_above(
        workflow,
        "send_email",
        "condition",
        {"expression": "item.plan != 'free'"},
        name="Paying only",
        child_name="Welcome",
    )
    welcome = draft.steps.get(name="Welcome")
    Step.objects.filter(pk=welcome.pk).update(
        config={**welcome.config, "text": "Hi {{ item.name }},\nyour {{ item.plan }} plan is ready."}
    )
    team = draft.steps.get(kind="data_query")
    Step.objects.filter(pk=team.pk).update(config={**team.config, "sql": TEAM.format(n=26)})

    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/")
    page.locator("#publish-button").click()
    expect(page.locator("#preview-progress")).to_be_visible()
    expect(page.locator("#confirm-publish")).to_be_disabled()
    deadline = time.monotonic() + 20
    while not PublishPreview.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    work()  # the preview's job, as a worker would run it, while the dialog polls

    expect(page.locator(".send-diff").first).to_contain_text("2 recipients lost", timeout=30_000)
    expect(page.locator(".send-diff").first).to_contain_text("Stopped at “Paying only” in the draft.")
    expect(page.locator(".text-diff .diff-add").first).to_contain_text("plan is ready")
    expect(page.locator("#confirm-publish")).to_be_enabled()
    page.screenshot(path=SCREENSHOTS / "publish-preview-diff-1366.png")

    blast = page.locator("#blast-radius")
    expect(blast).to_contain_text("would email 21: 3 suppressed, 2 unsubscribed")
    blast.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "publish-preview-blast-1366.png")

    in_flight = page.locator(".in-flight")
    expect(in_flight).to_contain_text("5 runs waiting in “Wait 3 days”")
    in_flight.locator("input[value=move]").check()
    page.locator("#confirm-publish").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "publish-preview-in-flight-1366.png")

    page.locator("#confirm-publish").click()
    expect(page.locator(".flash-success, .messages")).to_contain_text("5 run(s) at “Wait 3 days”: move")
    workflow.refresh_from_db()
    assert workflow.published_version.number == 2
    assert set(Run.objects.filter(is_test=False).values_list("version_id", flat=True)) == {
        workflow.published_version_id
    }
    assert not Run.objects.filter(is_test=True).exists()
