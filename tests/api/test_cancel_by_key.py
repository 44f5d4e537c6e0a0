"""REST API for cancel by key: the answer counts what was cancelled, bad input is a 400 that changes
nothing, another tenant's workflow or cancel is a 404, and undo answers 409 with the reason once due."""

from __future__ import annotations

import json

import pytest

from runs.engine import start_run
from runs.models import CancelTombstone, Run
from tenants.models import AuditEvent
from tests.engine.conftest import build_workflow, email, settle, work
from tests.engine.test_cancel_by_key import keyed, wait

pytestmark = pytest.mark.django_db


def post(client, url: str, body) -> object:
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def reminder(tenant_a):
    return build_workflow(tenant_a, keyed([wait(1, [email(subject="Pay", text="Please pay")])]), name="Pay")


def test_cancel_by_key_answers_what_it_cancelled_and_undo_restores_it(api, clock, smtp, reminder):
    run = start_run(reminder, {"order_id": 42, "email": "a@example.com"}, "o42")
    other = start_run(reminder, {"order_id": 43, "email": "b@example.com"}, "o43")
    work(clock)

    response = post(api, f"/api/v1/workflows/{reminder.pk}/cancel/", {"key": "order:42"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cancelled_runs"], body["cancelled_executions"], body["runs_found"]) == (1, 1, 1)
    assert body["cancel"]["key"] == "order:42" and body["cancel"]["cancelled"] == 1
    assert api.get(f"/api/v1/runs/{run.pk}/").json()["cancel_key"] == "order:42"
    assert api.get(f"/api/v1/runs/{run.pk}/").json()["status"] == "cancelled"
    assert AuditEvent.objects.filter(action="runs.cancelled_by_key").count() == 1

    cancel_id = body["cancel"]["id"]
    assert api.get(f"/api/v1/cancels/{cancel_id}/").json()["cancelled"] == 1
    undone = api.post(f"/api/v1/cancels/{cancel_id}/undo/")
    assert undone.status_code == 200 and undone.json() == {"restored_executions": 1}
    assert api.post(f"/api/v1/cancels/{cancel_id}/undo/").status_code == 409
    settle(clock)
    run.refresh_from_db()
    other.refresh_from_db()
    assert (run.status, other.status) == (Run.Status.SUCCEEDED, Run.Status.SUCCEEDED)
    assert sorted(smtp.recipients()) == ["a@example.com", "b@example.com"]


def test_undo_after_the_work_came_due_is_409_with_the_reason(api, clock, smtp, reminder):
    start_run(reminder, {"order_id": 1, "email": "a@example.com"}, "o1")
    work(clock)
    cancel_id = post(api, f"/api/v1/workflows/{reminder.pk}/cancel/", {"key": "order:1"}).json()["cancel"][
        "id"
    ]
    clock.travel(days=2)
    response = api.post(f"/api/v1/cancels/{cancel_id}/undo/")
    assert response.status_code == 409
    assert "can no longer be undone" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "key"),
        ({"key": ""}, "key"),
        ({"key": "   "}, "key"),
        ({"key": "x" * 256}, "key"),
        ({"key": ["order:1"]}, "key"),
        ({"key": "order:1", "until": "yesterday"}, "until"),
        ({"key": "order:1", "extra": 1}, "Unknown field"),
        ([1, 2], "object"),
    ],
)
def test_bad_input_is_a_400_that_cancels_nothing(api, clock, reminder, body, message):
    start_run(reminder, {"order_id": 1, "email": "a@example.com"}, "o1")
    response = post(api, f"/api/v1/workflows/{reminder.pk}/cancel/", body)
    assert response.status_code == 400, response.content
    assert message in json.dumps(response.json())
    assert CancelTombstone.objects.count() == 0


def test_an_until_already_past_cancels_what_is_pending_and_nothing_later(api, clock, smtp, reminder):
    start_run(reminder, {"order_id": 1, "email": "a@example.com"}, "o1")
    work(clock)
    body = post(
        api, f"/api/v1/workflows/{reminder.pk}/cancel/", {"key": "order:1", "until": "2000-01-01T00:00:00Z"}
    )
    assert body.status_code == 200 and body.json()["cancelled_executions"] == 1
    later = start_run(reminder, {"order_id": 1, "email": "later@example.com"}, "o1-again")
    settle(clock)
    later.refresh_from_db()
    assert later.status == Run.Status.SUCCEEDED and smtp.recipients() == ["later@example.com"]


def test_a_body_that_is_not_json_is_a_400(api, clock, reminder):
    response = api.post(f"/api/v1/workflows/{reminder.pk}/cancel/", data="{", content_type="application/json")
    assert response.status_code == 400
    assert CancelTombstone.objects.count() == 0


def test_another_tenants_workflow_and_cancel_are_404(api, outsider_api, clock, reminder):
    assert (
        post(outsider_api, f"/api/v1/workflows/{reminder.pk}/cancel/", {"key": "order:1"}).status_code == 404
    )
    cancel_id = post(api, f"/api/v1/workflows/{reminder.pk}/cancel/", {"key": "order:1"}).json()["cancel"][
        "id"
    ]
    assert outsider_api.get(f"/api/v1/cancels/{cancel_id}/").status_code == 404
    assert outsider_api.post(f"/api/v1/cancels/{cancel_id}/undo/").status_code == 404
    assert CancelTombstone.objects.get(pk=cancel_id).undone_at is None
