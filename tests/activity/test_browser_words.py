"""Headless Chromium at 1366×768 (#21): a failed run whose items have no `name` opens, each of its steps
opens, and a step whose answer fails says "Could not load this step (error id …)" in place; a waiting
run says until when and what comes next, its chip inside its node, its parallel paths labelled.

Screenshots: docs/screenshots/run-page-no-name.png, run-page-load-error.png, run-page-waiting.png.
"""

from __future__ import annotations

import logging
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.engine import start_run
from runs.models import Run
from tests.activity.conftest import add_execution, steps_of
from tests.activity.test_browser_branch import LAPTOP, document_width, idle, signed_in_page
from tests.engine.conftest import build_workflow, email, webhook, work
from tests.support import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def failed_run_without_names(tenant) -> Run:
    workflow = build_workflow(tenant, webhook([email(name="Welcome"), email(name="Tell the team")]))
    steps = steps_of(workflow)
    customer = {"id": 7, "email": "grace@example.com", "full_name": "Grace Hopper"}
    run = Run.objects.create(
        tenant=tenant,
        workflow=workflow,
        version=workflow.published_version,
        event_key="signup-7",
        status=Run.Status.PARTIAL,
        payload=customer,
        label="Grace Hopper",
    )
    add_execution(run, steps[""], "0", input=customer, output=customer)
    add_execution(
        run,
        steps["Welcome"],
        "0",
        status="failed",
        input=customer,
        error="Subject: The item has no field “name”. Use a field the item has, or give it a default.",
    )
    for n, item in enumerate([{"id": 8}, {"full_name": "Ada ✓ Lovelace", "a.b": {"c": [1]}}, ["a", "list"]]):
        add_execution(run, steps["Tell the team"], f"0/{n}", status="failed", input=item, error="boom")
    return run


def test_a_failed_run_whose_items_have_no_name_opens_and_a_failing_step_says_so_in_place(
    live_server, owner, tenant_a, monkeypatch, caplog
):
    run = failed_run_without_names(tenant_a)
    with signed_in_page(live_server, owner, monkeypatch) as page:
        page.goto(f"{live_server.url}/activity/runs/{run.pk}/")
        expect(page.get_by_test_id("run-status")).to_have_text("Partially failed")
        side = page.locator("#run-side")
        expect(side).to_contain_text("Welcome")  # the first failed step's items open by themselves
        expect(side.locator(".item-who")).to_have_text("Grace Hopper")
        expect(side.locator(".exec-error")).to_contain_text("no field “name”")
        assert document_width(page) <= LAPTOP["width"]
        page.screenshot(path=SCREENSHOTS / "run-page-no-name.png")
        team = page.locator(".run-node", has_text="Tell the team")
        team.locator(".node-body").click()
        idle(page)
        expect(side.locator(".item-who")).to_have_text(["id: 8", "Ada ✓ Lovelace", "a list of 2"])

        # A bug on the server while opening a step: a short note where the items would go, not a page.
        def broken(*args, **kwargs):
            raise RuntimeError("side panel bug")

        monkeypatch.setattr("runs.views.run_detail.side_panel", broken)
        with caplog.at_level(logging.ERROR, logger="rowbell.errors"):
            page.locator(".run-node", has_text="Welcome").locator(".node-body").click()
            note = page.locator(".load-error")
            expect(note).to_have_text(re.compile(r"^Could not load this step \(error id [0-9a-f]{8}\)\."))
        error_id = re.search(r"error id ([0-9a-f]{8})", note.text_content()).group(1)
        assert any(error_id in record.getMessage() for record in caplog.records)
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"Run #{run.pk}")  # still the run page
        expect(page.locator("body")).not_to_contain_text("Something went wrong on our side")
        page.screenshot(path=SCREENSHOTS / "run-page-load-error.png")


def test_a_waiting_run_says_until_when_and_next_with_its_chip_inside_the_node(
    live_server, owner, tenant_a, monkeypatch, clock, smtp
):
    clock.now = timezone.now()
    wait = {
        "kind": "wait",
        "name": "Three days",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email(name="Follow-up")],
    }
    welcome = email(name="Welcome", subject="Hi {{ item.full_name }}", text="Welcome aboard")
    workflow = build_workflow(tenant_a, webhook([wait, welcome]), name="Waits")
    run = start_run(workflow, {"email": "ada@example.com", "full_name": "Ada Lovelace"}, "e1")
    work(clock)
    with signed_in_page(live_server, owner, monkeypatch) as page:
        page.goto(f"{live_server.url}/activity/runs/{run.pk}/")
        expect(page.get_by_test_id("run-status")).to_have_text("Waiting")
        waiting = page.get_by_test_id("run-waiting")
        expect(waiting).to_have_text(
            re.compile(
                r"^Waiting until \w{3} \d\d \d\d:\d\d \(in 3 days\) at “Three days”, then “Follow-up”$"
            )
        )
        expect(page.locator(".run-head")).not_to_contain_text("Duration")
        # The two children of the trigger are parallel paths, and say so.
        expect(page.locator(".run-flow .parallel-label")).to_have_count(2)
        node = page.locator(".run-node[data-kind=wait] .node-body")
        chip = page.locator(".run-node[data-kind=wait] .badge.waiting")
        expect(chip).to_contain_text("waiting until")
        outer, inner = node.bounding_box(), chip.bounding_box()
        assert inner["x"] >= outer["x"] and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        assert inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
        page.screenshot(path=SCREENSHOTS / "run-page-waiting.png")
