"""The REST API asks for a preview, polls it, and publishes with its token; a stale token is a 409."""

from __future__ import annotations

from runs.publish_preview.job import run_preview
from tests.engine.conftest import build_workflow, email, webhook
from tests.publish_preview.conftest import draft_step, insert_above, past_runs
from workflows.models import Step


def test_preview_then_publish_with_its_token(tenant_a, clock, smtp, api, outsider_api):
    workflow = build_workflow(tenant_a, webhook([email(name="Welcome")]))
    past_runs(
        workflow,
        [
            {"email": "ada@example.com", "name": "Ada", "plan": "pro"},
            {"email": "bob@example.com", "name": "Bob"},
        ],
    )
    insert_above(workflow, "send_email", "condition", {"expression": "item.plan == 'pro'"})
    base = f"/api/v1/workflows/{workflow.pk}"

    started = api.post(f"{base}/previews/", {"events": 10}, content_type="application/json")
    assert started.status_code == 202
    body = started.json()
    assert body["status"] == "queued" and body["token"] is None and body["events"] == 10
    run_preview(body["id"])
    done = api.get(f"{base}/previews/{body['id']}/").json()
    assert done["status"] == "done" and not done["stale"] and len(done["token"]) == 64
    assert done["result"]["steps"][0]["lost"][0]["recipient"] == "bob@example.com"
    assert outsider_api.get(f"{base}/previews/{body['id']}/").status_code == 404

    # A change after the preview: the token is stale.
    step = draft_step(workflow, "send_email")
    Step.objects.filter(pk=step.pk).update(config={**step.config, "subject": "Changed"})
    stale = api.post(f"{base}/publish/", {"token": done["token"]}, content_type="application/json")
    assert stale.status_code == 409 and "preview it again" in stale.json()["detail"]
    assert api.get(f"{base}/previews/{body['id']}/").json()["stale"] is True

    again = api.post(f"{base}/previews/", {}, content_type="application/json").json()
    run_preview(again["id"])
    token = api.get(f"{base}/previews/{again['id']}/").json()["token"]
    published = api.post(
        f"{base}/publish/", {"token": token, "sandbox": False}, content_type="application/json"
    )
    assert published.status_code == 200 and published.json()["version"] == 2
    workflow.refresh_from_db()
    assert workflow.published_version.number == 2


def test_bad_bodies_are_400s_not_500s(tenant_a, clock, api):
    workflow = build_workflow(tenant_a, webhook([email()]))
    base = f"/api/v1/workflows/{workflow.pk}"
    for body in ({"events": 0}, {"events": 1001}, {"events": "many"}, {"events": True}, {"other": 1}):
        answer = api.post(f"{base}/previews/", body, content_type="application/json")
        assert answer.status_code == 400, body
    for body in (
        {},
        {"token": ""},
        {"token": 5},
        {"token": "x", "sandbox": "yes"},
        {"token": "x", "in_flight": {"k": "jump"}},
    ):
        answer = api.post(f"{base}/publish/", body, content_type="application/json")
        assert answer.status_code == 400, body
    assert api.post(f"{base}/publish/", "[1]", content_type="application/json").status_code == 400
    # No draft yet (the workflow is as published): 409 says so.
    assert api.post(f"{base}/publish/", {"token": "x"}, content_type="application/json").status_code == 409
