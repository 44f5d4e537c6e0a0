"""Sending through a tenant's provider: anymail's real ESP backends against a local server that answers like
each ESP's API, and a real SMTP server with AUTH. Errors: transient or permanent per provider, their words kept."""

from __future__ import annotations

import base64
import json
import re
import socket
from urllib.parse import unquote_plus

import pytest
from werkzeug.wrappers import Response

from integrations.channels.base import ChannelError
from integrations.channels.email import EmailChannel
from tests.emailing.conftest import SMTP_PASSWORD, SMTP_USER, esp_provider, make_provider

ANY = re.compile(".*")

# kind: (path the API is called at, status, answer, the message id Rowbell must keep (None: anymail's own))
ESP_ANSWERS = {
    "postmark": (
        "/email",
        200,
        {
            "To": "ada@example.com",
            "SubmittedAt": "2026-11-26T10:00:00Z",
            "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
            "ErrorCode": 0,
            "Message": "OK",
        },
        "b7bc2f4a-e38e-4336-af7d-e6c392c2f817",
    ),
    "sendgrid": ("/mail/send", 202, "", None),
    "mailgun": (
        "/v3/acme.example/messages",
        200,
        {"id": "<20261126100000.1.ABC@acme.example>", "message": "Queued. Thank you."},
        "<20261126100000.1.ABC@acme.example>",
    ),
    "resend": (
        "/emails",
        200,
        {"id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"},
        "4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
    ),
    "brevo": (
        "/smtp/email",
        201,
        {"messageId": "<202611261000.12345678901@smtp-relay.mailin.fr>"},
        "<202611261000.12345678901@smtp-relay.mailin.fr>",
    ),
    "amazon_ses": (
        "/v2/email/outbound-emails",
        200,
        {"MessageId": "0100019abc-ses-message-id-000000"},
        "0100019abc-ses-message-id-000000",
    ),
}


def message(provider, **extra) -> dict:
    return {
        "to": "ada@example.com",
        "subject": "Welcome Ada",
        "text": "Hi Ada",
        "html": "<p>Hi Ada</p>",
        "from": "Acme Support <support@acme.example>",
        "reply_to": "help@acme.example",
        "cc": ["team@acme.example"],
        "provider": provider,
        **extra,
    }


def send(provider, **extra) -> str:
    channel = EmailChannel()
    try:
        return channel.send(message(provider, **extra))
    finally:
        channel.close()


def readable(kind: str, body: str) -> str:
    """The request as text: Mailgun posts a form, SES a JSON with the raw MIME message in base64."""
    if kind == "amazon_ses":
        return body + base64.b64decode(json.loads(body)["Content"]["Raw"]["Data"]).decode()
    return unquote_plus(body)


def answer(status: int, body) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(text, status=status, content_type="application/json")


@pytest.mark.parametrize("kind", sorted(ESP_ANSWERS))
def test_each_esp_gets_the_message_and_its_id_is_kept(kind, httpserver, tenant_a):
    path, status, body, expected_id = ESP_ANSWERS[kind]
    httpserver.expect_request(ANY).respond_with_response(answer(status, body))
    provider = esp_provider(tenant_a, kind, httpserver)
    provider_id = send(provider)
    (request, _response) = httpserver.log[-1]
    assert request.path == path and request.method == "POST"
    sent = readable(kind, request.get_data(as_text=True))
    # The From, Reply-To and CC the step chose reach the ESP (each API spells them its own way).
    assert "support@acme.example" in sent and "help@acme.example" in sent and "team@acme.example" in sent
    assert "ada@example.com" in sent
    if expected_id is None:  # SendGrid answers no id: anymail's own, sent as a custom arg, is the key
        assert re.fullmatch(r"[0-9a-f-]{36}", provider_id) and provider_id in sent
    else:
        assert provider_id == expected_id


def test_credentials_reach_the_esp_from_the_provider_record(httpserver, tenant_a, settings):
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "platform-token-must-not-be-used"}
    httpserver.expect_request("/email").respond_with_response(answer(200, ESP_ANSWERS["postmark"][2]))
    send(esp_provider(tenant_a, "postmark", httpserver))
    assert httpserver.log[-1][0].headers["X-Postmark-Server-Token"] == "test-key-123"


