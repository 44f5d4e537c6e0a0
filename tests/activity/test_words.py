"""Words that agree (#21): a waiting run says until when and what comes next, not a running duration;
the builder's "+ parallel path" (every path runs) cannot be mistaken for the Branch step (one path runs),
and parallel paths are labelled so on both canvases; `skipped` means the same in README and code."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.urls import reverse

from runs.engine import start_run
from runs.models import StepExecution
from tests.engine.conftest import branch, build_workflow, email, on_path, webhook, work


def three_day_wait(tenant):
    wait = {
        "kind": "wait",
        "name": "Three days",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email(name="Follow-up")],
    }
    return build_workflow(tenant, webhook([wait, email(name="Welcome")]), name="Waits")


def test_a_waiting_run_says_until_when_and_the_next_step_without_a_running_duration(
    clock, tenant_a, owner_client
):
    run = start_run(three_day_wait(tenant_a), {"email": "ada@example.com"}, "e1")
    work(clock)
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk]))
    html = page.content.decode()
    due = page.context["waiting"]
    assert due is not None and re.fullmatch(r"Waiting until \w{3} \d\d \d\d:\d\d \(in 3 days\)", due["words"])
    assert f"{due['words']} at “Three days”, then “Follow-up”" in html
    assert ">Waiting</span>" in html and "Duration" not in html and "so far" not in html
    row = owner_client.get(reverse("runs:run_list")).context["rows"][0]
    assert row["state"] == due["words"]  # the list and the page say the same

    clock.travel(days=3, minutes=1)
    StepExecution.objects.filter(run=run).update(next_attempt_at=clock())
    running = owner_client.get(reverse("runs:run_detail", args=[run.pk]))
    assert running.context["waiting"] is None and "Duration" in running.content.decode()


def test_parallel_paths_are_named_so_and_branch_paths_by_their_labels(owner_client, tenant_a):
    paths = [{"id": "p1", "label": "Pro plan", "field": "plan", "operator": "equals", "value": "pro"}]
    spec = webhook(
        [
            email(name="Welcome"),
            {**branch(paths, otherwise=True, children=[on_path("p1", email(name="Pro"))]), "name": "Plan?"},
        ]
    )
    workflow = build_workflow(tenant_a, spec, publish_it=False)
    builder = owner_client.get(reverse("workflows:builder", args=[workflow.pk])).content.decode()
    assert "+ branch" not in builder and "+ parallel path" in builder
    assert "Add a parallel path (every path runs)" in builder
    # The trigger's two children are parallel paths; the Branch step's are its labelled paths.
    assert builder.count(">parallel path</div>") == 2
    assert 'data-path="p1">Pro plan</div>' in builder and 'data-path="otherwise">Otherwise</div>' in builder


def test_skipped_means_the_same_in_the_readme_and_the_code():
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    assert "execution succeeds" not in readme  # it is `skipped`, as the API reports
    states = readme[readme.index("Execution states, as the run page") :][:900]
    assert "*skipped* (the step did not do its work, on" in states and "suppressed, unsubscribed" in states
    assert StepExecution.Status.SKIPPED == "skipped"
