"""A run sends through the tenant's own provider (a local server playing Postmark), keeps Postmark's message
id, and Postmark's bounce webhook then lands on that message: its timeline, the per-step counts."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from runs.engine import start_run
from runs.models import Delivery, DeliveryEvent
from tests.emailing.conftest import esp_provider, make_sender, smtp_provider_for
from tests.emailing.test_tracking import post, postmark_bounce
from tests.engine.conftest import build_workflow, email, webhook, work
from workflows.steps.base import PublishError

POSTMARK_ID = "b7bc2f4a-e38e-4336-af7d-e6c392c2f817"


def postmark_accepts(httpserver) -> None:
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {
            "To": "ada@example.com",
            "SubmittedAt": "2026-11-26T10:00:00Z",
            "MessageID": POSTMARK_ID,
            "ErrorCode": 0,
            "Message": "OK",
        }
    )


def test_a_run_through_postmark_then_its_bounce_on_the_message_page(clock, httpserver, tenant_a, owner):
    postmark_accepts(httpserver)
    provider = esp_provider(tenant_a, "postmark", httpserver)
    sender = make_sender(tenant_a, provider, reply_to="replies@acme.example")
    workflow = build_workflow(
        tenant_a,
        webhook([email(name="Welcome", sender=sender.pk, cc="{{ item.manager }}", reply_to="")]),
        name="Onboarding",
    )
    start_run(
        workflow, {"email": "ada@example.com", "name": "Ada", "manager": "boss@acme.example"}, "signup-1"
    )
    work(clock)

    delivery = Delivery.objects.get()
    assert delivery.status == "sent" and delivery.provider_id == POSTMARK_ID
    assert delivery.content["from"] == "Acme Support <support@acme.example>"
    sent = json.loads(httpserver.log[-1][0].get_data())
    assert sent["From"] == "Acme Support <support@acme.example>" and sent["ReplyTo"] == "replies@acme.example"
    assert sent["Cc"] == "boss@acme.example" and sent["To"] == "ada@example.com"

    assert post(provider, postmark_bounce(POSTMARK_ID)).status_code == 200
    event = DeliveryEvent.objects.get(delivery=delivery)
    assert (event.kind, event.bounce) == ("bounced", "hard")

    client = Client()
    client.force_login(owner)
    page = client.get(reverse("runs:message_detail", args=[delivery.pk])).content.decode()
    assert "After the hand-off" in page and "Bounced" in page and "(hard)" in page
    assert "The email account that you tried to reach does not exist." in page
    assert "Acme Support &lt;support@acme.example&gt;" in page and "boss@acme.example" in page  # From, CC
    counts = client.get(reverse("runs:workflow_tracking_counts", args=[workflow.pk])).content.decode()
    row = re.search(r"<tr><td>Welcome</td>(.*?)</tr>", counts).group(1)
    assert re.findall(r"<td>(\d+)</td>", row) == ["1", "0", "1", "0", "0", "0"]  # sent, delivered, bounced...


def test_the_tenants_default_sender_is_used_when_the_step_chooses_none(clock, auth_smtp, tenant_a):
    provider = smtp_provider_for(tenant_a, auth_smtp.port)
    make_sender(tenant_a, provider, name="Hello", address="hello@acme.example", from_name="Acme")
    workflow = build_workflow(tenant_a, webhook([email()]))
    start_run(workflow, {"email": "ada@example.com", "name": "Ada"}, "e1")
    work(clock)
    (mail,) = auth_smtp.messages
    assert mail["From"] == "Acme <hello@acme.example>"
    assert Delivery.objects.get().provider_id == mail["Message-ID"]


def test_without_senders_the_platform_server_and_address_send(clock, smtp, tenant_a, settings):
    workflow = build_workflow(tenant_a, webhook([email()]))
    start_run(workflow, {"email": "ada@example.com", "name": "Ada"}, "e1")
    work(clock)
    (mail,) = smtp.messages
    assert mail["From"] == settings.DEFAULT_FROM_EMAIL


def test_headers_from_templates_keep_no_line_breaks(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([email(reply_to="{{ item.reply }}")]))
    payload = {"email": "ada@example.com", "name": "Ada", "reply": "a@acme.example\r\nBcc: x@evil.example"}
    run = start_run(workflow, payload, "e1")
    work(clock)
    # The CR/LF became spaces, which leaves no valid address: refused before anything is written or sent.
    execution = run.executions.get(step__kind="send_email")
    assert execution.status == "failed" and execution.error.startswith("Reply-To:")
    assert "\n" not in execution.error and smtp.messages == [] and not Delivery.objects.exists()


def test_a_deleted_sender_fails_the_step_permanently_with_a_reason(clock, smtp, tenant_a):
    sender = make_sender(tenant_a)
    workflow = build_workflow(tenant_a, webhook([email(sender=sender.pk)]))
    sender.delete()
    run = start_run(workflow, {"email": "ada@example.com", "name": "Ada"}, "e1")
    work(clock)
    execution = run.executions.get(step__kind="send_email")
    assert execution.status == "failed" and "no longer exists" in execution.error
    assert smtp.messages == []


def test_another_tenants_sender_id_is_refused_at_publish(clock, smtp, tenant_a, tenant_b):
    theirs = make_sender(tenant_b, address="ceo@globex.example")
    with pytest.raises(PublishError) as refused:
        build_workflow(tenant_a, webhook([email(sender=theirs.pk)]))
    assert "This sender does not exist" in str(refused.value.step_errors)
    assert smtp.messages == []
