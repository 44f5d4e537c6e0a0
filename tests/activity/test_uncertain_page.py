"""The run page and the activity list with an uncertain message: its own colour and count, the resolve
buttons (only for those who may send live), a resend that needs its confirmation, and attempt history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from runs.models import Delivery, Run, StepExecution
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of


@pytest.fixture
def uncertain(onboarding):
    run = make_run(onboarding, "u-1", status=Run.Status.PARTIAL)
    steps = steps_of(onboarding)
    for n in range(3):
        done = add_execution(run, steps["Welcome"], str(n), attempts=1)
        add_delivery(done, f"r{n}@example.com")
    lost = add_execution(
        run,
        steps["Tell the team"],
        "0",
        status=StepExecution.Status.FAILED,
        attempts=2,
        error="Uncertain: a worker stopped",
        attempt_log=[
            {
                "at": "2026-03-02T09:00:01+00:00",
                "took": 0.2,
                "outcome": "reclaimed",
                "error": "worker w1 stopped",
            },
            {"at": "2026-03-02T09:00:09+00:00", "took": 0.01, "outcome": "failed", "error": "Uncertain: ..."},
        ],
    )
    delivery = add_delivery(lost, "team@example.com", status=Delivery.Status.UNCERTAIN)
    return run, delivery


def resolve(client, delivery, **data):
    return client.post(reverse("runs:resolve_uncertain", args=[delivery.pk]), data)


def test_the_run_page_counts_uncertain_in_its_own_colour_and_shows_the_attempts(owner_client, uncertain):
    run, delivery = uncertain
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk]))
    html = page.content.decode()
    assert page.context["message_counts"] == [("sent", 3), ("uncertain", 1)]
    assert 'class="badge uncertain" data-status="uncertain">1 uncertain' in html
    assert "1 message may or may not have been sent" in html
    assert reverse("runs:resolve_uncertain", args=[delivery.pk]) in html
    assert 'data-testid="attempt-history"' in html and "worker w1 stopped" in html and "reclaimed" in html


def test_the_activity_list_counts_uncertain_not_failed(owner_client, uncertain):
    run, _ = uncertain
    row = next(r for r in owner_client.get(reverse("runs:run_list")).context["rows"] if r["run"].pk == run.pk)
    counts = dict(row["counts"])
    assert counts.get("uncertain") == 1 and "failed" not in counts


def test_send_again_needs_its_confirmation(owner_client, uncertain, redis_conn):
    _run, delivery = uncertain
    response = resolve(owner_client, delivery, action="resend")
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "uncertain", "nothing happens without the confirmation"
    resolve(owner_client, delivery, action="resend", confirm="yes")
    delivery.refresh_from_db()
    execution = delivery.step_execution
    execution.refresh_from_db()
    assert delivery.status == "failed" and execution.status == "pending", "queued to be sent again"


def test_mark_as_sent(owner_client, owner, uncertain, redis_conn):
    run, delivery = uncertain
    response = resolve(owner_client, delivery, action="mark_sent", next="https://evil.example.com/")
    delivery.refresh_from_db()
    assert delivery.status == "sent" and owner.username in delivery.error
    assert response["Location"] == reverse("runs:run_detail", args=[run.pk]), "no open redirect"


def test_bad_action_members_and_outsiders_change_nothing(
    member_client, outsider_client, owner_client, uncertain
):
    run, delivery = uncertain
    assert resolve(member_client, delivery, action="mark_sent").status_code == 403
    assert resolve(outsider_client, delivery, action="mark_sent").status_code == 404
    assert resolve(owner_client, delivery, action="explode").status_code == 302
    assert owner_client.get(reverse("runs:resolve_uncertain", args=[delivery.pk])).status_code == 405
    delivery.refresh_from_db()
    assert delivery.status == "uncertain"
    html = member_client.get(reverse("runs:run_detail", args=[run.pk])).content.decode()
    assert "Mark as sent" not in html, "members see no buttons for a live run"


def test_retry_times_show_seconds(onboarding):
    from runs.views.presenting import execution_state

    run = make_run(onboarding, "r", status=Run.Status.RUNNING)
    execution = add_execution(
        run,
        steps_of(onboarding)["Welcome"],
        "0",
        status="pending",
        attempts=1,
        error="451 later",
        next_attempt_at=datetime(2026, 3, 2, 8, 16, 7, tzinfo=UTC),
    )
    now = datetime(2026, 3, 2, 8, 16, 1, tzinfo=UTC)
    assert execution_state(execution, now).endswith("next at 08:16:07 (in 6 s)")


def test_the_plain_retry_button_does_not_bypass_the_confirmation(owner_client, uncertain, redis_conn):
    run, delivery = uncertain
    html = owner_client.get(reverse("runs:run_detail", args=[run.pk])).content.decode()
    assert reverse("runs:retry_execution", args=[delivery.step_execution_id]) not in html
    owner_client.post(reverse("runs:retry_execution", args=[delivery.step_execution_id]))
    delivery.refresh_from_db()
    assert delivery.status == "uncertain"


def test_operators_mark_uncertain_messages_sent_and_see_heartbeats(uncertain, redis_conn):
    from django.contrib.auth import get_user_model

    from runs.engine.liveness import Heartbeat

    _run, delivery = uncertain
    user = get_user_model().objects.create_superuser("op", "op@example.com", "pw-op-123456")
    operator = Client()
    operator.force_login(user)
    url = reverse("admin:runs_delivery_changelist")
    done = operator.post(
        url, {"action": "mark_uncertain_sent", "_selected_action": [delivery.pk]}, follow=True
    )
    assert "Marked 1 uncertain messages as sent" in done.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == "sent" and "op" in delivery.error
    Heartbeat("worker", name="worker-on-host-1").beat()
    page = operator.get(reverse("admin:runs_processheartbeat_changelist")).content.decode()
    assert "worker-on-host-1" in page and "icon-yes" in page


def test_the_tree_counts_uncertain_on_its_node_not_failed_and_opens_its_items(owner_client, uncertain):
    run, delivery = uncertain
    team = steps_of(run.workflow)["Tell the team"]
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk]))
    chips = {chip.state: chip.count for chip in page.context["steps_by_id"][team.pk].chips}
    assert chips == {"uncertain": 1}, "an uncertain message's execution is not also counted failed"
    side = page.context["side"]
    assert side.step.pk == team.pk, "the step that needs a person opens by itself"
    (execution,) = side.executions
    assert execution.state_class == "uncertain"
    html = page.content.decode()
    items = html[html.index('id="run-side"') :]
    assert reverse("runs:resolve_uncertain", args=[delivery.pk]) in items, "resolve buttons beside the item"
    assert 'data-testid="attempt-history"' in items and "worker w1 stopped" in items


@pytest.mark.parametrize(("status", "listed"), [("uncertain", 1), ("failed", 0), ("held", 0)])
def test_the_side_panel_filters_by_a_message_state(owner_client, uncertain, status, listed):
    run, _delivery = uncertain
    team = steps_of(run.workflow)["Tell the team"]
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk]), {"step": team.pk, "status": status})
    assert page.context["wanted"].status == status
    assert len(page.context["side"].executions) == listed
