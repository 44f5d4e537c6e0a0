"""The REST API's operations beyond reading runs: publish a draft, release a sandbox's held messages,
retry and replay a run, read messages and their events, senders and providers (never their secrets); every
one through the key's tenant (another tenant's id is a 404) and in the audit log as the key."""

from __future__ import annotations

import json

from integrations.models import Provider, Sender
from runs.engine import start_run
from runs.models import Delivery, DeliveryEvent, Run
from tenants.models import AuditEvent
from tests.engine.conftest import build_workflow, email, webhook, work
from tests.support import finished_preview_token
from workflows.models import Step
from workflows.publishing import get_or_create_draft

JSON = "application/json"


def test_publish_makes_the_draft_live_in_sandbox_and_is_audited(api, draft):
    token = finished_preview_token(draft)
    response = api.post(
        f"/api/v1/workflows/{draft.pk}/publish/", {"token": token, "sandbox": True}, content_type=JSON
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["version"], body["sandbox"]) == (1, True)
    draft.refresh_from_db()
    assert draft.published_version.number == 1 and draft.published_version.sandbox
    event = AuditEvent.objects.get(action="workflow.published")
    assert event.via == "api" and (event.details["version"], event.details["sandbox"]) == (1, True)


def test_publish_without_a_draft_is_409_and_with_a_broken_one_400_saying_why(api, welcome, tenant_a):
    nothing = api.post(f"/api/v1/workflows/{welcome.pk}/publish/", {"token": "x"}, content_type=JSON)
    draft = get_or_create_draft(welcome)
    root = draft.root_step()
    # A send step with no recipient, saved as a draft may be before it is checked.
    Step.objects.create(
        tenant=tenant_a, version=draft, parent=root, kind="send_email", config={"subject": "Hi"}
    )
    broken = api.post(f"/api/v1/workflows/{welcome.pk}/publish/", {"token": "x"}, content_type=JSON)

    assert nothing.status_code == 409 and "There is no draft to publish" in nothing.json()["detail"]
    assert broken.status_code == 400
    assert broken.json()["detail"].startswith("The draft cannot be published yet: ")
    assert welcome.versions.filter(state="published").count() == 1


def test_publish_refuses_fields_it_does_not_know(api, draft):
    response = api.post(f"/api/v1/workflows/{draft.pk}/publish/", {"preview": "x"}, content_type=JSON)

    assert response.status_code == 400 and "Unknown field(s): preview" in response.json()["detail"]


def test_release_sends_each_held_message_once(api, clock, smtp, tenant_a):
    sandboxed = build_workflow(tenant_a, webhook([email()]), name="Sandboxed", sandbox=True)
    for name in ("ann", "bob"):
        start_run(sandboxed, {"email": f"{name}@example.com", "name": name}, name)
    work(clock)
    assert smtp.recipients() == []

    first = api.post(f"/api/v1/workflows/{sandboxed.pk}/release/")
    second = api.post(f"/api/v1/workflows/{sandboxed.pk}/release/")

    assert first.json() == {
        "released": 2,
        "not_sent": 0,
        "still_held": 0,
        "detail": "Released and sent 2 of 2 held message(s); 0 still held.",
    }
    assert second.json()["released"] == 0
    assert sorted(smtp.recipients()) == ["ann@example.com", "bob@example.com"]


