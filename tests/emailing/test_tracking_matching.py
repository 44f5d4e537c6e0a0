"""A tracking event lands only on a message its own provider sent: the provider's webhook URL proves who is
calling, and the message id alone must not let one provider report on another's mail (ids are not secret:
a Message-ID travels in every copy of the mail; two providers of a tenant can share an id format)."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from consent.models import Suppression
from runs.engine import start_run
from runs.models import Delivery, DeliveryEvent
from tests.emailing.conftest import esp_provider, make_provider, make_sender, smtp_provider_for
from tests.emailing.test_end_to_end import POSTMARK_ID, postmark_accepts
from tests.emailing.test_tracking import basic_auth, post, postmark_bounce
from tests.engine.conftest import build_workflow, email, webhook, work

pytestmark = pytest.mark.django_db(transaction=True)


def send_one(tenant, sender, clock) -> Delivery:
    workflow = build_workflow(tenant, webhook([email(name="Welcome", sender=sender.pk)]))
    start_run(workflow, {"email": "ada@example.com", "name": "Ada"}, "signup-1")
    work(clock)
    delivery = Delivery.objects.get()
    assert delivery.status == "sent" and delivery.provider_id
    return delivery


def test_a_postmark_webhook_cannot_bounce_a_message_sent_through_smtp(clock, auth_smtp, tenant_a):
    smtp = smtp_provider_for(tenant_a, auth_smtp.port)
    delivery = send_one(tenant_a, make_sender(tenant_a, smtp), clock)
    assert delivery.sent_via_id == smtp.pk
    postmark = make_provider(tenant_a, "postmark", {}, {"server_token": "k"})

    response = post(postmark, postmark_bounce(delivery.provider_id))

    assert response.status_code == 200 and response.json()["unknown"] == 1
    assert not DeliveryEvent.objects.exists()
    assert not Suppression.objects.filter(address="ada@example.com").exists()


def test_only_the_postmark_server_that_sent_a_message_reports_on_it(clock, httpserver, tenant_a):
    postmark_accepts(httpserver)
    sending = esp_provider(tenant_a, "postmark", httpserver)
    other = make_provider(tenant_a, "postmark", {}, {"server_token": "k"}, name="Other Postmark server")
    delivery = send_one(tenant_a, make_sender(tenant_a, sending), clock)
    assert delivery.provider_id == POSTMARK_ID and delivery.sent_via_id == sending.pk

    assert post(other, postmark_bounce(POSTMARK_ID)).json()["unknown"] == 1
    assert not DeliveryEvent.objects.exists()

    assert post(sending, postmark_bounce(POSTMARK_ID)).json()["stored"] == 1
    event = DeliveryEvent.objects.get(delivery=delivery)
    assert event.provider_id == sending.pk and event.bounce == "hard"
    assert Suppression.objects.filter(tenant=tenant_a, address="ada@example.com").exists()


def test_a_message_sent_through_the_platforms_own_server_gets_no_tenant_providers_events(
    clock, smtp, tenant_a
):
    delivery = send_one(tenant_a, make_sender(tenant_a, None), clock)
    assert delivery.sent_via_id is None
    postmark = make_provider(tenant_a, "postmark", {}, {"server_token": "k"})
    assert post(postmark, postmark_bounce(delivery.provider_id)).json()["unknown"] == 1
    assert not DeliveryEvent.objects.exists()


def test_the_channel_neutral_tracking_url_reaches_the_same_provider(clock, httpserver, tenant_a):
    postmark_accepts(httpserver)
    sending = esp_provider(tenant_a, "postmark", httpserver)
    delivery = send_one(tenant_a, make_sender(tenant_a, sending), clock)
    url = reverse("provider_tracking", args=[sending.webhook_token])
    assert url == f"/hooks/providers/{sending.webhook_token}/"
    response = Client().post(
        url,
        data=json.dumps(postmark_bounce(POSTMARK_ID)),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic_auth(sending.webhook_credentials),
    )
    assert response.json()["stored"] == 1
    assert DeliveryEvent.objects.get().delivery == delivery
