"""The builder at 1366×768, after #21's merge: every count chip stays inside its node (at the fitted zoom
and zoomed in), the first change on a live workflow updates the node the page shows, and the Branch
step's panel says which path the sample item takes and why."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from runs.models import Run, StepExecution
from tests.builder.conftest import page, saved  # noqa: F401 (fixture)
from tests.builder.test_browser_canvas import SCREENSHOTS, onboarding, signed_in  # noqa: F401 (fixture)
from workflows.models import WorkflowVersion

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every status a node counts, with wide numbers: seven chips in one node of a six-step canvas.
WIDE = {
    "succeeded": 12345,
    "failed": 1234,
    "filtered": 987,
    "skipped": 654,
    "pending": 321,
    "running": 12,
    "cancelled": 7,
}


def seed_wide_counts(workflow) -> None:
    steps = {step.name: step for step in workflow.published_version.steps.all()}
    run = Run.objects.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        version=workflow.published_version,
        event_key="fan-out",
        status=Run.Status.RUNNING,
    )
    executions = [
        StepExecution(
            tenant_id=workflow.tenant_id, run=run, step=steps[name], item_key=f"{status}-{i}", status=status
        )
        for name in ("Welcome", "Onboarded?")
        for status, n in WIDE.items()
        for i in range(n)
    ]
    StepExecution.objects.bulk_create(executions, batch_size=5000)


def chips_inside_nodes(page) -> int:  # noqa: F811
    """Asserts every chip's box lies within its node's box; returns how many chips it checked."""
    boxes = page.evaluate(
        """() => [...document.querySelectorAll('.node .count, .node .node-warn > span')].map(chip => {
            const node = chip.closest('.node').getBoundingClientRect(), box = chip.getBoundingClientRect();
            return {chip: chip.textContent, node: [node.left, node.top, node.right, node.bottom],
                    box: [box.left, box.top, box.right, box.bottom]};
        })"""
    )
    for found in boxes:
        (left, top, right, bottom), (cl, ct, cr, cb) = found["node"], found["box"]
        assert cl >= left - 0.5 and cr <= right + 0.5 and ct >= top - 0.5 and cb <= bottom + 0.5, found
    return len(boxes)


def test_count_chips_stay_inside_their_nodes_on_the_builder_canvas(live_server, page, owner, onboarding):  # noqa: F811
    seed_wide_counts(onboarding)
    signed_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{onboarding.pk}/")
    welcome = page.locator(".node", has_text="Welcome")
    expect(welcome.locator(".node-counts .count")).to_have_count(len(WIDE))
    expect(welcome.locator('[data-status="succeeded"]')).to_have_text("12345 done")
    expect(page.locator("[data-zoom-level]")).to_contain_text("(fit)")
    assert chips_inside_nodes(page) == 2 * len(WIDE)
    page.screenshot(path=str(SCREENSHOTS / "builder-chips-fit.png"))
    for _ in range(3):
        page.get_by_role("button", name="Zoom in").click()
    assert chips_inside_nodes(page) == 2 * len(WIDE)
    page.locator(".node-body", has_text="Onboarded?").click()  # the panel narrows the canvas
    expect(page.locator("#panel h2")).to_contain_text("Branch")
    assert chips_inside_nodes(page) == 2 * len(WIDE)
    page.screenshot(path=str(SCREENSHOTS / "builder-chips-zoomed.png"))


def test_the_first_change_on_a_live_workflow_updates_its_node(live_server, page, owner, onboarding):  # noqa: F811
    signed_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{onboarding.pk}/")
    expect(page.locator("body")).to_contain_text("your first change starts a draft")
    page.locator(".node-body", has_text="Welcome").click()
    welcome = page.locator(".node", has_text="Welcome")
    saved(page, lambda: page.get_by_label("Subject").fill("Hello {{ item.name }}"))
    assert WorkflowVersion.objects.filter(workflow=onboarding, state=WorkflowVersion.State.DRAFT).exists()
    expect(welcome.locator(".node-summary")).to_have_text("“Hello Grace Hopper” to grace@example.com")
    saved(page, lambda: page.get_by_label("Name", exact=True).fill("Say hello"))
    expect(page.locator(".node-name", has_text="Say hello")).to_have_count(1)
    expect(page.locator(".node", has_text="Say hello").locator(".node-summary")).to_have_text(
        "“Hello Grace Hopper” to grace@example.com"
    )


def test_the_branch_panel_says_which_path_the_sample_takes(live_server, page, owner, onboarding):  # noqa: F811
    signed_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{onboarding.pk}/")
    page.locator(".node-body", has_text="Onboarded?").click()
    preview = page.locator("#step-preview")
    expect(preview).to_have_attribute("aria-label", "Preview with the sample item")
    expect(preview.locator("h3")).to_have_text("Which path the sample item takes")
    expect(preview.get_by_test_id("branch-decision")).to_contain_text("takes Not yet: onboarded is false")
    expect(page.locator("#panel")).not_to_contain_text("Email preview")
    preview.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "builder-branch-decision.png"))
