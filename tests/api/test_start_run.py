"""POST /api/v1/workflows/<id>/runs/: a run of the published version, with the webhook trigger's rules for
the body and the Idempotency-Key; nothing is written for a refused request."""

from __future__ import annotations

import json

import pytest

from runs.models import Run
from tests.engine.conftest import work
from workflows.publishing import unpublish

pytestmark = pytest.mark.django_db


def start(client, workflow_id: int, body, headers: dict | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(
        f"/api/v1/workflows/{workflow_id}/runs/", data, content_type="application/json", headers=headers or {}
    )


def test_starts_a_run_that_workers_carry_to_the_email(clock, smtp, api, welcome):
    response = start(api, welcome.pk, {"payload": {"email": "ada@example.com", "name": "Ada"}})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["created"] is True and body["event_key"].startswith("api:auto:")
    run = Run.objects.get(pk=body["run_id"])
    assert (run.workflow_id, run.version.number, run.is_test) == (welcome.pk, 1, False)
    assert run.payload == {"email": "ada@example.com", "name": "Ada"}
    work(clock)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert smtp.recipients() == ["ada@example.com"]
    assert smtp.messages[0]["Subject"] == "Hello Ada"


def test_the_same_idempotency_key_twice_starts_one_run(api, welcome):
    headers = {"Idempotency-Key": "signup-42"}

    first = start(api, welcome.pk, {"payload": {"n": 1}}, headers)
    again = start(api, welcome.pk, {"payload": {"n": 2}}, headers)

    assert first.status_code == 202 and first.json()["created"] is True
    assert again.status_code == 200
    assert again.json() == {
        "run_id": first.json()["run_id"],
        "event_key": "api:signup-42",
        "created": False,
        "detail": f"Run {first.json()['run_id']} already exists for this Idempotency-Key; no new run was started.",
    }
    assert list(Run.objects.values_list("event_key", "payload")) == [("api:signup-42", {"n": 1})]


@pytest.mark.parametrize(
    "body, expected",
    [
        (b"{not json", "The body is not valid JSON"),
        (b"[1, 2]", "The body must be a JSON object ({...}), not an array."),
        (b"{}", 'Send the trigger\'s item as {"payload": {...}}.'),
        (b'{"payload": null}', '"payload" must be a JSON object ({...}), not null.'),
        (b'{"payload": [1]}', '"payload" must be a JSON object ({...}), not an array.'),
        (b'{"payload": {}, "test": true}', 'Unknown field "test": send {"payload": {...}} and nothing else.'),
    ],
)
def test_a_body_that_is_not_a_payload_object_is_400(api, welcome, body, expected):
    response = start(api, welcome.pk, body)

    assert response.status_code == 400
    assert expected in response.json()["detail"]
    assert not Run.objects.exists()


def test_an_idempotency_key_over_200_characters_is_400(api, welcome):
    response = start(api, welcome.pk, {"payload": {}}, {"Idempotency-Key": "k" * 201})

    assert response.status_code == 400
    assert "longer than 200 characters" in response.json()["detail"]
    assert not Run.objects.exists()


def test_unknown_unpublished_or_another_tenants_workflow_is_404(api, outsider_api, welcome, draft):
    assert start(api, 999999, {"payload": {}}).status_code == 404
    assert start(outsider_api, welcome.pk, {"payload": {}}).status_code == 404
    response = start(api, draft.pk, {"payload": {}})
    assert response.status_code == 404
    assert (
        response.json()["detail"]
        == "“Draft only” is not published, so events cannot start it. Publish it, then start runs."
    )
    unpublish(welcome)
    assert start(api, welcome.pk, {"payload": {}}).status_code == 404
    assert not Run.objects.exists()


def test_a_body_over_the_webhook_limit_is_413(api, welcome, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1024

    response = start(api, welcome.pk, {"payload": {"blob": "x" * 2000}})

    assert response.status_code == 413
    assert response.json()["detail"] == "The body is larger than the limit of 1024 bytes."
    assert start(api, welcome.pk, {"payload": {"blob": "x" * 900}}).status_code == 202
    assert Run.objects.count() == 1