# kind, status, answer, extra headers, permanent?, words the error must keep
ESP_ERRORS = [
    (
        "postmark",
        401,
        {
            "ErrorCode": 10,
            "Message": "The Server Token you provided in the X-Postmark-Server-Token request header was invalid.",
        },
        {},
        True,
        "Server Token you provided",
    ),
    (
        "postmark",
        422,
        {
            "ErrorCode": 400,
            "Message": "The 'From' address you supplied (support@acme.example) is not a Sender Signature on your account.",
        },
        {},
        True,
        "not a Sender Signature",
    ),
    ("postmark", 429, {"ErrorCode": 429, "Message": "Rate limit exceeded."}, {}, False, "Rate limit"),
    (
        "postmark",
        500,
        {"ErrorCode": 500, "Message": "Internal server error."},
        {},
        False,
        "Internal server error",
    ),
    (
        "sendgrid",
        401,
        {
            "errors": [
                {
                    "message": "The provided authorization grant is invalid, expired, or revoked",
                    "field": None,
                    "help": None,
                }
            ]
        },
        {},
        True,
        "authorization grant is invalid",
    ),
    (
        "sendgrid",
        403,
        {
            "errors": [
                {"message": "The from address does not match a verified Sender Identity.", "field": "from"}
            ]
        },
        {},
        True,
        "verified Sender Identity",
    ),
    ("sendgrid", 503, "Service Unavailable", {}, False, "503"),
    ("mailgun", 401, "Forbidden", {}, True, "Forbidden"),
    (
        "mailgun",
        400,
        {"message": "to parameter is not a valid address. please check documentation"},
        {},
        True,
        "not a valid address",
    ),
    (
        "resend",
        429,
        {
            "statusCode": 429,
            "message": "Too many requests. You can only make 2 requests per second.",
            "name": "rate_limit_exceeded",
        },
        {},
        False,
        "Too many requests",
    ),
    (
        "resend",
        403,
        {
            "statusCode": 403,
            "message": "The acme.example domain is not verified. Please, add and verify your domain.",
            "name": "validation_error",
        },
        {},
        True,
        "domain is not verified",
    ),
    (
        "brevo",
        400,
        {"code": "invalid_parameter", "message": "email is not valid in to"},
        {},
        True,
        "email is not valid",
    ),
    ("brevo", 502, "Bad Gateway", {}, False, "502"),
    (
        "amazon_ses",
        400,
        {
            "message": "Email address is not verified. The following identities failed the check in region US-EAST-1: support@acme.example"
        },
        {"x-amzn-ErrorType": "MessageRejected"},
        True,
        "Email address is not verified",
    ),
    (
        "amazon_ses",
        403,
        {"message": "The security token included in the request is invalid."},
        {"x-amzn-ErrorType": "UnrecognizedClientException"},
        True,
        "refused the credentials",
    ),
    (
        "amazon_ses",
        429,
        {"message": "Maximum sending rate exceeded."},
        {"x-amzn-ErrorType": "TooManyRequestsException"},
        False,
        "Maximum sending rate",
    ),
]


@pytest.mark.parametrize(("kind", "status", "body", "headers", "permanent", "words"), ESP_ERRORS)
def test_esp_errors_are_transient_or_permanent_with_the_providers_words(
    kind, status, body, headers, permanent, words, httpserver, tenant_a
):
    response = answer(status, body)
    for name, value in headers.items():
        response.headers[name] = value
    httpserver.expect_request(ANY).respond_with_response(response)
    with pytest.raises(ChannelError) as error:
        send(esp_provider(tenant_a, kind, httpserver))
    assert error.value.permanent is permanent
    assert words in error.value.message


