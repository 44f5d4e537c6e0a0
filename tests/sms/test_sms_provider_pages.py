"""The test-only SMS provider gets every provider page from its own modules alone: the channel's list, the
kind's credentials form (secrets encrypted, masked, kept when left empty), a test send to a phone number
with the gateway's answer in words, and a tracking webhook whose reports become delivery events and, for
an undeliverable number, an entry on the SMS suppression list (keyed by channel and number)."""

from __future__ import annotations

import base64
import json

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from consent.models import Suppression
from integrations.models import Provider
from runs.engine import start_run
from runs.models import Delivery, DeliveryEvent
from tenants.models import AuditEvent
from tests.engine.conftest import settle
from tests.sms.test_sms_channel import answer, sms_provider, sms_workflow
from tests.support import signed_in

pytestmark = pytest.mark.django_db(transaction=True)


def page(channel: str = "sms", name: str = "settings", **kwargs) -> str:
    return reverse(f"providers:{name}", kwargs={"channel": channel, **kwargs})


def credentials(gateway, **changes) -> dict:
    return {
        "name": "Gateway",
        "api_url": gateway.url_for("/"),
        "api_key": "sms-secret-key-0123456789",
        **changes,
    }


def test_the_sms_list_offers_the_sms_kinds_only(sms, owner, tenant_a, gateway):
    sms_provider(tenant_a, gateway)
    body = signed_in(Client(), owner).get(page()).content.decode()
    assert "SMS providers" in body and "SMS gateway" in body
    assert f"{page(name='provider_add')}?kind=test_sms" in body
    assert "Postmark" not in body and "SMTP server" not in body


def test_each_channels_page_says_when_it_has_no_provider(sms, owner, tenant_a):
    client = signed_in(Client(), owner)
    assert "No SMS provider yet." in client.get(page()).content.decode()
    email = client.get("/settings/email/").content.decode()
    assert "No provider yet: Rowbell's own mail server sends every email." in email


def test_the_menu_links_to_the_providers_of_each_channel_with_provider_kinds(sms, owner, tenant_a):
    """Email's providers are on its own page (the menu's "Email"); SMS, registered in one line, gets a
    menu link to /settings/providers/sms/ without more code; channels without provider kinds get none."""
    menu = signed_in(Client(), owner).get(reverse("workflows:dashboard")).content.decode()
    assert f'<a href="{page()}">SMS</a>' in menu
    assert f'<a href="{reverse("email:settings")}">Email</a>' in menu
    for channel in ("email", "http", "slack"):
        assert f'href="{page(channel)}"' not in menu


def test_without_another_channel_the_menu_has_no_provider_link(owner, tenant_a):
    menu = signed_in(Client(), owner).get(reverse("workflows:dashboard")).content.decode()
    assert "/settings/providers/" not in menu
    assert f'<a href="{reverse("email:settings")}">Email</a>' in menu


@pytest.mark.parametrize("channel", ["nope", "http", "slack"])
def test_a_channel_without_provider_kinds_has_no_provider_pages(sms, owner, channel):
    client = signed_in(Client(), owner)
    assert client.get(page(channel)).status_code == 404
    assert client.get(page(channel, "provider_add") + "?kind=test_sms").status_code == 404


def test_an_email_kind_is_not_added_under_sms_nor_sms_under_email(sms, owner, gateway):
    client = signed_in(Client(), owner)
    assert client.get(page(name="provider_add") + "?kind=postmark").status_code == 404
    assert client.get(page("email", "provider_add") + "?kind=test_sms").status_code == 404
    assert client.get(page(name="provider_add") + "?kind=").status_code == 404


