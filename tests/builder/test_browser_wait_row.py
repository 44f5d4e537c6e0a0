"""Headless Chromium at 1366×768: the wait "until a row matches" in the builder (its fields, its two
paths on the canvas), the database trigger's "cancel when the row becomes …" fields, and the run page
of a run cancelled from its row's state.

Screenshots: docs/screenshots/wait-row-1366.png, trigger-cancel-from-row-1366.png,
run-cancelled-from-row-1366.png.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.models import DataSource
from runs.engine import cancel_by_key, start_run
from runs.models import CancelTombstone
from tests.builder.conftest import htmx_idle, saved
from tests.builder.test_browser_errors import sign_in
from tests.engine.conftest import build_workflow, clock, email, smtp, work  # noqa: F401 (fixtures)
from tests.support import SCREENSHOTS
from workflows.models import Step, Workflow
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_wait_until_a_row_matches_shows_its_fields_and_two_paths(
    live_server, page, owner, tenant_a, tenant_database
):
    source = DataSource.objects.create(tenant=tenant_a, name="Shop DB", connection_url=tenant_database)
    workflow = Workflow.objects.create(tenant=tenant_a, name="Payment reminder")
    draft = get_or_create_draft(workflow)
    trigger = Step.objects.create(tenant=tenant_a, version=draft, kind="webhook_trigger", name="Order placed")
    wait = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        parent=trigger,
        kind="wait",
        name="Until paid",
        config={"mode": "duration", "amount": 1, "unit": "days"},
    )
    thanks = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        parent=wait,
        kind="condition",
        name="Thank them",
        config={"expression": "item.email != ''"},
    )
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={wait.pk}")
    htmx_idle(page)

    saved(page, lambda: page.locator("#f-mode").select_option("row"))
    for field in ("#f-datasource", "#f-table", "#f-key", "#f-condition", "#f-timeout_amount"):
        expect(page.locator(field)).to_be_visible()
    expect(page.locator("#f-amount")).to_have_count(0)
    expect(page.locator("#f-reread")).to_have_count(0)
    saved(page, lambda: page.locator("#f-datasource").select_option(str(source.pk)))
    saved(page, lambda: page.locator("#f-table").fill("orders"))
    saved(page, lambda: page.locator("#f-key").fill("{{ item.order_id }}"))
    saved(page, lambda: page.locator("#f-condition").fill("row.status == 'paid'"))
    wait.refresh_from_db()
    assert wait.config == {
        "mode": "row",
        "datasource": source.pk,
        "table": "orders",
        "key": "{{ item.order_id }}",
        "condition": "row.status == 'paid'",
        "timeout_amount": 3,
        "timeout_unit": "days",
    }
    expect(page.locator(f"#node-summary-{wait.pk}")).to_have_text(
        "until row.status == 'paid' in orders, at most 3 days"
    )
    canvas = page.locator(".canvas")
    expect(canvas.locator(f"div.path-name-{wait.pk}-met")).to_have_text("Row matched")
    expect(canvas.locator(f"div.path-name-{wait.pk}-timed_out")).to_have_text("Timed out")
    thanks.refresh_from_db()
    assert thanks.path == "met"  # the wait's child went onto its first path
    page.screenshot(path=SCREENSHOTS / "wait-row-1366.png")


def test_the_database_trigger_offers_to_cancel_from_the_rows_state(
    live_server, page, owner, tenant_a, tenant_database
):
    source = DataSource.objects.create(tenant=tenant_a, name="Shop DB", connection_url=tenant_database)
    workflow = Workflow.objects.create(tenant=tenant_a, name="Order follow-up")
    draft = get_or_create_draft(workflow)
    trigger = Step.objects.create(
        tenant=tenant_a,
        version=draft,
        kind="database_trigger",
        name="New order",
        config={"datasource": source.pk, "schema": "public", "table": "orders", "operations": ["insert"]},
    )
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{workflow.pk}/?step={trigger.pk}")
    htmx_idle(page)

    saved(page, lambda: page.locator("#f-cancel_key").fill("order:{{ item.id }}"))
    saved(page, lambda: page.locator("#f-cancel_when_column").fill("status"))
    saved(page, lambda: page.locator("#f-cancel_when_value").fill("cancelled"))
    saved(page, lambda: page.locator("#f-cancel_when_deleted").check())
    trigger.refresh_from_db()
    assert (
        trigger.config["cancel_when_column"],
        trigger.config["cancel_when_value"],
        trigger.config["cancel_when_deleted"],
    ) == ("status", "cancelled", True)
    page.locator("#f-cancel_when_deleted").scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "trigger-cancel-from-row-1366.png")


def test_a_run_cancelled_from_its_rows_state_says_so_on_its_page(
    live_server,
    page,
    owner,
    clock,  # noqa: F811 (the engine's fixture)
    smtp,  # noqa: F811
    tenant_a,
):
    clock.now = timezone.now()
    spec = {
        "kind": "webhook_trigger",
        "config": {"cancel_key": "order:{{ item.order_id }}"},
        "children": [
            {
                "kind": "wait",
                "config": {"mode": "duration", "amount": 2, "unit": "days"},
                "children": [email(subject="Your order", text="Still open?")],
            }
        ],
    }
    workflow = build_workflow(tenant_a, spec, name="Order follow-up")
    run = start_run(workflow, {"order_id": 42, "email": "ada@example.com", "name": "Ada"}, "order-42")
    work(clock)
    clock.travel(minutes=3)  # the row's status became `cancelled`: the listener writes this
    cancel_by_key(
        workflow, "order:42", source=CancelTombstone.Source.ROW, by="a change of orders (status → cancelled)"
    )

    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in(page, live_server, owner)
    page.goto(f"{live_server.url}/activity/runs/{run.pk}/")
    expect(page.get_by_test_id("run-status")).to_have_text("Cancelled")
    expect(page.get_by_test_id("key-cancel")).to_contain_text("Cancelled by key order:42 via The row's state")
    page.screenshot(path=SCREENSHOTS / "run-cancelled-from-row-1366.png", full_page=True)
