"""Actions from the activity log, on the real engine with burst workers and a real SMTP server:
sandbox release (once, even when clicked twice at the same time), discard, retry, cancel, replay."""

from __future__ import annotations

import threading

from django.db import connection
from django.test import Client
from django.urls import reverse

from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tests.activity.conftest import build_workflow, email, webhook
from tests.engine.conftest import settle, work
from workflows.publishing import get_or_create_draft, publish

PEOPLE = [{"email": f"p{n}@example.com", "name": f"P{n}"} for n in range(4)]


def sandboxed_runs(tenant):
    workflow = build_workflow(tenant, webhook([email()]), name="Sandboxed", sandbox=True)
    for n, person in enumerate(PEOPLE):
        start_run(workflow, person, f"evt-{n}")
    return workflow


def test_sandbox_holds_messages_and_release_all_twice_at_once_sends_each_once(clock, smtp, tenant_a, owner):
    sandboxed_runs(tenant_a)
    work(clock)
    assert smtp.messages == []
    assert Delivery.objects.filter(status="held").count() == 4
    barrier, responses = threading.Barrier(2), []

    def click():
        client = Client()
        client.force_login(owner)
        barrier.wait()
        responses.append(client.post(reverse("runs:release_messages"), {"all": "1"}).status_code)
        connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert responses == [302, 302]
    assert sorted(smtp.recipients()) == sorted(p["email"] for p in PEOPLE)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sent"}


def test_release_a_selection_and_discard_one(clock, smtp, tenant_a, owner_client):
    sandboxed_runs(tenant_a)
    work(clock)
    held = list(Delivery.objects.order_by("id"))
    page = owner_client.get(reverse("runs:message_list"))
    assert page.context["held_count"] == 4 and 'name="ids"' in page.content.decode()
    response = owner_client.post(
        reverse("runs:release_messages"), {"ids": [held[0].pk, held[1].pk]}, follow=True
    )
    assert "Released and sent 2 messages." in response.content.decode()
    owner_client.post(reverse("runs:release_messages"), {"ids": [held[0].pk]})  # again: nothing new
    owner_client.post(reverse("runs:discard_messages"), {"ids": [held[2].pk]})
    assert sorted(smtp.recipients()) == sorted([held[0].recipient, held[1].recipient])
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert [statuses[d.pk] for d in held] == ["sent", "sent", "discarded", "held"]
    empty = owner_client.post(reverse("runs:release_messages"), {}, follow=True)
    assert "Select at least one held message first." in empty.content.decode()


def test_retry_a_failed_execution_after_the_cause_is_fixed_sends_once(clock, smtp, tenant_a, owner_client):
    smtp.refuse["ann@example.com"] = "550 no such mailbox"
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    failed = StepExecution.objects.get(run=run, step__kind="send_email")
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk])).content.decode()
    assert failed.status == "failed" and "550 no such mailbox" in page
    assert reverse("runs:retry_execution", args=[failed.pk]) in page
    del smtp.refuse["ann@example.com"]
    url = reverse("runs:retry_execution", args=[failed.pk])
    assert owner_client.post(url).status_code == 302
    again = owner_client.post(url, follow=True).content.decode()  # a second click before the worker ran
    assert "Only a failed execution can be retried" in again
    work(clock)
    run.refresh_from_db()
    assert run.status == "succeeded" and smtp.recipients() == ["ann@example.com"]


def test_cancel_stops_pending_and_waiting_executions(clock, smtp, tenant_a, owner_client):
    wait = {
        "kind": "wait",
        "config": {"mode": "duration", "amount": 3, "unit": "days"},
        "children": [email()],
    }
    workflow = build_workflow(tenant_a, webhook([wait, email(subject="now")]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    waiting = StepExecution.objects.get(run=run, step__kind="wait")
    assert waiting.status == "pending" and waiting.next_attempt_at > clock.now
    page = owner_client.get(reverse("runs:run_detail", args=[run.pk])).content.decode()
    assert "waiting until" in page and 'hx-trigger="every 2s"' in page
    owner_client.post(reverse("runs:cancel_run", args=[run.pk]))
    settle(clock, step_seconds=86400)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert not StepExecution.objects.filter(run=run, status__in=StepExecution.OPEN).exists()
    assert [m["Subject"] for m in smtp.messages] == ["now"]


def test_replay_starts_a_new_run_on_the_current_published_version(clock, smtp, tenant_a, owner, owner_client):
    workflow = build_workflow(tenant_a, webhook([email(subject="v1")]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    draft = get_or_create_draft(workflow)
    send = draft.steps.get(kind="send_email")
    send.config = {**send.config, "subject": "v2"}
    send.save()
    publish(workflow, owner)
    workflow.refresh_from_db()
    response = owner_client.post(reverse("runs:replay_run", args=[run.pk]))
    again = Run.objects.exclude(pk=run.pk).get()
    assert response["Location"] == reverse("runs:run_detail", args=[again.pk])
    assert again.version_id == workflow.published_version_id != run.version_id
    work(clock)
    assert [m["Subject"] for m in smtp.messages] == ["v1", "v2"]


def test_members_cannot_send_to_real_recipients_but_can_stop_things_and_work_on_tests(
    clock, smtp, tenant_a, member
):
    """Releasing, and retrying or replaying a live run, send real messages: admins and owners only."""
    client = Client()
    client.force_login(member)
    sandboxed_runs(tenant_a)
    smtp.refuse["ann@example.com"] = "550 no such mailbox"
    workflow = build_workflow(tenant_a, webhook([email()]), name="Live")
    live = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-live")
    test = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-test", is_test=True)
    work(clock)
    held = list(Delivery.objects.filter(status="held").order_by("id"))
    live_failure = StepExecution.objects.get(run=live, status="failed")

    refusals = [
        client.post(reverse("runs:release_messages"), {"all": "1"}),
        client.post(reverse("runs:release_messages"), {"ids": [held[0].pk]}),
        client.post(reverse("runs:retry_execution", args=[live_failure.pk])),
        client.post(reverse("runs:replay_run", args=[live.pk])),
    ]
    assert [r.status_code for r in refusals] == [403] * 4
    assert "Only admins and owners can release held messages" in refusals[0].content.decode()
    assert smtp.messages == [] and Run.objects.count() == 6
    assert Delivery.objects.filter(status="held").count() == 4
    assert StepExecution.objects.get(pk=live_failure.pk).status == "failed"

    messages_page = client.get(reverse("runs:message_list")).content.decode()
    assert "Release all held" not in messages_page and "Release selected" not in messages_page
    assert "An admin or owner releases them." in messages_page
    live_page = client.get(reverse("runs:run_detail", args=[live.pk])).content.decode()
    assert reverse("runs:retry_execution", args=[live_failure.pk]) not in live_page
    assert reverse("runs:replay_run", args=[live.pk]) not in live_page

    # Stopping things and working on test runs stay open to members.
    assert client.post(reverse("runs:discard_messages"), {"ids": [held[0].pk]}).status_code == 302
    assert Delivery.objects.get(pk=held[0].pk).status == "discarded"
    test_page = client.get(reverse("runs:run_detail", args=[test.pk])).content.decode()
    assert reverse("runs:replay_run", args=[test.pk]) in test_page
    assert client.post(reverse("runs:replay_run", args=[test.pk])).status_code == 302
    assert Run.objects.filter(is_test=True).count() == 2