def test_the_credentials_form_is_the_kinds_and_its_secret_is_encrypted_and_masked(
    sms, owner, tenant_a, gateway
):
    client = signed_in(Client(), owner)
    form = client.get(page(name="provider_add") + "?kind=test_sms").content.decode()
    assert 'name="api_url"' in form and 'type="password"' in form and 'name="api_key"' in form

    response = client.post(page(name="provider_add") + "?kind=test_sms", credentials(gateway))
    provider = Provider.objects.get()
    assert response.status_code == 302 and response["Location"] == page(
        name="provider", provider_id=provider.pk
    )
    assert (provider.channel, provider.kind, provider.settings["api_url"]) == (
        "sms",
        "test_sms",
        gateway.url_for("/"),
    )
    assert provider.secret_values == {"api_key": "sms-secret-key-0123456789"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM integrations_provider WHERE id = %s", [provider.pk])
        assert "sms-secret-key" not in cursor.fetchone()[0]
    detail = client.get(response["Location"]).content.decode()
    assert "sms-secret-key-0123456789" not in detail and "6789" in detail  # masked: only the ends show
    assert "Send a test SMS" in detail and 'name="to"' in detail
    assert AuditEvent.objects.filter(
        action="provider.created", details__channel="sms", tenant=tenant_a
    ).exists()

    # Left empty, the saved key stays; the audit log names the changed setting, never the secret.
    response = client.post(
        page(name="provider", provider_id=provider.pk), credentials(gateway, name="Renamed", api_key="")
    )
    provider.refresh_from_db()
    assert response.status_code == 302 and provider.name == "Renamed"
    assert provider.secret_values == {"api_key": "sms-secret-key-0123456789"}
    event = AuditEvent.objects.get(action="provider.changed")
    assert "sms-secret" not in json.dumps(event.details) and "name" in json.dumps(event.details)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"api_key": ""}, "This field is required"),
        ({"api_url": "not a url"}, "Enter a valid URL"),
        ({"api_url": "http://169.254.169.254/"}, "169.254.169.254"),
        ({"name": ""}, "This field is required"),
    ],
)
def test_bad_credentials_are_form_errors_and_nothing_is_saved(sms, owner, gateway, settings, changes, words):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    response = signed_in(Client(), owner).post(
        page(name="provider_add") + "?kind=test_sms", credentials(gateway, **changes)
    )
    assert response.status_code == 200 and words in response.content.decode()
    assert not Provider.objects.exists()


def test_a_test_sms_goes_to_the_phone_number_and_its_answer_is_shown(sms, owner, tenant_a, gateway):
    gateway.expect_request("/messages", method="POST").respond_with_handler(answer)
    provider = sms_provider(tenant_a, gateway)
    client = signed_in(Client(), owner)
    response = client.post(
        page(name="provider_test", provider_id=provider.pk), {"to": "+15550000001"}, follow=True
    )
    provider.refresh_from_db()
    assert provider.last_test_ok is True
    assert "Accepted by Test SMS gateway; its message id is sms-+15550000001." in response.content.decode()
    [(request, _)] = gateway.log
    assert json.loads(request.get_data())["to"] == "+15550000001"
    assert request.headers["Authorization"] == "Bearer sms-key-123"
    assert AuditEvent.objects.filter(action="provider.tested").exists()


def test_a_refused_test_sms_says_why_and_a_bad_number_sends_nothing(sms, owner, tenant_a, gateway):
    gateway.expect_request("/messages", method="POST").respond_with_handler(answer)
    provider = sms_provider(tenant_a, gateway)
    client = signed_in(Client(), owner)
    body = client.post(
        page(name="provider_test", provider_id=provider.pk), {"to": "+15550000400"}, follow=True
    ).content.decode()
    provider.refresh_from_db()
    assert provider.last_test_ok is False
    assert "Refused (not retried): Test SMS gateway answered HTTP 400" in body and "Invalid number" in body

    for bad in ("12345", "+1 555 000", "ada@example.com", ""):
        body = client.post(
            page(name="provider_test", provider_id=provider.pk), {"to": bad}, follow=True
        ).content.decode()
        assert "Test SMS not sent" in body, bad
    assert len(gateway.log) == 1  # only the first test reached the gateway


