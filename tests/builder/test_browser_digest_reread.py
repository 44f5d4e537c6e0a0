"""Headless Chromium at 1366×768 (#23): the digest's "read the rows again at release" option ticked and
saved with a condition; a run page whose digest left out deleted rows at release; the publish dialog
saying what a changed window does to open buckets. Screenshots: docs/screenshots/digest-reread-panel-1366.png,
digest-dropped-run-1366.png, digest-publish-note-1366.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from runs.engine import start_run
from tests.builder.conftest import htmx_idle, saved
from tests.builder.test_browser_errors import sign_in
from tests.engine.conftest import customer_db, data_source, settle, work
from tests.engine.test_digest_reread import COMMENTS, comment_digest, row
from tests.support import SCREENSHOTS
from workflows.models import Step
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREEN = {"width": 1366, "height": 768}


def test_the_digest_offers_to_read_the_rows_again_at_release(
    live_server, page, owner, tenant_a, tenant_database
):
    customer_db(tenant_database, COMMENTS)
    workflow = comment_digest(tenant_a, data_source(tenant_a, tenant_database))
    draft = get_or_create_draft(workflow)
    digest = draft.steps.get(kind="digest")
    page.set_viewport_size(SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={digest.pk}")
    htmx_idle(page)

    expect(page.locator("#f-reread")).to_be_visible()
    saved(page, lambda: page.locator("#f-reread").check())
    saved(page, lambda: page.locator("#f-still_matches").fill("row.status != 'hidden'"))
    digest.refresh_from_db()
    assert digest.config["reread"] is True and digest.config["still_matches"] == "row.status != 'hidden'"
    expect(page.locator(f"#node-summary-{digest.pk}")).to_contain_text("rows read again at release")
    page.locator("#f-still_matches").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "digest-reread-panel-1366.png")


def test_a_run_page_says_what_the_release_left_out(
    live_server, page, owner, tenant_a, tenant_database, monkeypatch
):
    from tests.engine.test_recovery import real_clock

    clock = real_clock(monkeypatch)  # the page and the engine on one clock: settle travels past the window
    customer_db(tenant_database, COMMENTS)
    workflow = comment_digest(tenant_a, data_source(tenant_a, tenant_database), reread=True)
    runs = [start_run(workflow, row(n), f"db:{n}") for n in range(1, 7)]
    work(clock)
    customer_db(tenant_database, "DELETE FROM comments WHERE id IN (2, 5)")
    settle(clock)
    page.set_viewport_size(SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/activity/runs/{runs[0].pk}/")
    bucket = page.get_by_test_id("digest-bucket")
    expect(bucket).to_contain_text("released at")
    expect(bucket).to_contain_text("with 4 items")
    expect(page.get_by_test_id("digest-dropped")).to_have_text("2 dropped at release: 2 row deleted.")
    page.screenshot(path=SCREENSHOTS / "digest-dropped-run-1366.png")


def test_the_publish_dialog_says_open_buckets_keep_their_window(
    live_server, page, owner, tenant_a, tenant_database
):
    from tests.engine.conftest import Clock

    clock = Clock()
    customer_db(tenant_database, COMMENTS)
    workflow = comment_digest(tenant_a, data_source(tenant_a, tenant_database))
    for n in range(1, 4):
        start_run(workflow, {**row(n), "post_id": n}, f"db:{n}")
    work(clock)
    draft = get_or_create_draft(workflow)
    digest: Step = draft.steps.get(kind="digest")
    digest.config = {**digest.config, "amount": 2}
    digest.save()
    page.set_viewport_size(SCREEN)
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/")
    htmx_idle(page)
    page.get_by_role("button", name="Publish…").click()
    note = page.get_by_test_id("digest-window-note")
    expect(note).to_contain_text("3 open buckets release under the settings they opened with")
    expect(note).to_contain_text("open new buckets (per post {{ item.post_id }}, 2 hours)")
    page.screenshot(path=SCREENSHOTS / "digest-publish-note-1366.png")
