"""The email settings pages: who may do what, secrets encrypted and masked, refused hosts, the test send's
answer in words (never a 500), senders and the default, the audit log, the step's sender picker and files."""

from __future__ import annotations

import base64
import re

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from integrations.models import Provider, Sender
from tenants.models import AuditEvent
from tests.emailing.conftest import esp_provider, make_provider, make_sender, smtp_provider_for
from tests.support import signed_in
from workflows.files import WorkflowFileError, export_workflow, import_workflow

POSTMARK = {"name": "Postmark", "server_token": "pm-token-0123456789abcdef", "api_url": ""}


def test_admin_adds_a_provider_whose_secret_is_encrypted_and_shown_masked(owner, tenant_a):
    response = signed_in(Client(), owner).post(reverse("email:provider_add") + "?kind=postmark", POSTMARK)
    provider = Provider.objects.get(tenant=tenant_a)
    assert response.status_code == 302 and provider.secret_values["server_token"] == POSTMARK["server_token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM integrations_provider WHERE id = %s", [provider.pk])
        (stored,) = cursor.fetchone()
    assert "pm-token" not in stored
    page = signed_in(Client(), owner).get(reverse("email:provider", args=[provider.pk])).content.decode()
    assert POSTMARK["server_token"] not in page and "cdef" in page  # masked: only the end shows
    assert AuditEvent.objects.filter(action="email_provider.created", tenant=tenant_a).exists()


def test_saving_with_an_empty_secret_keeps_the_saved_one(owner, tenant_a):
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "keep-me"}, name="PM")
    signed_in(Client(), owner).post(
        reverse("email:provider", args=[provider.pk]), {"name": "PM renamed", "server_token": ""}
    )
    provider.refresh_from_db()
    assert provider.name == "PM renamed" and provider.secret_values["server_token"] == "keep-me"
    event = AuditEvent.objects.get(action="email_provider.changed")
    assert "keep-me" not in str(event.details)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "localhost", "[::1]"])
def test_an_smtp_host_inside_the_network_is_refused_on_save(owner, tenant_a, host, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    data = {"name": "Own", "host": host, "port": "587", "tls": "starttls", "username": "", "password": ""}
    response = signed_in(Client(), owner).post(reverse("email:provider_add") + "?kind=smtp", data)
    assert response.status_code == 200 and "Refused" in response.content.decode()
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("port", "99999", "between 1 and 65535"),
        ("host", "smtp.example.com:25", "without a scheme"),
        ("tls", "maybe", "valid choice"),
    ],
)
def test_bad_smtp_settings_are_form_errors(owner, field, value, words):
    data = {"name": "Own", "host": "smtp.example.com", "port": "587", "tls": "starttls"}
    data[field] = value
    response = signed_in(Client(), owner).post(reverse("email:provider_add") + "?kind=smtp", data)
    assert response.status_code == 200 and words in response.content.decode()
    assert not Provider.objects.exists()


def test_members_read_but_do_not_manage_and_never_see_the_webhook_password(member, tenant_a):
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "t"})
    client = signed_in(Client(), member)
    assert client.get(reverse("email:settings")).status_code == 200
    page = client.get(reverse("email:provider", args=[provider.pk])).content.decode()
    assert provider.webhook_credentials.split(":")[1] not in page
    assert client.post(reverse("email:provider_add") + "?kind=postmark", POSTMARK).status_code == 403
    assert (
        client.post(reverse("email:provider_test", args=[provider.pk]), {"to": "a@b.example"}).status_code
        == 403
    )
    assert client.post(reverse("email:provider_delete", args=[provider.pk])).status_code == 403
    assert client.post(reverse("email:sender_add"), {"name": "x"}).status_code == 403
    assert Provider.objects.count() == 1 and not Sender.objects.exists()


def test_another_tenants_provider_is_a_404(outsider, tenant_a):
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "t"})
    client = signed_in(Client(), outsider)
    for name in ("email:provider", "email:provider_test", "email:provider_delete"):
        assert client.post(reverse(name, args=[provider.pk]), {"to": "a@b.example"}).status_code == 404


def test_the_admin_sees_the_tracking_url_with_its_credentials(owner, tenant_a):
    provider = make_provider(tenant_a, "mailgun", {}, {"api_key": "k"})
    page = signed_in(Client(), owner).get(reverse("email:provider", args=[provider.pk])).content.decode()
    assert f"://{provider.webhook_credentials}@testserver/hooks/email/{provider.webhook_token}/" in page


