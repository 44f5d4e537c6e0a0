"""Headless Chromium at 1366×768: the digest's panel shows the fields of the chosen window (fixed, then
sliding with its maximum) and the "send the first at once" tick box, and a run page says which digest
the run's item joined, with its items so far, the first items and the release time. Screenshots: docs/screenshots/digest-panel-1366.png,
digest-sliding-1366.png, digest-first-at-once-1366.png, digest-run-1366.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from runs.engine import start_run
from tests.builder.conftest import htmx_idle
from tests.builder.test_browser_errors import sign_in
from tests.engine.conftest import build_workflow, email, webhook, work
from tests.support import SCREENSHOTS
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SMALL_SCREEN = {"width": 1366, "height": 768}


def test_the_digest_panel_shows_the_fields_of_the_chosen_window(live_server, page, owner, tenant_a):
    workflow = Workflow.objects.create(tenant=tenant_a, name="Comment digest")
    draft = get_or_create_draft(workflow)
    trigger = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        kind="webhook_trigger",
        name="New comment",
        config={"sample": {"email": "ada@example.com", "post_id": 42, "name": "Nice post"}},
    )
    digest = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        parent=trigger,
        kind="digest",
        name="Comments per post",
        config={"key": "post {{ item.post_id }}", "window": "fixed", "amount": 1, "unit": "hours"},
    )
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={digest.pk}")
    htmx_idle(page)

    for field in ("#f-key", "#f-window", "#f-amount", "#f-unit", "#f-release_at_count"):
        expect(page.locator(field)).to_be_visible()
    for hidden in ("#f-max_amount", "#f-at", "#f-timezone"):
        expect(page.locator(hidden)).to_have_count(0)
    expect(page.locator(f"#node-summary-{digest.pk}")).to_have_text("per post 42, 1 hour")
    page.screenshot(path=SCREENSHOTS / "digest-panel-1366.png")

    page.locator("#f-window").select_option("sliding")
    htmx_idle(page)
    expect(page.locator("#f-max_amount")).to_be_visible()
    expect(page.locator("#f-max_unit")).to_be_visible()
    page.locator("#f-max_amount").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "digest-sliding-1366.png")

    flag = page.locator("#f-first_at_once")
    flag.scroll_into_view_if_needed()
    expect(flag).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/save/") and r.status == 200):
        flag.check()
    htmx_idle(page)
    expect(page.locator(f"#node-summary-{digest.pk}")).to_contain_text("first at once")
    page.locator("#f-first_at_once").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "digest-first-at-once-1366.png")


def test_a_run_page_says_which_digest_its_item_joined(live_server, page, owner, tenant_a):
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "digest",
                    "name": "Comments per post",
                    "config": {
                        "key": "post {{ item.post }}",
                        "window": "fixed",
                        "amount": 1,
                        "unit": "hours",
                    },
                    "children": [
                        email(to="{{ item.digest.first.email }}", subject="{{ item.digest.count }} new")
                    ],
                }
            ]
        ),
        name="Comment digest",
    )
    runs = [
        start_run(workflow, {"email": "ada@example.com", "post": 42, "name": f"Comment number {n}"}, f"c{n}")
        for n in range(5)
    ]
    work()
    page.set_viewport_size(SMALL_SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/activity/runs/{runs[3].pk}/")
    bucket = page.get_by_test_id("digest-bucket")
    expect(bucket).to_contain_text(
        f"Joined the digest of run #{runs[0].pk} for post 42 (“Comments per post”): 5 items so far, releases at"
    )
    expect(page.get_by_test_id("run-status")).to_have_text("In a digest")
    expect(page.get_by_test_id("run-in-digest")).to_contain_text(
        f"Its item joined the digest of run #{runs[0].pk}"
    )
    bucket.locator("summary").click()
    expect(bucket.locator("li")).to_have_count(3)
    expect(bucket).to_contain_text("Comment number 0")
    box = bucket.bounding_box()
    assert box is not None and box["x"] + box["width"] <= SMALL_SCREEN["width"]  # no sideways scroll
    page.screenshot(path=SCREENSHOTS / "digest-run-1366.png")
