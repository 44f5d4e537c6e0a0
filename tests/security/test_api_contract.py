"""The API keeps the contract its OpenAPI schema states: a property-based run of schemathesis against
/api/schema/, in-process through the WSGI app, with every check schemathesis has (`--checks all`: no 5xx,
only documented statuses, JSON bodies that match the documented shapes and headers, valid requests
accepted, invalid ones refused, authentication not ignored) on valid and invalid requests alike.

Two of the CLI's phases, in-process (the CLI's own engine cannot drive a WSGI app with this Werkzeug, and
its pytest plugin does not load under pytest 9):
- coverage: schemathesis' deterministic boundary cases (missing and wrong-typed parameters, undeclared
  methods, each constraint's edges), valid and invalid;
- fuzzing: CASES_PER_RUN generated cases for each operation and generation mode (valid, invalid), once
  with path ids that exist (tenant A's workflow and run) and once with generated ids.
Deterministic: hypothesis is derandomized (a fixed seed per operation) and keeps no example database.
About 1,000 requests in all.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.generation.drivers import CoverageGenerator
from schemathesis.generation.feedback import NO_FEEDBACK
from schemathesis.generation.overrides import Override

from integrations.models import Provider, Sender
from runs.models import BulkOperation, Delivery, DeliveryEvent, Run
from tenants.models import ApiKey
from tests.engine.conftest import build_workflow, email, webhook
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

CASES_PER_RUN = int(os.environ.get("CONTRACT_CASES", 30))
SCHEMA_PATH = "/api/schema/?format=json"


@pytest.fixture
def schema(settings_override):
    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, get_wsgi_application())
    schema.config.checks.update(included_check_names=["all"])
    return schema


@pytest.fixture
def settings_override(settings):
    """The real WSGI app, as Django's test client runs it: no closing of the test's DB connection at the
    end of each request (it holds the test's transaction), any Host header (the WSGI transport's), and no
    rate limit (a thousand requests in a minute are the point here; tests/api/test_scopes_and_limits.py
    tests the limit)."""
    settings.ALLOWED_HOSTS = ["*"]
    settings.API_RATE_LIMIT = 0
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield settings
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def tenant_a_objects(tenant_a, owner) -> dict:
    workflow = build_workflow(tenant_a, webhook([email()]), name="Welcome")
    run = Run.objects.create(
        tenant=tenant_a, workflow=workflow, version=workflow.published_version, event_key="evt", payload={}
    )
    execution = run.executions.create(
        tenant=tenant_a, step=workflow.published_version.steps.last(), item_key="0"
    )
    message = Delivery.objects.create(
        tenant=tenant_a, run=run, step_execution=execution, channel="email", recipient="a@example.com"
    )
    DeliveryEvent.objects.create(
        tenant=tenant_a, delivery=message, kind="delivered", event_key="e1", occurred_at=run.created_at
    )
    provider = Provider.objects.create(tenant=tenant_a, name="Postmark", kind="postmark")
    sender = Sender.objects.create(
        tenant=tenant_a, name="Support", from_address="s@example.com", provider=provider
    )
    operation = BulkOperation.objects.create(tenant=tenant_a, name="Retry", action="retry", filter_digest="x")
    return {
        "workflow": workflow,
        "run": run,
        "key": ApiKey.issue(tenant_a, "Contract", owner)[1],
        "/api/v1/messages/": message,
        "/api/v1/providers/": provider,
        "/api/v1/senders/": sender,
        "/api/v1/bulk-operations/": operation,
    }


def pinned_ids(path: str, objects: dict) -> dict:
    """Real ids for the operation's path parameters, so valid requests reach real rows."""
    workflow: Workflow = objects["workflow"]
    by_name = {"workflow_id": workflow.pk}
    if path.startswith("/api/v1/workflows/{id}"):
        by_name["id"] = workflow.pk
    elif path.startswith("/api/v1/runs/{id}"):
        by_name["id"] = objects["run"].pk
    for resource, row in objects.items():
        if resource.startswith("/") and path.startswith(resource + "{id}"):
            by_name["id"] = row.pk
    return {name: value for name, value in by_name.items() if "{" + name + "}" in path}


def run_cases(
    operation, mode: GenerationMode, headers: dict, path_parameters: dict | None, statuses: Counter
) -> int:
    sent = 0

    @settings(
        max_examples=CASES_PER_RUN,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def check(case):
        nonlocal sent
        response = case.call_and_validate(headers=headers)
        statuses[response.status_code] += 1
        sent += 1

    check()
    return sent


def run_coverage_cases(schema, operation, headers: dict, statuses: Counter) -> int:
    generator = CoverageGenerator(
        operation=operation,
        generation_modes=list(GenerationMode),
        generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
        auth_storage=None,
        override=Override(),
        feedback=NO_FEEDBACK,
    )
    sent = 0
    for case in generator:
        statuses[case.call_and_validate(headers=headers).status_code] += 1
        sent += 1
    return sent


# One test per resource, so the parallel workers share the ~1,000 requests; every operation belongs to one.
RESOURCES = [
    "/api/v1/bulk-operations/",
    "/api/v1/cancels/",
    "/api/v1/layouts/",
    "/api/v1/messages/",
    "/api/v1/providers/",
    "/api/v1/runs/",
    "/api/v1/senders/",
    "/api/v1/suppressions/",
    "/api/v1/topics/",
    "/api/v1/workflows/",
    "/hooks/",
]


def test_every_operation_belongs_to_a_resource_the_contract_run_covers(schema):
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert {"POST /api/v1/workflows/{workflow_id}/runs/", "POST /hooks/{workflow_id}/"} <= labels
    assert all(any(label.split()[1].startswith(r) for r in RESOURCES) for label in labels), labels


@pytest.mark.parametrize("resource", RESOURCES)
def test_every_operation_keeps_the_contract(schema, tenant_a_objects, resource):
    headers = {"Authorization": f"Bearer {tenant_a_objects['key']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [operation for operation in operations if operation.path.startswith(resource)]

    sent, statuses = 0, Counter()
    for operation in operations:
        sent += run_coverage_cases(schema, operation, headers, statuses)
        pinned = pinned_ids(operation.path, tenant_a_objects)
        for mode in GenerationMode:
            sent += run_cases(operation, mode, headers, pinned or None, statuses)
            if pinned:
                sent += run_cases(operation, mode, headers, None, statuses)
    print(f"{resource}: {sent} requests: {dict(sorted(statuses.items()))}")
    assert sent >= 25 * len(operations), sent
    # The run reached real rows and was refused where it should be, not only one or the other.
    assert any(200 <= status < 300 for status in statuses), statuses
    assert {400, 401} & set(statuses) and 404 in statuses, statuses
    if resource == "/api/v1/workflows/":
        assert Run.objects.filter(event_key__startswith="api:").count() > 10


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here/", "/api/v1/runs/1/nothing/", "/api/nothing", "/hooks/abc/", "/hooks/"]
)
def test_an_unknown_api_or_webhook_address_is_a_json_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f"Nothing is at {path}: check the address."}


def test_an_unknown_page_is_still_an_html_404(client):
    response = client.get("/nothing-here/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_wrong_method_on_the_api_is_a_json_405(client, tenant_a_objects):
    api = {"HTTP_AUTHORIZATION": f"Bearer {tenant_a_objects['key']}"}
    response = client.delete(f"/api/v1/runs/{tenant_a_objects['run'].pk}/", **api)

    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