def test_an_esp_that_cannot_be_reached_is_a_transient_error(tenant_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    provider = make_provider(
        tenant_a, "postmark", {"api_url": f"http://127.0.0.1:{port}/"}, {"server_token": "t"}
    )
    with pytest.raises(ChannelError) as error:
        send(provider)
    assert not error.value.permanent and "could not be reached" in error.value.message


@pytest.mark.parametrize("kind", ["postmark", "sendgrid", "mailgun", "resend", "brevo", "amazon_ses"])
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/", "http://169.254.169.254/", "http://[::ffff:10.0.0.1]/"]
)
def test_an_esp_url_inside_the_network_is_refused_before_any_request(kind, url, tenant_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    field = "endpoint_url" if kind == "amazon_ses" else "api_url"
    extra = {"region": "us-east-1", "access_key_id": "AKID"} if kind == "amazon_ses" else {}
    secret = {"secret_access_key": "x"} if kind == "amazon_ses" else {"api_key": "k", "server_token": "k"}
    provider = make_provider(tenant_a, kind, {field: url, **extra}, secret)
    with pytest.raises(ChannelError) as error:
        send(provider)
    assert error.value.permanent and "Refused to call" in error.value.message


def smtp_provider(tenant, port: int, *, password: str = SMTP_PASSWORD):
    return make_provider(
        tenant,
        "smtp",
        {"host": "127.0.0.1", "port": port, "tls": "none", "username": SMTP_USER},
        {"password": password},
    )


def test_smtp_provider_with_auth_delivers_with_from_reply_to_cc_and_bcc(auth_smtp, tenant_a):
    provider = smtp_provider(tenant_a, auth_smtp.port)
    provider_id = send(provider, bcc=["audit@acme.example"])
    (mail,) = auth_smtp.messages
    assert mail["From"] == "Acme Support <support@acme.example>"
    assert mail["Reply-To"] == "help@acme.example" and mail["Cc"] == "team@acme.example"
    assert mail["Bcc"] is None  # BCC is in the envelope only
    assert provider_id == mail["Message-ID"]


def test_smtp_provider_with_a_wrong_password_is_a_permanent_error(auth_smtp, tenant_a):
    with pytest.raises(ChannelError) as error:
        send(smtp_provider(tenant_a, auth_smtp.port, password="wrong"))
    assert error.value.permanent and "535" in error.value.message
    assert auth_smtp.messages == []


def test_smtp_provider_refusing_the_sender_keeps_its_reason(auth_smtp, tenant_a):
    auth_smtp.refuse_senders.add("support@acme.example")
    with pytest.raises(ChannelError) as error:
        send(smtp_provider(tenant_a, auth_smtp.port))
    assert error.value.permanent and "Sender address rejected" in error.value.message


def test_smtp_host_on_loopback_is_refused_without_an_allowance(auth_smtp, tenant_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(ChannelError) as error:
        send(smtp_provider(tenant_a, auth_smtp.port))
    assert error.value.permanent and "loopback" in error.value.message
    assert auth_smtp.messages == []


def test_smtp_host_name_resolving_to_loopback_is_refused(auth_smtp, tenant_a, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    provider = smtp_provider(tenant_a, auth_smtp.port)
    provider.settings["host"] = "localhost"
    provider.save()
    with pytest.raises(ChannelError) as error:
        send(provider)
    assert error.value.permanent and "Refused" in error.value.message


def test_an_ses_endpoint_that_does_not_resolve_is_a_transient_error(tenant_a, settings):
    provider = make_provider(
        tenant_a,
        "amazon_ses",
        {"region": "us-east-1", "access_key_id": "AKID", "endpoint_url": "https://no-such-host.invalid/"},
        {"secret_access_key": "x"},
    )
    with pytest.raises(ChannelError) as error:
        send(provider)
    assert not error.value.permanent and "no-such-host.invalid" in error.value.message


def test_an_ses_endpoint_without_a_host_is_refused_by_name(tenant_a, settings):
    # Looking up no name answers this machine's own addresses: with loopback allowed, the URL is still
    # refused for what it is, not called.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    provider = make_provider(
        tenant_a,
        "amazon_ses",
        {"region": "us-east-1", "access_key_id": "AKID", "endpoint_url": "https:///"},
        {"secret_access_key": "x"},
    )
    with pytest.raises(ChannelError) as error:
        send(provider)
    assert error.value.permanent and "names no host" in error.value.message
