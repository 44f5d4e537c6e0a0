"""The builder's canvas at 1366×768: a six-step workflow with a branch fits (zoom to fit, zoom controls),
nodes speak with the sample item, and each node carries what it did across recent live runs, with the
table behind those counts."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from runs.models import Run, StepExecution
from tests.activity.conftest import add_execution
from tests.builder.conftest import page, saved  # noqa: F401 (fixture)
from tests.engine.conftest import branch, build_workflow, email, on_path
from tests.support import SCREENSHOTS
from workflows.models import WorkflowVersion
from workflows.publishing import get_or_create_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAMPLE = {"email": "grace@example.com", "name": "Grace Hopper", "company": "Acme", "onboarded": False}


@pytest.fixture
def onboarding(tenant_a):
    """Published: webhook → Welcome email → wait 3 days → branch [Onboarded: Tips email | Not yet: Nudge
    email, then a Slack-free HTTP call to the team]: six steps with a branch."""
    spec = {
        "kind": "webhook_trigger",
        "config": {"sample": SAMPLE},
        "children": [
            email(
                name="Welcome",
                subject="Welcome to {{ item.company }}, {{ item.name }}",
                children=[
                    {
                        "kind": "wait",
                        "name": "Three days",
                        "config": {"mode": "duration", "amount": 3, "unit": "days"},
                        "children": [
                            named(
                                "Onboarded?",
                                [
                                    {
                                        "id": "done",
                                        "label": "Onboarded",
                                        "field": "onboarded",
                                        "operator": "is_true",
                                    },
                                    {
                                        "id": "not",
                                        "label": "Not yet",
                                        "field": "onboarded",
                                        "operator": "is_false",
                                    },
                                ],
                                children=[
                                    on_path(
                                        "done", email(name="Tips", subject="Tips for {{ item.nickname }}")
                                    ),
                                    on_path(
                                        "not", email(name="Nudge", subject="{{ item.name }}, finish setup")
                                    ),
                                ],
                            )
                        ],
                    }
                ],
            )
        ],
    }
    return build_workflow(tenant_a, spec, name="Onboarding")


def named(name: str, paths: list[dict], children: list[dict]) -> dict:
    return {**branch(paths, children=children), "name": name}


def signed_in(page, live_server, user):  # noqa: F811 (the fixture's page)
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page.set_viewport_size({"width": 1366, "height": 768})
    return page


def seed_runs(workflow) -> dict[str, dict[str, int]]:
    """Live runs of the last days through the published steps; returns {step name: {status: n}}."""
    steps = {step.name or "trigger": step for step in workflow.published_version.steps.all()}
    plan = {
        "trigger": {"succeeded": 12},
        "Welcome": {"succeeded": 11, "failed": 1},
        "Three days": {"succeeded": 7, "pending": 4},
        "Nudge": {"succeeded": 5, "failed": 2},
    }
    for n in range(12):
        run = Run.objects.create(
            tenant_id=workflow.tenant_id,
            workflow=workflow,
            version=workflow.published_version,
            event_key=f"e{n}",
            status=Run.Status.SUCCEEDED,
        )
        for name, counts in plan.items():
            statuses = [status for status, k in counts.items() for _ in range(k)]
            if n < len(statuses):
                add_execution(run, steps[name], "0", status=statuses[n])
    test_run = Run.objects.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        version=workflow.published_version,
        event_key="test",
        is_test=True,
    )
    add_execution(test_run, steps["Welcome"], "0", status=StepExecution.Status.FAILED)  # not counted
    return plan


def test_a_six_step_workflow_with_a_branch_fits_1366x768_and_zooms(live_server, page, owner, onboarding):  # noqa: F811
    signed_in(page, live_server, owner)
    versions = WorkflowVersion.objects.count()
    page.goto(f"{live_server.url}/workflows/{onboarding.pk}/")
    expect(page.locator(".node")).to_have_count(6)
    flow = page.locator("[data-canvas] .flow")
    expect(page.locator("[data-zoom-level]")).to_contain_text("(fit)")  # builder.js has fitted it
    # Every node is inside the window, without scrolling.
    for box in (page.locator(".node").nth(i).bounding_box() for i in range(6)):
        assert box is not None
        assert box["y"] >= 0 and box["y"] + box["height"] <= 768, box
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1366, box
    page.screenshot(path=str(SCREENSHOTS / "builder-fit.png"))
    fitted = float(flow.get_attribute("data-scale"))
    assert 0.4 <= fitted <= 1

    page.get_by_role("button", name="Zoom in").click()
    zoomed = float(flow.get_attribute("data-scale"))
    assert zoomed > fitted
    expect(page.locator("[data-zoom-level]")).to_have_text(f"{round(zoomed * 100)}%")
    # The zoom stays when htmx redraws the builder (opening a step).
    page.locator(".node-body", has_text="Nudge").click()
    expect(page.locator("#panel h2")).to_contain_text("Send email")
    expect(page.locator(".node.selected")).to_contain_text("Nudge")
    expect(flow).to_have_attribute("data-scale", f"{zoomed:.2f}")
    page.get_by_role("button", name="Zoom out").click()
    page.get_by_role("button", name="Zoom out").click()
    assert float(flow.get_attribute("data-scale")) < zoomed
    page.get_by_role("button", name="Fit").click()
    assert float(flow.get_attribute("data-scale")) == fitted
    assert WorkflowVersion.objects.count() == versions  # opening and clicking around wrote no draft


def test_nodes_speak_with_the_sample_item_and_fall_back_to_the_template(live_server, page, owner, onboarding):  # noqa: F811
    signed_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{onboarding.pk}/")
    welcome = page.locator(".node", has_text="Welcome").locator(".node-summary")
    expect(welcome).to_have_text("“Welcome to Acme, Grace Hopper” to grace@example.com")
    expect(page.locator(".node", has_text="Nudge").locator(".node-summary")).to_have_text(
        "“Grace Hopper, finish setup” to grace@example.com"
    )
    # The sample has no nickname: that summary stays as written rather than failing the page.
    expect(page.locator(".node", has_text="Tips").locator(".node-summary")).to_have_text(
        "“Tips for {{ item.nickname }}” to {{ item.email }}"
    )


def test_nodes_count_what_each_step_did_in_recent_runs(live_server, page, owner, onboarding):  # noqa: F811
    plan = seed_runs(onboarding)
    signed_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{onboarding.pk}/")
    words = {"succeeded": "done", "failed": "failed", "pending": "waiting"}
    table = page.locator("#recent-counts")
    table.locator("summary").click()
    for name, counts in plan.items():
        node = page.locator(".node", has_text=name if name != "trigger" else "Webhook").first
        for status, n in counts.items():
            expect(node.locator(f'.node-counts [data-status="{status}"]')).to_have_text(
                f"{n} {words[status]}"
            )
        expect(node.locator(".node-counts .count")).to_have_count(len(counts))
        row = table.locator(
            "tbody tr", has=page.locator("th", has_text=name if name != "trigger" else "Webhook")
        )
        for status in ("succeeded", "failed", "pending"):
            expect(row.locator(f'td[data-status="{status}"]')).to_have_text(str(counts.get(status, "")))
    # Steps no run reached carry no counts, and no row.
    expect(page.locator(".node", has_text="Tips").locator(".node-counts")).to_have_count(0)
    expect(table.locator("tbody tr")).to_have_count(len(plan))
    page.screenshot(path=str(SCREENSHOTS / "builder-node-counts.png"))


def test_a_saved_summary_is_spoken_too(live_server, page, owner, onboarding):  # noqa: F811
    draft = get_or_create_draft(onboarding)  # editing an existing draft: the page names its steps
    welcome = draft.steps.get(name="Welcome")
    signed_in(page, live_server, owner)
    page.goto(f"{live_server.url}/workflows/{onboarding.pk}/?step={welcome.pk}")
    subject = page.get_by_label("Subject")
    saved(page, lambda: subject.fill("Hi {{ item.name }} from {{ item.company }}"))
    expect(page.locator(f"#node-summary-{welcome.pk}")).to_have_text(
        "“Hi Grace Hopper from Acme” to grace@example.com"
    )
    saved(page, lambda: subject.fill("Hi {{ item.missing }}"))
    expect(page.locator(f"#node-summary-{welcome.pk}")).to_have_text(
        "“Hi {{ item.missing }}” to {{ item.email }}"
    )
