"""Event-webhook fixtures: endpoints on a real local HTTP server (pytest-httpserver), published workflows
that succeed or fail against the real SMTP sink."""

from __future__ import annotations

import json

import pytest

from integrations.models import EventDelivery, EventEndpoint
from tests.builder.conftest import page  # noqa: F401 (fixture)
from tests.engine.conftest import build_workflow, clock, email, smtp, webhook  # noqa: F401 (fixtures)

ALL_RUN_EVENTS = ["run.succeeded", "run.partial", "run.failed", "run.cancelled"]
REFUSED = "nobody@example.com"


def make_endpoint(tenant, url: str, events=ALL_RUN_EVENTS, **extra) -> EventEndpoint:
    return EventEndpoint.objects.create(tenant=tenant, url=url, events=list(events), **extra)


@pytest.fixture
def endpoint(tenant_a, httpserver) -> EventEndpoint:
    """Tenant A's endpoint for every run event, at /events of the local HTTP server."""
    return make_endpoint(tenant_a, httpserver.url_for("/events"))


@pytest.fixture
def welcome(tenant_a, smtp):  # noqa: F811 (the fixture imported above)
    """Published: webhook → email to the item's address. The SMTP sink refuses REFUSED (a permanent 550), so
    a run for it fails and a run for anyone else succeeds."""
    smtp.refuse[REFUSED] = "550 No such user"
    return build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Welcome")


def item(address: str = "ada@example.com") -> dict:
    return {"email": address, "name": "Ada"}


def posts(httpserver, path: str = "/events") -> list:
    """The requests the local server received at `path`, oldest first."""
    return [request for request, _response in httpserver.log if request.path == path]


def body(request) -> dict:
    return json.loads(request.get_data())


def only_delivery() -> EventDelivery:
    (delivery,) = EventDelivery.objects.all()
    return delivery