def test_a_failed_test_send_says_what_the_provider_answered(owner, tenant_a, httpserver):
    httpserver.expect_request("/email").respond_with_json(
        {
            "ErrorCode": 10,
            "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid.",
        },
        status=401,
    )
    provider = esp_provider(tenant_a, "postmark", httpserver)
    response = signed_in(Client(), owner).post(
        reverse("email:provider_test", args=[provider.pk]), {"to": "me@acme.example"}, follow=True
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Postmark refused the credentials (HTTP 401)" in page and "Server Token you provided" in page
    provider.refresh_from_db()
    assert provider.last_test_ok is False


def test_a_test_send_to_an_unreachable_smtp_host_is_an_answer_not_a_500(owner, tenant_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    provider = smtp_provider_for(tenant_a, 9)  # nothing listens on the discard port
    response = signed_in(Client(), owner).post(
        reverse("email:provider_test", args=[provider.pk]), {"to": "me@acme.example"}, follow=True
    )
    assert response.status_code == 200 and "could not be reached" in response.content.decode()


def test_a_successful_test_send_names_the_message_id(owner, tenant_a, auth_smtp):
    provider = smtp_provider_for(tenant_a, auth_smtp.port)
    sender = make_sender(tenant_a, provider)
    data = {"to": "me@acme.example", "sender": sender.pk}
    response = signed_in(Client(), owner).post(
        reverse("email:provider_test", args=[provider.pk]), data, follow=True
    )
    (mail,) = auth_smtp.messages
    assert mail["From"] == "Acme Support <support@acme.example>" and mail["To"] == "me@acme.example"
    assert "Accepted by SMTP server" in response.content.decode()


def test_a_provider_in_use_is_not_deleted(owner, tenant_a):
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "t"})
    make_sender(tenant_a, provider)
    response = signed_in(Client(), owner).post(
        reverse("email:provider_delete", args=[provider.pk]), follow=True
    )
    assert "used by these senders: Support" in response.content.decode()
    assert Provider.objects.filter(pk=provider.pk).exists()


def test_one_default_sender_and_header_values_on_one_line(owner, tenant_a):
    client = signed_in(Client(), owner)
    first = {
        "name": "Support",
        "from_name": "Acme",
        "from_address": "support@acme.example",
        "is_default": "on",
    }
    second = {
        "name": "Billing",
        "from_name": "Acme Billing",
        "from_address": "billing@acme.example",
        "is_default": "on",
    }
    assert client.post(reverse("email:sender_add"), first).status_code == 302
    assert client.post(reverse("email:sender_add"), second).status_code == 302
    assert list(Sender.objects.filter(is_default=True).values_list("name", flat=True)) == ["Acme Billing"]
    # One name field: the sender is listed by the name its email is from; a second "Acme" gets its address.
    page = client.get(reverse("email:sender_add")).content.decode()
    assert 'name="name"' not in page and page.count('name="from_name"') == 1
    again = {"from_name": "Acme", "from_address": "hello@acme.example"}
    assert client.post(reverse("email:sender_add"), again).status_code == 302
    assert Sender.objects.filter(name="Acme <hello@acme.example>").exists()
    bad = {"name": "Evil", "from_name": "Acme\r\nBcc: x@evil.example", "from_address": "a@acme.example"}
    response = client.post(reverse("email:sender_add"), bad)
    assert response.status_code == 200 and "One line only" in response.content.decode()
    assert AuditEvent.objects.filter(action="sender.created").count() == 3


def test_a_sender_cannot_use_another_tenants_provider(owner, tenant_a, tenant_b):
    theirs = make_provider(tenant_b, "postmark", {}, {"server_token": "t"})
    data = {"name": "S", "from_address": "s@acme.example", "provider": theirs.pk}
    response = signed_in(Client(), owner).post(reverse("email:sender_add"), data)
    assert response.status_code == 200 and not Sender.objects.exists()