def test_an_unreachable_gateway_is_an_answer_not_a_500(sms, owner, tenant_a, gateway):
    provider = sms_provider(tenant_a, gateway)
    provider.settings = {"api_url": "http://127.0.0.1:9/"}  # nothing listens on the discard port
    provider.save()
    client = signed_in(Client(), owner)
    response = client.post(
        page(name="provider_test", provider_id=provider.pk), {"to": "+15550000001"}, follow=True
    )
    assert response.status_code == 200
    assert "a temporary problem; sending would be retried" in response.content.decode()


def test_members_read_outsiders_get_404_and_nobody_else_sees_the_webhook_password(
    sms, member, outsider, owner, tenant_a, gateway
):
    provider = sms_provider(tenant_a, gateway)
    password = provider.webhook_credentials.split(":")[1]
    client = signed_in(Client(), member)
    body = client.get(page(name="provider", provider_id=provider.pk)).content.decode()
    assert "SMS gateway" in body and password not in body
    assert (
        client.post(page(name="provider_test", provider_id=provider.pk), {"to": "+15550000001"}).status_code
        == 403
    )
    assert client.post(page(name="provider_delete", provider_id=provider.pk)).status_code == 403
    stranger = signed_in(Client(), outsider)
    for name in ("provider", "provider_test", "provider_delete"):
        assert stranger.post(page(name=name, provider_id=provider.pk), {"to": "+1555"}).status_code == 404
    admin_page = (
        signed_in(Client(), owner).get(page(name="provider", provider_id=provider.pk)).content.decode()
    )
    assert (
        f"://{provider.webhook_credentials}@testserver/hooks/providers/{provider.webhook_token}/"
        in admin_page
    )
    assert Provider.objects.get().name == "SMS gateway" and not gateway.log


def test_deleting_an_sms_provider(sms, owner, tenant_a, gateway):
    provider = sms_provider(tenant_a, gateway)
    response = signed_in(Client(), owner).post(page(name="provider_delete", provider_id=provider.pk))
    assert response.status_code == 302 and response["Location"] == page()
    assert not Provider.objects.exists()
    assert AuditEvent.objects.filter(action="provider.deleted").exists()


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def post_reports(client: Client, provider: Provider, reports, auth: str | None = None):
    headers = {"HTTP_AUTHORIZATION": auth if auth is not None else basic(provider.webhook_credentials)}
    body = reports if isinstance(reports, str) else json.dumps({"reports": reports})
    return client.post(
        reverse("provider_tracking", args=[provider.webhook_token]),
        body,
        content_type="application/json",
        **headers,
    )


