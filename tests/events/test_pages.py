"""The event webhooks page through Django's test client: everyone reads, admins and owners change, the
secret is shown once, the test event round-trips to a real local HTTP server, and another tenant's
endpoint is a 404."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.models import EventDelivery, EventEndpoint
from integrations.signing import compute_signature
from tests.events.conftest import body, make_endpoint, posts

pytestmark = pytest.mark.django_db

LIST = reverse("events:endpoint_list")


def url(name: str, endpoint: EventEndpoint) -> str:
    return reverse(f"events:endpoint_{name}", args=[endpoint.pk])


def test_empty_page_says_what_event_webhooks_are_and_how_to_verify(owner_client):
    page = owner_client.get(LIST).content.decode()

    assert "No endpoint yet" in page
    assert "run.failed" in page and "X-Rowbell-Signature" in page and "hmac.compare_digest" in page
    assert reverse("events:endpoint_add") in page


def test_the_nav_links_to_the_page(member_client):
    assert f'href="{LIST}"' in member_client.get(reverse("workflows:dashboard")).content.decode()


def test_adding_an_endpoint_shows_its_secret_once(owner_client, tenant_a):
    response = owner_client.post(
        reverse("events:endpoint_add"),
        {"url": "https://crm.example.com/hooks/rowbell", "description": "CRM", "events": ["run.failed"]},
    )

    assert response.status_code == 302 and response.url == LIST
    endpoint = EventEndpoint.objects.get()
    assert (endpoint.tenant, endpoint.events, endpoint.active) == (tenant_a, ["run.failed"], True)
    first = owner_client.get(LIST)
    assert endpoint.secret.startswith("whsec_") and endpoint.secret in first.content.decode()
    assert "no-store" in first["Cache-Control"]
    second = owner_client.get(LIST).content.decode()
    assert endpoint.secret not in second
    assert endpoint.masked_secret in second and "https://crm.example.com/hooks/rowbell" in second


def test_an_endpoint_needs_an_http_url_and_an_event(owner_client):
    response = owner_client.post(reverse("events:endpoint_add"), {"url": "ftp://example.com/x", "events": []})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Enter a valid URL." in page and "Choose at least one event." in page
    assert not EventEndpoint.objects.exists()


def test_editing_changes_events_and_can_turn_an_endpoint_off(owner_client, tenant_a):
    endpoint = make_endpoint(tenant_a, "https://a.example.com/")

    response = owner_client.post(
        url("edit", endpoint), {"url": "https://b.example.com/", "events": ["run.partial", "run.failed"]}
    )

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.active) == (
        "https://b.example.com/",
        ["run.partial", "run.failed"],
        False,  # the Active box was not ticked
    )


def test_rotating_makes_a_new_secret_and_shows_it_once(owner_client, tenant_a):
    endpoint = make_endpoint(tenant_a, "https://a.example.com/")
    old = endpoint.secret

    assert owner_client.post(url("rotate", endpoint)).status_code == 302

    endpoint.refresh_from_db()
    assert endpoint.secret != old
    assert endpoint.secret in owner_client.get(LIST).content.decode()
    assert endpoint.secret not in owner_client.get(LIST).content.decode()


def test_deleting_an_endpoint_deletes_its_deliveries(owner_client, tenant_a):
    endpoint = make_endpoint(tenant_a, "https://a.example.com/")
    EventDelivery.objects.create(
        tenant=tenant_a, endpoint=endpoint, event_type="ping", event_id="evt_1", payload={}
    )

    assert owner_client.post(url("delete", endpoint)).status_code == 302

    assert not EventEndpoint.objects.exists() and not EventDelivery.objects.exists()


def test_members_read_the_page_but_change_nothing(member_client, tenant_a, httpserver):
    endpoint = make_endpoint(tenant_a, httpserver.url_for("/events"))

    page = member_client.get(LIST).content.decode()
    assert endpoint.url in page and "Send a test event" not in page and "Rotate secret" not in page

    assert member_client.get(reverse("events:endpoint_add")).status_code == 403
    assert (
        member_client.post(reverse("events:endpoint_add"), {"url": "https://x.example.com/"}).status_code
        == 403
    )
    assert member_client.get(url("edit", endpoint)).status_code == 403
    for action in ("edit", "delete", "rotate", "test"):
        assert member_client.post(url(action, endpoint), {"url": "https://x.example.com/"}).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.url == httpserver.url_for("/events")
    assert posts(httpserver) == []
    assert EventEndpoint.objects.count() == 1


def test_another_tenants_endpoint_is_a_404(outsider_client, tenant_a, httpserver):
    endpoint = make_endpoint(tenant_a, httpserver.url_for("/events"))

    assert endpoint.url not in outsider_client.get(LIST).content.decode()
    assert outsider_client.get(url("edit", endpoint)).status_code == 404
    for action in ("edit", "delete", "rotate", "test"):
        assert outsider_client.post(url(action, endpoint)).status_code == 404
    assert posts(httpserver) == []
    assert EventEndpoint.objects.get().secret == endpoint.secret


def test_the_test_button_sends_a_signed_ping_and_shows_the_answer(owner_client, tenant_a, httpserver):
    endpoint = make_endpoint(tenant_a, httpserver.url_for("/events"))
    httpserver.expect_oneshot_request("/events", method="POST").respond_with_data("pong")

    response = owner_client.post(url("test", endpoint), headers={"HX-Request": "true"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Test event delivered, the endpoint answered HTTP 200." in page
    assert page.startswith(f'<section class="card" id="endpoint-{endpoint.pk}"')  # the card, for htmx to swap
    (request,) = posts(httpserver)
    ping = body(request)
    assert (request.headers["X-Rowbell-Event"], ping["type"]) == ("ping", "ping")
    assert ping["data"] == {"endpoint": {"id": endpoint.pk, "url": endpoint.url, "events": endpoint.events}}
    stamp = request.headers["X-Rowbell-Timestamp"]
    assert request.headers["X-Rowbell-Signature"] == compute_signature(
        endpoint.secret, stamp, request.get_data()
    )
    assert "<code>ping</code>" in page  # in the card's last deliveries


def test_a_failed_test_event_is_shown_and_not_retried(owner_client, tenant_a, httpserver):
    endpoint = make_endpoint(tenant_a, httpserver.url_for("/events"))
    httpserver.expect_request("/events").respond_with_data("boom", status=500)

    response = owner_client.post(url("test", endpoint), follow=True)

    assert "Test event to" in response.content.decode() and "HTTP 500" in response.content.decode()
    delivery = EventDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 1, None)
    assert len(posts(httpserver)) == 1


def test_the_list_costs_the_same_queries_for_many_endpoints_and_shows_five_deliveries_each(
    owner_client, tenant_a
):
    def add_endpoint_with_deliveries(number: int) -> None:
        endpoint = make_endpoint(tenant_a, f"https://{number}.example.com/")
        EventDelivery.objects.bulk_create(
            EventDelivery(
                tenant=tenant_a, endpoint=endpoint, event_type="ping", event_id=f"evt_{i}", payload={}
            )
            for i in range(7)
        )

    add_endpoint_with_deliveries(1)
    with CaptureQueriesContext(connection) as one:
        owner_client.get(LIST)
    for number in (2, 3, 4):
        add_endpoint_with_deliveries(number)
    with CaptureQueriesContext(connection) as four:
        page = owner_client.get(LIST).content.decode()

    assert len(four) == len(one)
    assert page.count("<code>ping</code>") == 4 * 5