def test_the_email_step_offers_the_tenants_senders(owner, tenant_a, tenant_b):
    from tests.engine.conftest import build_workflow, email, webhook

    make_sender(tenant_a, name="Support", address="support@acme.example")
    make_sender(tenant_b, name="Globex CEO", address="ceo@globex.example")
    workflow = build_workflow(tenant_a, webhook([email()]), publish_it=False)
    step = workflow.versions.get().steps.get(kind="send_email")
    page = (
        signed_in(Client(), owner)
        .get(reverse("workflows:step_panel", args=[workflow.pk, step.pk]))
        .content.decode()
    )
    select = re.search(r'<select id="f-sender".*?</select>', page, re.S).group(0)
    assert "Default: Support — support@acme.example" in select
    assert "Globex" not in select and "ceo@globex.example" not in select


def test_workflow_files_name_the_sender_and_import_finds_it_by_name(tenant_a, tenant_b):
    from tests.engine.conftest import build_workflow, email, webhook

    sender = make_sender(tenant_a, name="Support")
    workflow = build_workflow(tenant_a, webhook([email(sender=sender.pk)]))
    data = export_workflow(workflow)
    assert data["trigger"]["children"][0]["config"]["sender"] == {"name": "Support"}
    with pytest.raises(WorkflowFileError, match="no email sender named “Support”"):
        import_workflow(data, tenant_b)
    theirs = make_sender(tenant_b, name="Support", address="support@globex.example")
    imported = import_workflow(data, tenant_b)
    step = imported.versions.get().steps.get(kind="send_email")
    assert step.config["sender"] == theirs.pk


def test_an_operator_can_still_delete_a_tenant_with_providers_and_senders(tenant_a):
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "t"})
    make_sender(tenant_a, provider)
    tenant_a.delete()  # the sender's PROTECT on its provider does not block: both go
    assert not Provider.objects.exists() and not Sender.objects.exists()


def test_the_builder_refuses_another_tenants_sender_like_a_missing_one(member, tenant_a, tenant_b):
    from tests.security.test_cross_tenant_refs import draft_with
    from workflows.models import WorkflowVersion

    ours = make_sender(tenant_a)
    theirs = make_sender(tenant_b, name="Globex", address="ceo@globex.example")
    config = {"sender": ours.pk, "to": "{{ item.email }}", "subject": "Hi", "text": "Hi"}
    workflow, step = draft_with(tenant_a, "send_email", config, name="Welcome")
    client = signed_in(Client(), member)
    for foreign in (theirs.pk, theirs.pk + 1000):
        revision = WorkflowVersion.objects.get(pk=step.version_id).revision
        response = client.post(
            f"/workflows/{workflow.pk}/steps/{step.pk}/save/",
            {"name": step.name, "revision": revision, "config-sender": foreign},
        )
        page = response.content.decode()
        assert response.status_code == 200 and "This sender does not exist" in page
        assert "Globex" not in page and "ceo@globex.example" not in page
        step.refresh_from_db()
        assert step.config["sender"] == ours.pk


def test_operators_see_providers_in_the_admin_without_any_credential(tenant_a, owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    provider = make_provider(tenant_a, "postmark", {}, {"server_token": "pm-secret-token"})
    client = signed_in(Client(), owner)
    page = client.get(reverse("admin:integrations_provider_change", args=[provider.pk])).content.decode()
    assert provider.name in page
    assert "pm-secret-token" not in page and provider.webhook_credentials.split(":")[1] not in page
    assert client.get(reverse("admin:integrations_sender_changelist")).status_code == 200


def test_a_sendgrid_verification_key_that_is_not_a_public_key_is_refused_and_never_a_500(owner, tenant_a):
    data = {"name": "SG", "api_key": "SG.key", "verification_key": "not-a-key", "api_url": ""}
    response = signed_in(Client(), owner).post(reverse("email:provider_add") + "?kind=sendgrid", data)
    assert response.status_code == 200 and "Not a public key" in response.content.decode()
    assert not Provider.objects.exists()
    # One saved before the form checked it: its webhook refuses (401), it does not fail (500).
    provider = make_provider(
        tenant_a, "sendgrid", {"api_url": ""}, {"api_key": "k", "verification_key": "x-y"}
    )
    auth = "Basic " + base64.b64encode(provider.webhook_credentials.encode()).decode()
    url = reverse("email_tracking", args=[provider.webhook_token])
    answer = Client().post(url, "[]", content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert answer.status_code == 401 and "cannot verify" in answer.json()["error"]
