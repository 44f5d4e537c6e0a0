"""A run's page: the workflow's tree with counts per step, the selected step's items beside it, retry
state in words, live polling, item paths."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from runs.models import Run, StepExecution
from runs.views.presenting import execution_state
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of


def page_of(client, run, **params):
    return client.get(reverse("runs:run_detail", args=[run.pk]), params)


def test_tree_shows_both_branches_with_items_errors_and_deliveries(owner_client, onboarding):
    run = make_run(onboarding, "signup-9", status=Run.Status.PARTIAL)
    steps = steps_of(onboarding)
    welcome = add_execution(run, steps["Welcome"], "0", output=[{"sent": True}], attempts=1)
    add_delivery(welcome, "ann@example.com")
    add_execution(
        run, steps["Tell the team"], "0", status="failed", attempts=10, error="SMTP 550: no such user"
    )
    page = page_of(owner_client, run)
    assert page.status_code == 200
    html = page.content.decode()
    roots = page.context["tree"]
    assert len(roots) == 1 and [b["steps"][0].name for b in roots[0]["branches"]] == [
        "Welcome",
        "Tell the team",
    ]
    # The failing step's items open by themselves; every node carries its counts.
    assert page.context["side"].step == steps["Tell the team"]
    assert "SMTP 550: no such user" in html and "1 failed" in html and "1 succeeded" in html
    assert 'hx-trigger="every' not in html  # finished: no polling
    welcome_page = page_of(owner_client, run, step=steps["Welcome"].pk).content.decode()
    assert "email to ann@example.com" in welcome_page
    assert "&quot;sent&quot;: true" in welcome_page  # output as JSON


def test_a_running_run_polls_and_the_partial_comes_back_only_when_something_changed(owner_client, onboarding):
    run = make_run(onboarding, "live", status=Run.Status.RUNNING)
    url = reverse("runs:run_detail", args=[run.pk])
    page = owner_client.get(url, {"status": "failed"})
    poll = page.context["poll_url"]
    assert f'hx-get="{poll.replace("&", "&amp;")}" hx-trigger="every 2s"' in page.content.decode()
    assert "status=failed" in poll and "seen=" in poll
    htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "run-live"}
    assert owner_client.get(poll, **htmx).status_code == 204  # nothing changed: htmx swaps nothing
    welcome = add_execution(run, steps_of(onboarding)["Welcome"], "0", status="running")
    changed = owner_client.get(poll, **htmx)
    body = changed.content.decode()
    assert changed.status_code == 200 and 'id="run-live"' in body and "<html" not in body
    StepExecution.objects.filter(pk=welcome.pk).update(status="failed", error="boom")
    assert owner_client.get(changed.context["poll_url"], **htmx).status_code == 200
    Run.objects.filter(pk=run.pk).update(status=Run.Status.PARTIAL)
    finished = owner_client.get(changed.context["poll_url"], **htmx)
    assert finished.status_code == 200 and "hx-trigger" not in finished.content.decode()  # polling stops


def test_retrying_execution_says_so_instead_of_looking_like_it_runs(onboarding):
    run = make_run(onboarding, "r", status=Run.Status.RUNNING)
    due = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
    execution = add_execution(
        run,
        steps_of(onboarding)["Welcome"],
        "0",
        status="pending",
        attempts=2,
        error="451 later",
        next_attempt_at=due,
    )
    now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    assert execution_state(execution, now) == "retrying, attempt 3 of 10, next at 14:05:00 (in 5 min)"
    execution.error, execution.attempts = "", 0
    assert execution_state(execution, now) == "waiting until 14:05:00"
    execution.status = StepExecution.Status.RUNNING
    assert execution_state(execution, now) == "running"


def test_status_and_item_filters_narrow_the_tree(owner_client, onboarding):
    run = make_run(onboarding, "fan", status=Run.Status.PARTIAL)
    welcome = steps_of(onboarding)["Welcome"]
    for n in range(5):
        add_execution(run, welcome, f"0/{n}", status="failed" if n == 3 else "succeeded")
    failed = page_of(owner_client, run, step=welcome.pk, status="failed").context["side"]
    assert [e.item_key for e in failed.executions] == ["0/3"]
    trigger = steps_of(onboarding)[""]
    one_item = page_of(owner_client, run, step=trigger.pk, item="0/2").context["side"]
    assert [e.item_key for e in one_item.executions] == ["0"]  # its ancestor, the trigger's item
    below = page_of(owner_client, run, step=welcome.pk, item="0/2").context["side"]
    assert [e.item_key for e in below.executions] == ["0/2"]


def test_a_big_fanout_is_paged_per_step_with_a_constant_number_of_queries(owner_client, onboarding):
    run = make_run(onboarding, "big", status=Run.Status.RUNNING)
    welcome = steps_of(onboarding)["Welcome"]
    StepExecution.objects.bulk_create(
        StepExecution(tenant_id=run.tenant_id, run=run, step=welcome, item_key=f"0/{n:04d}")
        for n in range(130)
    )
    with CaptureQueriesContext(connection) as first:
        page = page_of(owner_client, run, step=welcome.pk)
    node = page.context["side"]
    assert len(node.executions) == 50 and [(c.state, c.count) for c in node.chips] == [("pending", 130)]
    second = page_of(owner_client, run, step=welcome.pk, after=node.more_after).context["side"]
    assert second.executions[0].item_key == "0/0050"
    StepExecution.objects.bulk_create(
        StepExecution(tenant_id=run.tenant_id, run=run, step=welcome, item_key=f"1/{n:04d}")
        for n in range(300)
    )
    with CaptureQueriesContext(connection) as more:
        page_of(owner_client, run, step=welcome.pk)
    assert len(more) == len(first)
