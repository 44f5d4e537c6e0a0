"""Test runs capture, sandbox holds until released (exactly once), cancel, retry, replay; Slack and HTTP."""

from __future__ import annotations

import json
import threading

from integrations.crypto import encrypt
from integrations.message_keys import message_key
from runs.engine import cancel_run, discard_delivery, release_delivery, replay_run, retry_execution, start_run
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, email, settle, webhook, work


def test_a_test_run_captures_messages_and_can_skip_waits(clock, smtp, tenant_a):
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "wait",
                    "config": {"mode": "duration", "amount": 3, "unit": "days"},
                    "children": [email()],
                },
            ]
        ),
    )
    run = start_run(
        workflow,
        {"email": "real@example.com", "name": "R"},
        "t-1",
        is_test=True,
        options={"skip_waits": True},
    )
    work(clock)
    run.refresh_from_db()
    delivery = Delivery.objects.get(run=run)
    assert run.status == "succeeded"
    assert delivery.status == "captured" and delivery.content["to"] == "real@example.com"
    assert delivery.content["subject"] == "Hello R"
    assert smtp.recipients() == []


def test_a_test_run_with_an_override_recipient_sends_only_to_the_tester(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(
        workflow,
        {"email": "real@example.com", "name": "R"},
        "t-1",
        is_test=True,
        options={"override_recipient": "tester@example.com"},
    )
    work(clock)
    delivery = Delivery.objects.get(run=run)
    assert smtp.recipients() == ["tester@example.com"]
    assert delivery.status == "sent" and delivery.content["original_to"] == "real@example.com"


def test_sandbox_holds_until_released_once_even_when_released_twice_at_once(clock, smtp, tenant_a, tenant_b):
    workflow = build_workflow(tenant_a, webhook([email()]), sandbox=True)
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == "held" and smtp.recipients() == []
    assert release_delivery(delivery.pk, tenant=tenant_b) is False  # another tenant's id does nothing

    results = []
    barrier = threading.Barrier(2)

    def release():
        from django.db import connection

        barrier.wait()
        results.append(release_delivery(delivery.pk, tenant=tenant_a))
        connection.close()

    threads = [threading.Thread(target=release) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert smtp.recipients() == ["ann@example.com"]
    delivery.refresh_from_db()
    assert delivery.status == "sent"


def test_discarding_a_held_message_never_sends_it(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]), sandbox=True)
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    delivery = Delivery.objects.get(run=run)
    assert discard_delivery(delivery.pk, tenant=tenant_a) is True
    assert release_delivery(delivery.pk, tenant=tenant_a) is False
    assert smtp.recipients() == []


def test_cancelling_a_run_stops_what_has_not_happened_yet(clock, smtp, tenant_a):
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                email(
                    subject="now",
                    children=[
                        {
                            "kind": "wait",
                            "config": {"mode": "duration", "amount": 1, "unit": "hours"},
                            "children": [email(subject="later")],
                        },
                    ],
                ),
            ]
        ),
    )
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    assert cancel_run(run) == 1
    settle(clock, step_seconds=7200)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert [m["Subject"] for m in smtp.messages] == ["now"]
    assert not StepExecution.objects.filter(run=run, status__in=StepExecution.OPEN).exists()


def test_retrying_a_failed_execution_sends_it(clock, smtp, tenant_a):
    smtp.refuse["ann@example.com"] = "550 mailbox full"
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    send = StepExecution.objects.get(run=run, step__kind="send_email")
    assert send.status == "failed"
    del smtp.refuse["ann@example.com"]
    assert retry_execution(send) is True
    assert retry_execution(send) is False  # already pending again
    work(clock)
    send.refresh_from_db()
    run.refresh_from_db()
    assert send.status == "succeeded" and run.status == "succeeded"
    assert smtp.recipients() == ["ann@example.com"]


def test_replaying_a_run_starts_a_new_one_on_the_same_version(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email()]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    again = replay_run(run)
    work(clock)
    assert again.pk != run.pk and again.version_id == run.version_id
    assert again.event_key == "evt-1:replay:1"
    assert smtp.recipients() == ["ann@example.com", "ann@example.com"]


def test_slack_message_posts_to_the_webhook(clock, tenant_a, httpserver):
    httpserver.expect_oneshot_request("/services/T/B/x", method="POST").respond_with_data("ok")
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "slack_message",
                    "config": {
                        "webhook_url": httpserver.url_for("/services/T/B/x"),
                        "text": "New signup: {{ item.email }}",
                    },
                }
            ]
        ),
    )
    run = start_run(workflow, {"email": "ann@example.com"}, "evt-1")
    work(clock)
    ((request, _response),) = httpserver.log
    assert json.loads(request.data) == {"text": "New signup: ann@example.com"}
    delivery = Delivery.objects.get(run=run)
    assert delivery.status == "sent" and delivery.content == {"text": "New signup: ann@example.com"}
    assert "services" not in json.dumps(delivery.content)


def test_slack_429_is_retried(clock, tenant_a, httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_data("rate limited", status=429)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "slack_message",
                    "config": {"webhook_url_encrypted": encrypt(httpserver.url_for("/hook")), "text": "hi"},
                }
            ]
        ),
    )
    run = start_run(workflow, {}, "evt-1")
    settle(clock, step_seconds=5)
    run.refresh_from_db()
    assert run.status == "succeeded" and len(httpserver.log) == 2


def test_http_request_sends_an_idempotency_key_and_the_response_becomes_the_item(
    clock, smtp, tenant_a, httpserver
):
    httpserver.expect_request("/api/users", method="POST").respond_with_json(
        {"email": "from-api@example.com", "name": "Api"}
    )
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "http_request",
                    "config": {
                        "method": "POST",
                        "url": httpserver.url_for("/api/users"),
                        "headers": {"Authorization": "Bearer s3cret", "X-Name": "{{ item.name }}"},
                        "body": '{"name": {{ item.name|tojson }}}',
                        "response": "replace",
                    },
                    "children": [email()],
                }
            ]
        ),
    )
    run = start_run(workflow, {"name": 'Ann "the" Admin'}, "evt-1")
    work(clock)
    ((request, _response),) = httpserver.log
    execution = StepExecution.objects.get(run=run, step__kind="http_request")
    assert request.headers["Idempotency-Key"] == message_key(execution.pk)
    assert json.loads(request.data) == {"name": 'Ann "the" Admin'}
    assert request.headers["Authorization"] == "Bearer s3cret"
    delivery = Delivery.objects.get(step_execution=execution)
    assert delivery.content["headers"]["Authorization"] == "••••••••"
    assert smtp.recipients() == ["from-api@example.com"]


def test_http_4xx_fails_at_once_and_5xx_retries(clock, tenant_a, httpserver):
    httpserver.expect_request("/bad").respond_with_data("no such thing", status=404)
    httpserver.expect_request("/flaky").respond_with_data("oops", status=503)
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {"kind": "http_request", "config": {"method": "GET", "url": httpserver.url_for("/bad")}},
                {"kind": "http_request", "config": {"method": "GET", "url": httpserver.url_for("/flaky")}},
            ]
        ),
    )
    run = start_run(workflow, {}, "evt-1")
    work(clock)
    bad, flaky = StepExecution.objects.filter(run=run, step__kind="http_request").order_by("step__position")
    assert bad.status == "failed" and "HTTP 404" in bad.error
    assert flaky.status == "pending" and "HTTP 503" in flaky.error
    assert Run.objects.get(pk=run.pk).status == "running"