def test_retry_reruns_failed_executions_and_replay_starts_a_new_run(api, clock, smtp, tenant_a, welcome):
    smtp.refuse["ann@example.com"] = "550 5.1.1 Gone"
    run = start_run(welcome, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    smtp.refuse.clear()

    retried = api.post(f"/api/v1/runs/{run.pk}/retry/")
    work(clock)
    again = api.post(f"/api/v1/runs/{run.pk}/retry/")
    replayed = api.post(f"/api/v1/runs/{run.pk}/replay/")
    work(clock)

    assert (retried.json()["retried_executions"], retried.json()["left_sent"]) == (1, 0)
    assert again.json()["retried_executions"] == 0  # nothing failed any more
    assert replayed.status_code == 201 and replayed.json()["event_key"] == "evt-1:replay:1"
    # The retry sent it (a person's decision to resend); the replay is a new run, and by then the 550 had
    # put ann on the suppression list, so its message is skipped.
    assert smtp.recipients() == ["ann@example.com"]
    new = Run.objects.get(pk=replayed.json()["id"])
    assert list(new.deliveries.values_list("status", flat=True)) == ["skipped"]
    assert Run.objects.get(pk=run.pk).status == "succeeded"
    assert {"execution.retried", "run.replayed"} <= set(AuditEvent.objects.values_list("action", flat=True))


def test_replaying_a_run_of_an_unpublished_workflow_is_409(api, welcome):
    from workflows.publishing import unpublish

    run = Run.objects.create(
        tenant=welcome.tenant, workflow=welcome, version=welcome.published_version, event_key="e", payload={}
    )
    unpublish(welcome)

    response = api.post(f"/api/v1/runs/{run.pk}/replay/")

    assert response.status_code == 409 and "is not published" in response.json()["detail"]


def test_messages_and_their_events_are_listed_and_filtered(api, clock, smtp, tenant_a, welcome):
    for name in ("ann", "bob"):
        start_run(welcome, {"email": f"{name}@example.com", "name": name}, name)
    work(clock)
    ann = Delivery.objects.get(recipient="ann@example.com")
    DeliveryEvent.objects.create(
        tenant=tenant_a,
        delivery=ann,
        kind="delivered",
        event_key="e1",
        occurred_at=clock.now,
        recipient=ann.recipient,
    )

    listed = api.get("/api/v1/messages/").json()
    by_recipient = api.get("/api/v1/messages/", {"recipient": "bob@example.com"}).json()
    events = api.get(f"/api/v1/messages/{ann.pk}/events/").json()
    one = api.get(f"/api/v1/messages/{ann.pk}/").json()

    assert [m["recipient"] for m in listed["results"]] == ["bob@example.com", "ann@example.com"]
    assert [m["recipient"] for m in by_recipient["results"]] == ["bob@example.com"]
    assert [(e["kind"], e["recipient"]) for e in events] == [("delivered", "ann@example.com")]
    assert (one["status"], one["workflow"], one["channel"]) == ("sent", welcome.pk, "email")
    assert "content" not in one
    assert api.get("/api/v1/messages/", {"status": "nope"}).status_code == 400


def test_senders_and_providers_never_show_secrets(api, tenant_a):
    provider = Provider(tenant=tenant_a, name="Postmark", kind="postmark", settings={"host": "smtp.internal"})
    provider.secret_values = {"server_token": "pm-secret-token-123"}
    provider.save()
    Sender.objects.create(tenant=tenant_a, name="Support", from_address="s@example.com", provider=provider)

    providers = api.get("/api/v1/providers/")
    senders = api.get("/api/v1/senders/").json()["results"]
    one = api.get(f"/api/v1/providers/{provider.pk}/").json()

    text = providers.content.decode() + json.dumps(one)
    for secret in ("pm-secret-token-123", provider.webhook_token, "smtp.internal", "secrets", "webhook"):
        assert secret not in text
    assert (one["name"], one["kind"], one["channel"]) == ("Postmark", "postmark", "email")
    assert [(s["name"], s["provider"], s["reply_to"]) for s in senders] == [("Support", provider.pk, "")]


def test_another_tenants_ids_are_404_everywhere(outsider_api, api, clock, smtp, tenant_a, welcome):
    run = start_run(welcome, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    message = Delivery.objects.get()
    provider = Provider.objects.create(tenant=tenant_a, name="Postmark", kind="postmark")
    sender = Sender.objects.create(tenant=tenant_a, name="Support", from_address="s@example.com")
    posts = [
        f"/api/v1/runs/{run.pk}/retry/",
        f"/api/v1/runs/{run.pk}/replay/",
        f"/api/v1/runs/{run.pk}/cancel/",
        f"/api/v1/workflows/{welcome.pk}/publish/",
        f"/api/v1/workflows/{welcome.pk}/release/",
    ]
    gets = [
        f"/api/v1/messages/{message.pk}/",
        f"/api/v1/messages/{message.pk}/events/",
        f"/api/v1/providers/{provider.pk}/",
        f"/api/v1/senders/{sender.pk}/",
    ]

    for path in posts:
        assert outsider_api.post(path, {}, content_type=JSON).status_code == 404, path
    for path in gets:
        assert outsider_api.get(path).status_code == 404, path
    for path in ("/api/v1/messages/", "/api/v1/providers/", "/api/v1/senders/"):
        body = outsider_api.get(path).json()
        assert body["results"] == [], path
    assert Run.objects.count() == 1 and smtp.recipients() == ["ann@example.com"]
