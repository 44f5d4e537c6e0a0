"""A new channel is its own modules plus one line per registry: a test-only SMS channel, its provider
kind and its step, registered by the `sms` fixture (tests/sms/conftest.py), send through the engine's delivery protocol like email does: a
Delivery per message (kept with the provider that sent it), the provider's id, retries for what the
gateway says is transient, the gateway's words for what it refuses, several messages in flight."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from werkzeug import Response

from integrations.models import Provider
from integrations.providers.registry import kind_choices
from runs.engine import start_run
from runs.models import Delivery, Run
from tests.engine.conftest import build_workflow, settle, webhook

pytestmark = pytest.mark.django_db(transaction=True)


def sms_provider(tenant, gateway) -> Provider:
    provider = Provider(
        tenant=tenant, kind="test_sms", name="SMS gateway", settings={"api_url": gateway.url_for("/")}
    )
    provider.secret_values = {"api_key": "sms-key-123"}
    provider.save()
    return provider


def sms_workflow(tenant, provider):
    step = {
        "kind": "send_sms",
        "config": {"provider": provider.pk, "to": "{{ item.phone }}", "text": "Hi {{ item.name }}"},
    }
    return build_workflow(tenant, webhook([step]))


def answer(request):
    body = json.loads(request.get_data())
    if body["to"] == "+15550000400":
        return Response(
            json.dumps({"message": "Invalid number"}), status=400, content_type="application/json"
        )
    return Response(json.dumps({"id": f"sms-{body['to']}"}), content_type="application/json")


def test_an_sms_goes_through_the_tenants_sms_provider(sms, gateway, clock, tenant_a):
    gateway.expect_request("/messages", method="POST").respond_with_handler(answer)
    provider = sms_provider(tenant_a, gateway)
    assert provider.channel == "sms" and ("test_sms", "Test SMS gateway") in kind_choices("sms")
    assert ("test_sms", "Test SMS gateway") not in kind_choices("email")
    workflow = sms_workflow(tenant_a, provider)

    for n, phone in enumerate(("+15550000001", "+15550000002", "+15550000400")):
        start_run(workflow, {"phone": phone, "name": f"Person {n}"}, f"e{n}")
    settle(clock)

    sent = Delivery.objects.filter(status="sent").order_by("recipient")
    assert [(d.channel, d.recipient, d.provider_id, d.sent_via_id) for d in sent] == [
        ("sms", "+15550000001", "sms-+15550000001", provider.pk),
        ("sms", "+15550000002", "sms-+15550000002", provider.pk),
    ]
    refused = Delivery.objects.get(recipient="+15550000400")
    assert refused.status == "failed" and "Test SMS gateway answered HTTP 400" in refused.error
    assert "Invalid number" in refused.error and refused.sent_via_id == provider.pk
    assert sorted(Run.objects.values_list("status", flat=True)) == ["failed", "succeeded", "succeeded"]
    requests = [request for request, _ in gateway.log]
    assert {r.headers["Authorization"] for r in requests} == {"Bearer sms-key-123"}
    assert all(
        r.headers["Idempotency-Key"].startswith("rowbell-") and "exec" not in r.headers["Idempotency-Key"]
        for r in requests
    )
    assert json.loads(requests[0].get_data())["text"].startswith("Hi Person")


def test_a_transient_gateway_error_is_retried_and_then_sent(sms, gateway, clock, tenant_a):
    gateway.expect_ordered_request("/messages", method="POST").respond_with_data("busy", status=503)
    gateway.expect_ordered_request("/messages", method="POST").respond_with_json({"id": "sms-after-retry"})
    workflow = sms_workflow(tenant_a, sms_provider(tenant_a, gateway))
    start_run(workflow, {"phone": "+15550000001", "name": "Ada"}, "e1")
    settle(clock)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.provider_id) == ("sent", "sms-after-retry")
    assert delivery.step_execution.attempts == 2


def test_the_email_pages_do_not_offer_or_open_an_sms_provider(sms, gateway, owner, tenant_a):
    provider = sms_provider(tenant_a, gateway)
    client = Client()
    client.force_login(owner)
    page = client.get(reverse("email:settings")).content.decode()
    assert "SMS gateway" not in page and "Test SMS gateway" not in page
    assert client.get(reverse("email:provider", args=[provider.pk])).status_code == 404
    assert client.get(reverse("email:provider_add") + "?kind=test_sms").status_code == 404