def test_delivery_reports_become_events_and_an_undeliverable_number_is_suppressed(
    sms, clock, tenant_a, gateway
):
    gateway.expect_request("/messages", method="POST").respond_with_handler(answer)
    provider = sms_provider(tenant_a, gateway)
    workflow = sms_workflow(tenant_a, provider)
    for n, phone in enumerate(("+15550000001", "+15550000002", "+15550000003")):
        start_run(workflow, {"phone": phone, "name": f"P{n}"}, f"e{n}")
    settle(clock)
    assert Delivery.objects.filter(status="sent").count() == 3
    reports = [
        {
            "id": "r1",
            "message_id": "sms-+15550000001",
            "status": "delivered",
            "to": "+15550000001",
            "at": "2026-12-07T10:00:00+00:00",
        },
        {
            "id": "r2",
            "message_id": "sms-+15550000002",
            "status": "undeliverable",
            "to": "+15550000002",
            "error": "Number not in service",
        },
        {"id": "r3", "message_id": "sms-+15550000003", "status": "carrier_failure", "to": "+15550000003"},
        {"id": "r4", "message_id": "sms-unknown", "status": "delivered", "to": "+15559999999"},
        {"id": "r5", "message_id": "sms-+15550000001", "status": "some_status_we_do_not_know"},
    ]
    client = Client()
    response = post_reports(client, provider, reports)
    assert response.status_code == 200, response.content
    assert response.json() == {"stored": 3, "unknown": 1, "duplicate": 0}
    events = {
        e.recipient: (e.kind, e.bounce, e.provider_id, e.delivery.channel)
        for e in DeliveryEvent.objects.select_related("delivery")
    }
    assert events == {
        "+15550000001": ("delivered", "", provider.pk, "sms"),
        "+15550000002": ("bounced", "hard", provider.pk, "sms"),
        "+15550000003": ("bounced", "soft", provider.pk, "sms"),
    }
    # The hard bounce alone is suppressed, on the SMS channel's list (not email's), with the gateway's words.
    [entry] = Suppression.objects.all()
    bounced = Delivery.objects.get(recipient="+15550000002")
    assert (entry.channel, entry.address, entry.reason, entry.delivery_id) == (
        "sms",
        "+15550000002",
        "hard_bounce",
        bounced.pk,
    )
    assert entry.detail == "Number not in service"
    # A replay stores nothing twice.
    assert post_reports(client, provider, reports).json() == {"stored": 0, "unknown": 1, "duplicate": 3}
    assert DeliveryEvent.objects.count() == 3 and Suppression.objects.count() == 1
    # The next SMS to the undeliverable number is skipped, with the reason; the soft bounce's is sent.
    for n, phone in enumerate(("+15550000002", "+15550000003")):
        start_run(workflow, {"phone": phone, "name": "again"}, f"again{n}")
    settle(clock)
    again = {
        d.recipient: (d.status, d.error) for d in Delivery.objects.filter(run__event_key__startswith="again")
    }
    assert again["+15550000003"] == ("sent", "")
    assert again["+15550000002"][0] == "skipped" and "hard bounce" in again["+15550000002"][1]
    # An email suppression of the same string is another channel's: it never skips an SMS.
    Suppression.objects.create(tenant=tenant_a, channel="email", address="+15550000001", reason="manual")
    start_run(workflow, {"phone": "+15550000001", "name": "again"}, "again-email")
    settle(clock)
    assert Delivery.objects.get(run__event_key="again-email").status == "sent"


def test_the_webhook_refuses_strangers_and_unreadable_bodies_without_storing(sms, clock, tenant_a, gateway):
    gateway.expect_request("/messages", method="POST").respond_with_handler(answer)
    provider = sms_provider(tenant_a, gateway)
    start_run(sms_workflow(tenant_a, provider), {"phone": "+15550000001", "name": "A"}, "e1")
    settle(clock)
    report = [{"id": "r1", "message_id": "sms-+15550000001", "status": "undeliverable", "to": "+15550000001"}]
    client = Client()
    user = provider.webhook_credentials.split(":")[0]
    for auth in ("", basic(f"{user}:wrong"), "Bearer " + provider.webhook_credentials, "Basic !!!"):
        response = post_reports(client, provider, report, auth=auth)
        assert response.status_code == 401 and "WWW-Authenticate" in response, auth
    for body in ("not json", "[]", '{"reports": [{"status": "delivered"}]}', '{"reports": 7}', "{}"):
        assert post_reports(client, provider, body).status_code == 400, body
    assert not DeliveryEvent.objects.exists() and not Suppression.objects.exists()
    # Another SMS provider of the tenant cannot report on this provider's message.
    other = Provider(
        tenant=tenant_a, kind="test_sms", name="Other", settings={"api_url": gateway.url_for("/")}
    )
    other.save()
    assert post_reports(client, other, report).json() == {"stored": 0, "unknown": 1, "duplicate": 0}
    url = reverse("provider_tracking", args=[provider.webhook_token])
    assert client.get(url).status_code == 200 and client.put(url).status_code == 405
    assert client.post(reverse("provider_tracking", args=["no-such-token"])).status_code == 404
    Provider.objects.filter(pk=other.pk).update(kind="a_kind_since_removed")
    assert post_reports(client, other, report).status_code == 404
    assert not DeliveryEvent.objects.exists() and not Suppression.objects.exists()
