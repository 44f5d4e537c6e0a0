"""GET /api/v1/runs/ (filters, keyset pages), /api/v1/runs/<id>/ (executions, messages) and cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runs.models import Delivery, Run, StepExecution
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of
from tests.engine.conftest import build_workflow, email, webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(welcome):
    """Four live runs of `welcome`, newest first: running, failed, succeeded, succeeded; one test run."""
    runs = [
        make_run(welcome, "e-running", status=Run.Status.RUNNING, age=timedelta(minutes=1)),
        make_run(welcome, "e-failed", status=Run.Status.FAILED, age=timedelta(minutes=2)),
        make_run(welcome, "e-ok-1", age=timedelta(minutes=3)),
        make_run(welcome, "e-ok-2", age=timedelta(minutes=4)),
    ]
    test_run = make_run(welcome, "e-test", is_test=True, age=timedelta(minutes=5))
    return runs, test_run


def keys(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [run["event_key"] for run in response.json()["results"]]


def test_list_is_live_runs_newest_first(api, history, welcome):
    response = api.get("/api/v1/runs/")

    assert keys(response) == ["e-running", "e-failed", "e-ok-1", "e-ok-2"]
    first = response.json()["results"][0]
    assert first == {
        "id": history[0][0].pk,
        "workflow": welcome.pk,
        "workflow_name": "Welcome",
        "version": 1,
        "event_key": "e-running",
        "label": "",
        "cancel_key": "",
        "status": "running",
        "is_test": False,
        "created_at": first["created_at"],
        "finished_at": first["finished_at"],
    }
    assert response.json()["next"] is None


def test_filters(api, history, welcome, tenant_a):
    from tests.engine.conftest import build_workflow, webhook

    other = build_workflow(tenant_a, webhook(), name="Other")
    make_run(other, "other-1")

    assert keys(api.get("/api/v1/runs/", {"status": "succeeded"})) == ["other-1", "e-ok-1", "e-ok-2"]
    assert keys(api.get("/api/v1/runs/", {"workflow": other.pk})) == ["other-1"]
    assert keys(api.get("/api/v1/runs/", {"workflow": welcome.pk, "status": "failed"})) == ["e-failed"]
    assert keys(api.get("/api/v1/runs/", {"is_test": "true"})) == ["e-test"]


def test_bad_filters_are_400_naming_the_field(api, history):
    response = api.get("/api/v1/runs/", {"status": "done", "is_test": "maybe", "workflow": "x"})

    assert response.status_code == 400
    # One {"detail"} like every API error, naming each field.
    detail = response.json()["detail"]
    assert 'status: "done" is not a valid choice.' in detail
    assert "is_test: Must be a valid boolean." in detail
    assert "workflow: A valid integer is required." in detail


def test_pages_follow_next_to_the_end(api, history):
    first = api.get("/api/v1/runs/", {"page_size": 3}).json()
    assert [r["event_key"] for r in first["results"]] == ["e-running", "e-failed", "e-ok-1"]
    assert "page_size=3" in first["next"]

    second = api.get(first["next"]).json()

    assert [r["event_key"] for r in second["results"]] == ["e-ok-2"]
    assert second["next"] is None


def test_bad_page_parameters_are_400(api, history):
    bad_cursor = api.get("/api/v1/runs/", {"cursor": "nonsense"})
    assert bad_cursor.status_code == 400
    assert "is not a page position" in bad_cursor.json()["detail"]
    assert api.get("/api/v1/runs/", {"page_size": "0"}).status_code == 400
    assert len(api.get("/api/v1/runs/", {"page_size": "5000"}).json()["results"]) == 4  # capped, not refused


def test_detail_has_executions_and_message_counts(api, welcome):
    run = make_run(welcome, "e-1")
    welcome_step = steps_of(welcome)["Welcome"]
    sent = add_execution(run, welcome_step, "0/a", attempts=1)
    add_delivery(sent, "a@example.com")
    failed = add_execution(run, welcome_step, "0/b", status=StepExecution.Status.FAILED, error="550 no")
    add_delivery(failed, "b@example.com", status=Delivery.Status.FAILED)

    body = api.get(f"/api/v1/runs/{run.pk}/").json()

    assert body["payload"] == {"email": "e-1@example.com"}
    assert body["execution_count"] == 3
    assert [(e["step_kind"], e["item_key"], e["status"]) for e in body["executions"]] == [
        ("webhook_trigger", "0", "succeeded"),
        ("send_email", "0/a", "succeeded"),
        ("send_email", "0/b", "failed"),
    ]
    assert body["executions"][2]["error"] == "550 no"
    assert body["executions"][2]["step_name"] == "Welcome"
    assert body["deliveries"] == {status: 0 for status in Delivery.Status.values} | {"sent": 1, "failed": 1}


def test_another_tenants_runs_are_404_and_never_listed(outsider_api, history, welcome):
    running = history[0][0]

    assert keys(outsider_api.get("/api/v1/runs/")) == []
    assert keys(outsider_api.get("/api/v1/runs/", {"workflow": welcome.pk})) == []
    assert outsider_api.get(f"/api/v1/runs/{running.pk}/").status_code == 404
    assert outsider_api.post(f"/api/v1/runs/{running.pk}/cancel/").status_code == 404
    running.refresh_from_db()
    assert running.status == Run.Status.RUNNING


def test_cancel_stops_the_runs_open_executions(api, welcome):
    run = make_run(welcome, "e-open", status=Run.Status.RUNNING)
    waiting = add_execution(run, steps_of(welcome)["Welcome"], "0/a", status=StepExecution.Status.PENDING)

    response = api.post(f"/api/v1/runs/{run.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["cancelled_executions"] == 1
    assert response.json()["run"]["status"] == "cancelled"
    waiting.refresh_from_db()
    assert waiting.status == StepExecution.Status.CANCELLED


def test_cancelling_a_finished_run_is_409(api, welcome):
    run = make_run(welcome, "e-done")

    response = api.post(f"/api/v1/runs/{run.pk}/cancel/")

    assert response.status_code == 409
    assert response.json()["detail"] == f"Run {run.pk} has already finished (succeeded)."
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_detail_says_why_a_throttle_dropped_an_item(api, clock, smtp, tenant_a):
    from runs.engine import start_run
    from tests.engine.conftest import work

    throttle = {"kind": "throttle", "config": {"limit": 1, "key": "{{ item.email }}"}, "children": [email()]}
    workflow = build_workflow(tenant_a, webhook([throttle]), name="Throttled")
    start_run(workflow, {"email": "a@example.com", "name": "A"}, "e-1")
    second = start_run(workflow, {"email": "a@example.com", "name": "A"}, "e-2")
    work(clock)

    body = api.get(f"/api/v1/runs/{second.pk}/").json()

    [throttled] = [e for e in body["executions"] if e["step_kind"] == "throttle"]
    assert throttled["status"] == "skipped" and throttled["error"] == ""
    assert throttled["throttled"].startswith("1 of 1 used for “a@example.com”")
    assert all(e["throttled"] == "" for e in body["executions"] if e["step_kind"] != "throttle")
