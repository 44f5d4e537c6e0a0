"""Operators read endpoints and deliveries in the Django admin; the signing secret never shows in clear."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import EventDelivery
from tests.events.conftest import make_endpoint

pytestmark = pytest.mark.django_db


def test_endpoint_admin_masks_the_secret_and_can_turn_an_endpoint_off(admin_client, tenant_a):
    endpoint = make_endpoint(tenant_a, "https://crm.example.com/events")
    change = reverse("admin:integrations_eventendpoint_change", args=[endpoint.pk])

    page = admin_client.get(change).content.decode()
    assert endpoint.masked_secret in page and endpoint.secret not in page
    admin_client.post(change, {"active": ""})

    endpoint.refresh_from_db()
    assert endpoint.active is False and endpoint.url == "https://crm.example.com/events"


def test_delivery_admin_is_read_only(admin_client, tenant_a):
    endpoint = make_endpoint(tenant_a, "https://crm.example.com/events")
    delivery = EventDelivery.objects.create(
        tenant=tenant_a, endpoint=endpoint, event_type="run.failed", event_id="evt_1", payload={"id": "evt_1"}
    )

    change = reverse("admin:integrations_eventdelivery_change", args=[delivery.pk])

    page = admin_client.get(change)
    assert page.status_code == 200 and "evt_1" in page.content.decode()
    assert admin_client.post(change, {"status": "succeeded"}).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "pending"
