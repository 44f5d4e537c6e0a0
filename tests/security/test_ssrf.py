"""Server-side request forgery: every URL Rowbell calls for a tenant is refused when it reaches inside.

These tests run with the default, empty OUTBOUND_ALLOWED_NETWORKS (they do not use the `httpserver`
fixture, which allows 127.0.0.1): the local servers below stand for Rowbell's own services, Redis, the
cloud's metadata service. Each asserts the error AND that the local server received nothing.
"""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer

from integrations import outbound
from integrations.channels import ChannelError
from integrations.channels.http import HttpChannel
from integrations.channels.slack import SlackChannel
from integrations.events.forms import EventEndpointForm
from integrations.models import EventDelivery, EventEndpoint
from runs.engine import start_run
from runs.events.delivery import deliver
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, clock, email, smtp, webhook, work  # noqa: F401 (fixtures)
from tests.support import free_port
from workflows.steps import get_kind
from workflows.steps.base import ConfigError


@pytest.fixture
def inside():
    """A server on loopback, standing for a service inside Rowbell's network; fails the test if reached."""
    server = HTTPServer(host="127.0.0.1", port=free_port())
    server.expect_request("/").respond_with_json({"secret": "internal"})
    server.expect_request("/latest/meta-data/").respond_with_json({"secret": "internal"})
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def allowed_server(settings):
    """A server on 127.0.0.2 that the operator allowed (OUTBOUND_ALLOWED_NETWORKS), 127.0.0.1 still not."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]
    server = HTTPServer(host="127.0.0.2", port=free_port())
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture(autouse=True)
def default_allowlist(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []


REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "0.0.0.0",
    "::",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "fe80::1",
    "fd00:ec2::254",
    "fc00::1",
    "100.64.0.1",
    "100.100.100.200",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",  # 6to4 around 127.0.0.1
    "192.0.2.1",  # documentation
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_inside_addresses_are_refused(address):
    assert outbound.refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert outbound.refusal(ipaddress.ip_address(address)) is None


def test_the_metadata_address_is_named_as_such():
    assert outbound.refusal(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"


def test_allowed_networks_let_an_operator_reach_an_internal_service(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["10.20.0.0/16", "::1/128"]
    assert outbound.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert outbound.refusal(ipaddress.ip_address("::1")) is None
    assert outbound.refusal(ipaddress.ip_address("10.21.0.1")) == "a private address"


def send(url: str, method: str = "POST") -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        HttpChannel().send({"method": method, "url": url, "headers": {}, "body": "{}"})
    return caught.value


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.1",  # hexadecimal, short form
        "0177.0.0.1",  # octal
        "127.1",
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
        "0.0.0.0",  # reaches loopback on Linux
    ],
)
def test_the_http_channel_refuses_loopback_in_every_spelling(inside, host):
    error = send(f"http://{host}:{inside.port}/")
    assert (
        error.permanent
        and "Refused to call" in error.message
        and "OUTBOUND_ALLOWED_NETWORKS" in error.message
    )
    assert inside.log == []


def test_the_metadata_address_is_refused_before_any_connection(monkeypatch):
    def no_connect(*args, **kwargs):
        raise AssertionError("a socket was connected")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    error = send("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert error.permanent and "cloud metadata address" in error.message


def test_slack_webhooks_are_checked_too(inside):
    with pytest.raises(ChannelError) as caught:
        SlackChannel().send({"webhook_url": f"http://localhost:{inside.port}/", "text": "hi"})
    assert caught.value.permanent and "loopback" in caught.value.message
    assert inside.log == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/", "data:text/plain,hello"])
def test_only_http_and_https_are_called(url):
    error = send(url)
    assert error.permanent and "only http:// and https://" in error.message


def test_a_redirect_to_an_inside_address_is_refused(allowed_server, inside):
    allowed_server.expect_request("/hop").respond_with_data(
        "", status=307, headers={"Location": f"http://127.0.0.1:{inside.port}/"}
    )
    error = send(f"http://127.0.0.2:{allowed_server.port}/hop", method="GET")
    assert error.permanent and "loopback" in error.message
    assert len(allowed_server.log) == 1 and inside.log == []


def test_a_redirect_to_another_scheme_is_refused(allowed_server):
    allowed_server.expect_request("/hop").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"}
    )
    error = send(f"http://127.0.0.2:{allowed_server.port}/hop", method="GET")
    assert error.permanent and "only http:// and https://" in error.message


def test_an_allowed_network_is_called(allowed_server):
    allowed_server.expect_request("/ok").respond_with_data("fine")
    channel = HttpChannel()
    channel.send(
        {"method": "POST", "url": f"http://127.0.0.2:{allowed_server.port}/ok", "headers": {}, "body": ""}
    )
    assert channel.last_response[2] == "fine"


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(allowed_server, inside, monkeypatch):
    """DNS rebinding: the name answers an allowed address when checked and loopback a moment later."""
    answers = iter(["127.0.0.2", "127.0.0.1", "127.0.0.1"])
    real_getaddrinfo = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        return real_getaddrinfo(next(answers) if host == "rebind.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    allowed_server.expect_request("/").respond_with_data("outside")
    channel = HttpChannel()
    channel.send(
        {"method": "GET", "url": f"http://rebind.example:{allowed_server.port}/", "headers": {}, "body": ""}
    )
    assert channel.last_response[2] == "outside"
    assert len(allowed_server.log) == 1 and inside.log == []
    assert allowed_server.log[0][0].headers["Host"] == f"rebind.example:{allowed_server.port}"


# --- Save time: the builder and the endpoint form say so at once for a literal host ---------------------


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8103/admin/", "http://localhost:6379/"],
)
def test_the_http_step_refuses_an_inside_url_on_save(url):
    with pytest.raises(ConfigError) as caught:
        get_kind("http_request").validate({"method": "GET", "url": url})
    assert "Refused to call" in caught.value.errors["url"]


def test_a_templated_host_is_left_to_send_time():
    cleaned = get_kind("http_request").validate({"method": "GET", "url": "http://{{ item.host }}/x"})
    assert cleaned["url"] == "http://{{ item.host }}/x"


def test_the_slack_step_refuses_an_inside_url_on_save():
    with pytest.raises(ConfigError) as caught:
        get_kind("slack_message").validate({"webhook_url": "http://[::1]:9/hook", "text": "hi"})
    assert "loopback" in caught.value.errors["webhook_url"]


def test_the_builder_shows_the_refusal_under_the_url_field_on_save(client, tenant_a, owner):
    from tests.builder.test_builder_views import add, save
    from workflows.models import Workflow

    client.force_login(owner)
    workflow = Workflow.objects.create(tenant=tenant_a, name="Hook", created_by=owner)
    step = add(client, workflow, "http_request", add(client, workflow, "webhook_trigger"))
    url = "http://169.254.169.254/latest/meta-data/"
    response = save(client, workflow, step, method="GET", url=url, response="merge")
    error = re.search(r'id="err-url"[^>]*>([^<]+)</div>', response.content.decode())
    assert error and "Refused to call 169.254.169.254: it is a cloud metadata address" in error.group(1)
    step.refresh_from_db()
    assert step.config["url"] == url  # kept, like any other invalid value, for the person to fix


def test_the_event_endpoint_form_refuses_an_inside_url(db):
    form = EventEndpointForm(data={"url": "http://127.0.0.1:8103/admin/", "events": ["run.failed"]})
    assert not form.is_valid()
    assert "Refused to call 127.0.0.1" in form.errors["url"][0]


# --- Send time: the run path and event deliveries ----------------------------------------------------


def test_a_live_run_calling_loopback_fails_permanently_and_the_server_gets_nothing(
    clock,  # noqa: F811 (the fixture imported above)
    smtp,  # noqa: F811
    tenant_a,
    inside,
):
    """The reported attack: an HTTP step (response merged into the item) followed by an email carrying it."""
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "http_request",
                    "config": {"method": "GET", "url": "http://{{ item.host }}/", "response": "merge"},
                    "children": [email(text="Leaked: {{ item.secret }}")],
                }
            ]
        ),
    )
    run = start_run(workflow, {"host": f"127.0.0.1:{inside.port}", "email": "eve@example.com"}, "evt-1")
    work(clock)
    run.refresh_from_db()
    execution = StepExecution.objects.get(run=run, step__kind="http_request")
    assert run.status == Run.Status.FAILED
    assert execution.status == StepExecution.Status.FAILED and execution.attempts == 1
    assert "Refused to call 127.0.0.1" in execution.error
    assert inside.log == [] and smtp.messages == []
    assert not Delivery.objects.filter(run=run, status="sent").exists()


def test_an_event_delivery_to_loopback_fails_at_once(db, tenant_a, inside):
    endpoint = EventEndpoint.objects.create(
        tenant=tenant_a, url=f"http://127.0.0.1:{inside.port}/", events=["run.failed"]
    )
    delivery = EventDelivery.objects.create(
        tenant=tenant_a,
        endpoint=endpoint,
        event_type="run.failed",
        event_id="evt_1",
        payload={"type": "run.failed"},
        next_attempt_at=timezone.now(),
    )
    assert deliver(delivery.pk) == EventDelivery.Status.FAILED
    delivery.refresh_from_db()
    assert "Refused to call 127.0.0.1" in delivery.last_error and delivery.next_attempt_at is None
    assert inside.log == []
