"""The branch decides visibly (#21): its preview says which path an item takes and why; the run page
counts the items on each path's label and says, per item, which path it took and why."""

from __future__ import annotations

import json
import re

from django.urls import reverse

from runs.engine import start_runs
from tests.activity.conftest import steps_of
from tests.engine.conftest import branch, build_workflow, email, on_path, webhook, work

PATHS = [
    {"id": "p1", "label": "Not onboarded yet", "field": "onboarded_now", "operator": "is_empty"},
    {"id": "p2", "label": "Pro plan", "expression": "item.plan == 'pro'"},
]


def onboarding(tenant):
    chooser = branch(
        PATHS,
        otherwise=True,
        children=[on_path("p1", email(name="Nudge")), on_path("otherwise", email(name="Tips"))],
    )
    return build_workflow(tenant, webhook([{**chooser, "name": "Where next?"}]), name="Branchy")


def preview(client, step, item) -> str:
    page = client.get(reverse("runs:step_preview", args=[step.pk]), {"item": json.dumps(item)})
    assert page.status_code == 200
    return " ".join(page.content.decode().split())


def test_the_branch_preview_says_which_path_and_why(owner_client, tenant_a):
    step = steps_of(onboarding(tenant_a))["Where next?"]
    said = preview(owner_client, step, {"email": "a@x.org", "onboarded_now": None, "plan": "pro"})
    assert "The item <strong>takes Not onboarded yet: onboarded_now is empty</strong>" in said
    said = preview(owner_client, step, {"email": "a@x.org", "onboarded_now": "2026-01-01", "plan": "pro"})
    assert "takes Pro plan: item.plan == &#x27;pro&#x27; holds" in said
    said = preview(owner_client, step, {"email": "a@x.org", "onboarded_now": "yes", "plan": "free"})
    assert "takes Otherwise: onboarded_now is not empty; not item.plan == &#x27;pro&#x27;" in said
    said = preview(owner_client, step, {"onboarded_now": "yes"})  # no `plan`: the expression cannot tell
    assert "No path can be chosen: Branch, path “Pro plan”" in said


def test_the_run_page_counts_items_per_path_and_says_which_path_each_took(clock, owner_client, tenant_a):
    workflow = onboarding(tenant_a)
    events = [
        ({"email": f"n{i}@x.org", "onboarded_now": None, "plan": "free"}, f"n{i}") for i in range(3)
    ] + [({"email": "t@x.org", "onboarded_now": "2026-01-01", "plan": "free"}, "t")]
    runs = start_runs(workflow, events)
    work(clock)
    chooser = steps_of(workflow)["Where next?"]
    expected_paths = ["Not onboarded yet · 1"] * 3 + ["Otherwise · 1"]
    for run, expected in zip(runs, expected_paths, strict=True):
        page = owner_client.get(reverse("runs:run_detail", args=[run.pk]), {"step": chooser.pk})
        html = " ".join(page.content.decode().split())
        labels = re.findall(
            r'class="path-label" data-path="\w+">([^<]*)<span class="path-count"[^>]*>· (\d+)', html
        )
        counts = {label.strip(): int(n) for label, n in labels}
        name, n = expected.split(" · ")
        assert counts[name] == int(n) and sum(counts.values()) == 1, counts
        assert "Pro plan" in counts and counts["Pro plan"] == 0  # a path nobody took says 0
    last = owner_client.get(reverse("runs:run_detail", args=[runs[-1].pk]), {"step": chooser.pk})
    assert "took the path <strong>Otherwise</strong>: onboarded_now is not empty; not item.plan" in " ".join(
        last.content.decode().split()
    )


def test_a_fanned_out_run_counts_every_item_on_its_path(owner_client, tenant_a):
    """Many items through one branch in one run (a query's rows): the counts add up per path."""
    from tests.activity.conftest import add_execution, make_run

    workflow = onboarding(tenant_a)
    run = make_run(workflow, "fan")
    chooser = steps_of(workflow)["Where next?"]
    for n in range(5):
        label = "Not onboarded yet" if n < 3 else "Otherwise"
        add_execution(run, chooser, f"0/{n}", output={"path": label, "why": "…"})
    add_execution(run, chooser, "0/9", status="filtered", output={"path": None, "reason": "none"})
    tree = owner_client.get(reverse("runs:run_detail", args=[run.pk])).context["tree"]
    branches = tree[0]["branches"]
    assert [(b["label"], b["count"]) for b in branches] == [
        ("Not onboarded yet", 3),
        ("Pro plan", 0),
        ("Otherwise", 2),
    ]


def branchy_with_sample(tenant, sample):
    chooser = branch(
        PATHS,
        otherwise=True,
        children=[on_path("p1", email(name="Nudge")), on_path("otherwise", email(name="Tips"))],
    )
    trigger = {**webhook([{**chooser, "name": "Where next?"}]), "config": {"sample": sample}}
    return build_workflow(tenant, trigger, name="Branchy")


def test_the_builder_panel_says_which_path_the_sample_item_takes_and_why(owner_client, tenant_a):
    # A blank value is the decision itself here: the panel must not turn it into a ‹placeholder›.
    workflow = branchy_with_sample(tenant_a, {"email": "a@x.org", "onboarded_now": "", "plan": "pro"})
    step = steps_of(workflow)["Where next?"]
    page = owner_client.get(reverse("workflows:step_panel", args=[workflow.pk, step.pk]))
    said = " ".join(page.content.decode().split())
    assert "Which path the sample item takes" in said
    assert "The item <strong>takes Not onboarded yet: onboarded_now is empty</strong>" in said
    assert "Email preview" not in said
    # Another sample, another path.
    workflow = branchy_with_sample(tenant_a, {"email": "a@x.org", "onboarded_now": "yes", "plan": "free"})
    step = steps_of(workflow)["Where next?"]
    panel = owner_client.get(reverse("workflows:step_panel", args=[workflow.pk, step.pk]))
    assert "takes Otherwise: onboarded_now is not empty" in " ".join(panel.content.decode().split())


def test_the_builder_panel_says_when_no_path_can_be_chosen(owner_client, tenant_a):
    workflow = branchy_with_sample(tenant_a, {"onboarded_now": "yes"})  # no `plan` for the expression
    step = steps_of(workflow)["Where next?"]
    page = owner_client.get(reverse("workflows:step_panel", args=[workflow.pk, step.pk]))
    assert "No path can be chosen: Branch, path “Pro plan”" in page.content.decode()


def test_the_email_panel_preview_is_not_called_an_email_preview_elsewhere(owner_client, tenant_a):
    workflow = branchy_with_sample(tenant_a, {"email": "a@x.org", "onboarded_now": "", "plan": "pro"})
    for name in ("Nudge", "Where next?", ""):
        step = steps_of(workflow)[name]
        body = owner_client.get(reverse("workflows:step_panel", args=[workflow.pk, step.pk])).content.decode()
        assert "Email preview" not in body
        assert ('id="step-preview"' in body) == (name != "")
