"""Tracking webhooks: each ESP's real payload format, POSTed to the provider's own URL with its credentials,
stored against the message by the provider's message id. Bad credentials: 401, nothing stored. Unknown
messages and replays: 200, ignored. New events go out to the tenant's event webhooks as message.*."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from django.test import Client
from django.urls import reverse

from integrations.models import EventDelivery, EventEndpoint
from runs.models import DeliveryEvent
from tests.emailing.conftest import make_provider

MAILGUN_SIGNING_KEY = "key-mailgun-signing-0123456789"


def url(provider) -> str:
    return reverse("email_tracking", args=[provider.webhook_token])


def basic_auth(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def post(provider, body, *, credentials=None, content_type="application/json", **headers):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    auth = basic_auth(credentials if credentials is not None else provider.webhook_credentials)
    return Client().post(
        url(provider), data=data, content_type=content_type, HTTP_AUTHORIZATION=auth, **headers
    )


def postmark_bounce(message_id: str) -> dict:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "Test",
        "MessageID": message_id,
        "Metadata": {},
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": "ada@example.com",
        "From": "support@acme.example",
        "BouncedAt": "2026-11-26T10:00:05.0000000Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Welcome Ada",
        "Content": "<Full dump of bounce>",
    }


def mailgun_failed(
    message_id: str, token: str = "651869375b9df3c98fc15c4889b102119add1235c38fc92824"
) -> dict:
    timestamp = "1795600000"
    signature = hmac.new(
        MAILGUN_SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": 1795600000.123,
            "recipient": "ada@example.com",
            "message": {"headers": {"message-id": message_id.strip("<>")}},
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "",
            },
        },
    }


def ses_notification(message_id: str) -> tuple[dict, dict]:
    ses_event = {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Transient",
            "bounceSubType": "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": "ada@example.com",
                    "status": "4.2.2",
                    "diagnosticCode": "smtp; 452 4.2.2 Mailbox full",
                }
            ],
            "timestamp": "2026-11-26T10:00:05.000Z",
            "feedbackId": "0100019abc-feedback",
        },
        "mail": {
            "timestamp": "2026-11-26T10:00:00.000Z",
            "source": "support@acme.example",
            "messageId": message_id,
            "destination": ["ada@example.com"],
        },
    }
    sns = {
        "Type": "Notification",
        "MessageId": "19ba9823-d7f2-53c1-860e-cb10e0d13dfc",
        "TopicArn": "arn:aws:sns:us-east-1:111111111111:SES_Tracking",
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-11-26T10:00:05.123Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem",
    }
    headers = {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification", "HTTP_X_AMZ_SNS_MESSAGE_ID": sns["MessageId"]}
    return sns, headers


# kind, the provider id a send stored, the payload (and headers) the ESP posts, the kind and bounce stored
CASES = {
    "postmark": (
        "883953f4-6105-42a2-a16a-77a8eac79483",
        lambda mid: (postmark_bounce(mid), {}),
        "bounced",
        "hard",
    ),
    "sendgrid": (
        "4d3ed0a5-63f7-4ee8-9a2b-0e6f1a1f7b3c",
        lambda mid: (
            [
                {
                    "email": "ada@example.com",
                    "timestamp": 1795600005,
                    "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
                    "event": "bounce",
                    "type": "bounce",
                    "category": [],
                    "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
                    "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                    "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
                    "status": "5.1.1",
                    "anymail_id": mid,
                }
            ],
            {},
        ),
        "bounced",
        "hard",
    ),
    "mailgun": (
        "<20261126100000.1.ABC@acme.example>",
        lambda mid: (mailgun_failed(mid), {}),
        "bounced",
        "hard",
    ),
    "resend": (
        "4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
        lambda mid: (
            {
                "type": "email.bounced",
                "created_at": "2026-11-26T10:00:05.000000Z",
                "data": {
                    "created_at": "2026-11-26 10:00:00.000000+00",
                    "email_id": mid,
                    "from": "Acme Support <support@acme.example>",
                    "to": ["ada@example.com"],
                    "subject": "Welcome Ada",
                    "bounce": {
                        "message": "The recipient's email provider sent a hard bounce message, and the email was not delivered.",
                        "subType": "General",
                        "type": "Permanent",
                    },
                },
            },
            {"HTTP_SVIX_ID": "msg_2pFlOHBeC9ylQ2UZLYkLVLMqZ5M"},
        ),
        "bounced",
        "hard",
    ),
    "brevo": (
        "<202611261000.12345678901@smtp-relay.mailin.fr>",
        lambda mid: (
            {
                "event": "soft_bounce",
                "email": "ada@example.com",
                "id": 1234567,
                "date": "2026-11-26 11:00:05",
                "ts": 1795600005,
                "message-id": mid,
                "ts_event": 1795600005,
                "subject": "Welcome Ada",
                "sending_ip": "185.41.28.109",
                "ts_epoch": 1795600005123,
                "reason": "452 4.2.2 The email account that you tried to reach is over quota.",
            },
            {},
        ),
        "bounced",
        "soft",
    ),
    "amazon_ses": ("0100019abc-ses-message-id-000000", ses_notification, "bounced", "soft"),
}


def sent_via(message, provider) -> None:
    """The message went through `provider` (only its webhook reports on it: test_tracking_matching.py)."""
    message.sent_via = provider
    message.save(update_fields=["sent_via"])


def provider_for(tenant, kind: str):
    secrets = {"webhook_signing_key": MAILGUN_SIGNING_KEY} if kind == "mailgun" else {}
    return make_provider(tenant, kind, {}, {"api_key": "k", **secrets})


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_esps_bounce_is_stored_against_the_message(kind, tenant_a, sent_message):
    provider_id, payload, expected_kind, bounce = CASES[kind]
    sent_message.provider_id = provider_id
    sent_message.save()
    provider = provider_for(tenant_a, kind)
    sent_via(sent_message, provider)
    body, headers = payload(provider_id)
    response = post(provider, body, **headers)
    assert response.status_code == 200, response.content
    (event,) = DeliveryEvent.objects.filter(delivery=sent_message)
    assert (event.kind, event.bounce, event.recipient) == (expected_kind, bounce, "ada@example.com")
    assert event.provider == provider and event.tenant_id == tenant_a.pk
    # The same event again (the ESP retrying, or someone replaying it): accepted, stored once.
    assert post(provider, body, **headers).status_code == 200
    assert DeliveryEvent.objects.filter(delivery=sent_message).count() == 1


@pytest.mark.parametrize("kind", sorted(CASES))
def test_wrong_credentials_are_a_401_and_store_nothing(kind, tenant_a, sent_message):
    provider_id, payload, _kind, _bounce = CASES[kind]
    sent_message.provider_id = provider_id
    sent_message.save()
    provider = provider_for(tenant_a, kind)
    sent_via(sent_message, provider)
    body, headers = payload(provider_id)
    user = provider.webhook_credentials.split(":")[0]
    assert post(provider, body, credentials=f"{user}:guessed", **headers).status_code == 401
    no_auth = Client().post(url(provider), data=json.dumps(body), content_type="application/json", **headers)
    assert no_auth.status_code == 401 and no_auth["WWW-Authenticate"].startswith("Basic")
    assert not DeliveryEvent.objects.exists()


def test_another_providers_credentials_do_not_open_this_one(tenant_a, tenant_b, sent_message):
    sent_message.provider_id = "883953f4-6105-42a2-a16a-77a8eac79483"
    sent_message.save()
    mine, theirs = provider_for(tenant_a, "postmark"), provider_for(tenant_b, "postmark")
    sent_via(sent_message, mine)
    body = postmark_bounce(sent_message.provider_id)
    assert post(mine, body, credentials=theirs.webhook_credentials).status_code == 401
    # Their own URL with their own credentials reaches only their tenant's messages: ignored here.
    assert post(theirs, body).status_code == 200
    assert not DeliveryEvent.objects.exists()


def test_mailgun_with_a_wrong_signature_is_a_401(tenant_a, sent_message):
    sent_message.provider_id = "<20261126100000.1.ABC@acme.example>"
    sent_message.save()
    provider = provider_for(tenant_a, "mailgun")
    sent_via(sent_message, provider)
    body = mailgun_failed(sent_message.provider_id)
    body["signature"]["signature"] = "0" * 64
    assert post(provider, body).status_code == 401
    assert not DeliveryEvent.objects.exists()


def test_unknown_message_ids_are_accepted_and_ignored(tenant_a, sent_message):
    provider = provider_for(tenant_a, "postmark")
    response = post(provider, postmark_bounce("not-a-message-rowbell-sent"))
    assert response.status_code == 200 and response.json()["unknown"] == 1
    assert not DeliveryEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("{not json", "application/json"), ("[1, 2]", "application/json"), (b"\xff\xfe", "text/plain")],
)
def test_garbage_bodies_are_a_400_never_a_500(body, content_type, tenant_a):
    provider = provider_for(tenant_a, "postmark")
    response = post(provider, body, content_type=content_type)
    assert response.status_code == 400
    assert not DeliveryEvent.objects.exists()


def test_unknown_token_and_smtp_providers_have_no_webhook(tenant_a):
    assert Client().post("/hooks/email/nope/", data="{}", content_type="application/json").status_code == 404
    smtp = make_provider(tenant_a, "smtp", {"host": "smtp.example.com", "port": 587, "tls": "starttls"})
    assert post(smtp, {}).status_code == 404


def test_delivered_then_opened_and_clicked_build_a_timeline(tenant_a, sent_message):
    sent_message.provider_id = "883953f4-6105-42a2-a16a-77a8eac79483"
    sent_message.save()
    provider = provider_for(tenant_a, "postmark")
    sent_via(sent_message, provider)
    common = {
        "MessageID": sent_message.provider_id,
        "Recipient": "ada@example.com",
        "Metadata": {},
        "ServerID": 23,
    }
    post(
        provider,
        {"RecordType": "Delivery", "DeliveredAt": "2026-11-26T10:00:02Z", "Details": "250 OK", **common},
    )
    post(provider, {"RecordType": "Open", "ReceivedAt": "2026-11-26T10:05:00Z", "FirstOpen": True, **common})
    post(
        provider,
        {
            "RecordType": "Click",
            "ReceivedAt": "2026-11-26T10:06:00Z",
            "OriginalLink": "https://acme.example/start",
            **common,
        },
    )
    kinds = list(
        DeliveryEvent.objects.filter(delivery=sent_message)
        .order_by("occurred_at")
        .values_list("kind", flat=True)
    )
    assert kinds == ["delivered", "opened", "clicked"]


def test_new_events_go_out_as_message_events_to_subscribed_endpoints(tenant_a, sent_message):
    sent_message.provider_id = "883953f4-6105-42a2-a16a-77a8eac79483"
    sent_message.save()
    bounced = EventEndpoint.objects.create(
        tenant=tenant_a, url="https://hooks.example.com/a", events=["message.bounced"]
    )
    EventEndpoint.objects.create(tenant=tenant_a, url="https://hooks.example.com/b", events=["run.failed"])
    provider = provider_for(tenant_a, "postmark")
    sent_via(sent_message, provider)
    post(provider, postmark_bounce(sent_message.provider_id))
    post(provider, postmark_bounce(sent_message.provider_id))  # a replay announces nothing more
    (delivery,) = EventDelivery.objects.all()
    assert delivery.endpoint == bounced and delivery.event_type == "message.bounced"
    data = delivery.payload["data"]
    assert data["message"]["id"] == sent_message.pk and data["event"]["bounce"] == "hard"
    assert "does not exist" in data["event"]["mta_response"]
