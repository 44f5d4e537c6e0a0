"""Webhook trigger through Django's test client: every answer, and no run for any rejected request."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from integrations.signing import signature_headers
from runs.models import Run
from tests.triggers.conftest import make_workflow
from workflows.publishing import publish, unpublish
from workflows.steps.webhook_trigger import webhook_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(tenant_a):
    workflow = make_workflow(tenant_a, "webhook_trigger", {"sample": {"email": "a@b.c"}})
    publish(workflow)
    workflow.refresh_from_db()
    return workflow


def post(workflow, body: bytes, headers: dict | None = None, secret: str | None = None, timestamp=None):
    signed = (
        signature_headers(secret or workflow.webhook_secret, body, timestamp) if headers is None else headers
    )
    return Client().post(
        webhook_path(workflow.pk), data=body, content_type="application/json", headers=signed
    )


def test_valid_signature_starts_a_run_with_the_body_as_item(hook):
    response = post(hook, b'{"email": "new@example.com", "plan": "pro"}')

    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["run_id"])
    assert run.workflow_id == hook.pk
    assert run.payload == {"email": "new@example.com", "plan": "pro"}
    assert response.json()["event_key"].startswith("webhook:auto:")


def test_same_idempotency_key_twice_starts_one_run(hook):
    body = b'{"order": 7}'
    headers = {**signature_headers(hook.webhook_secret, body), "Idempotency-Key": "order-7-paid"}

    first = post(hook, body, headers)
    second = post(hook, body, headers)

    assert first.status_code == second.status_code == 202
    assert first.json()["run_id"] == second.json()["run_id"]
    assert Run.objects.filter(workflow=hook).count() == 1
    assert Run.objects.get(workflow=hook).event_key == "webhook:order-7-paid"


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"[1, 2]", "must be a JSON object"),
        (b'"text"', "must be a JSON object"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_body_that_is_not_a_json_object_is_400(hook, body, expected):
    response = post(hook, body)

    assert response.status_code == 400
    assert expected in response.json()["detail"]
    assert not Run.objects.exists()


def test_bad_missing_or_stale_signatures_are_401(hook):
    body = b'{"a": 1}'
    cases = {
        "missing": (post(hook, body, headers={}), "Missing signature"),
        "wrong secret": (post(hook, body, secret="not-the-secret"), "Bad signature"),
        "stale": (post(hook, body, timestamp=int(time.time()) - 3600), "more than 300 s"),
        "not a number": (
            post(hook, body, headers={"X-Rowbell-Timestamp": "soon", "X-Rowbell-Signature": "sha256=00"}),
            "Unix time",
        ),
    }
    tampered = signature_headers(hook.webhook_secret, body)
    cases["body changed"] = (post(hook, b'{"a": 2}', headers=tampered), "Bad signature")

    for name, (response, expected) in cases.items():
        assert response.status_code == 401, name
        assert expected in response.json()["detail"], name
    assert not Run.objects.exists()


def test_unknown_unpublished_or_non_webhook_workflows_are_404(hook, datasource):
    from tests.triggers.conftest import db_trigger_workflow

    body = b'{"a": 1}'
    assert post_to(999999, body, hook.webhook_secret).status_code == 404
    db_workflow = db_trigger_workflow(datasource)
    assert post_to(db_workflow.pk, body, db_workflow.webhook_secret).status_code == 404
    unpublish(hook)
    response = post(hook, body)
    assert response.status_code == 404
    assert "No published workflow" in response.json()["detail"]
    assert not Run.objects.exists()


def post_to(workflow_id: int, body: bytes, secret: str):
    return Client().post(
        webhook_path(workflow_id),
        data=body,
        content_type="application/json",
        headers=signature_headers(secret, body),
    )


def test_body_over_the_limit_is_413(hook, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024
    body = json.dumps({"blob": "x" * 2000}).encode()

    response = post(hook, body)

    assert response.status_code == 413
    assert "1024 bytes" in response.json()["detail"]
    assert not Run.objects.exists()


def test_default_limit_is_256_kib(hook):
    small = json.dumps({"blob": "x" * 200_000}).encode()
    large = json.dumps({"blob": "x" * 270_000}).encode()

    assert post(hook, small).status_code == 202
    assert post(hook, large).status_code == 413
    assert Run.objects.count() == 1


def test_only_get_is_refused(hook):
    assert Client().get(webhook_path(hook.pk)).status_code == 405
