"""A validly signed webhook request starts one run however often it is replayed within the timestamp window:
the second use of a signature is a 409 that says why, and nothing more is stored or queued. The
Idempotency-Key path is unchanged: the same request with the same key answers with the same run."""

from __future__ import annotations

import time

import django_rq
import pytest
from django.test import Client

from integrations.signing import signature_headers
from runs.models import Run
from tests.engine.conftest import build_workflow, email, webhook
from tests.support import free_port
from workflows.steps.webhook_trigger import webhook_path

pytestmark = pytest.mark.django_db

BODY = b'{"email": "ada@example.com"}'
REPLAY = "This signed request was already accepted: a replayed signature starts no run."


@pytest.fixture
def live(tenant_a, redis_conn):
    return build_workflow(tenant_a, webhook([email()]), name="Welcome")


@pytest.fixture
def send(live, django_capture_on_commit_callbacks):
    """POST headers + body to the workflow's hook; accepted runs are committed and queued for real."""

    def post(headers: dict, body: bytes = BODY, commit: bool = True):
        # commit=False: inside the test's transaction RQ would queue an existing run's job again at
        # "commit" and fail on the duplicate id, which outside a transaction it ignores.
        with django_capture_on_commit_callbacks(execute=commit):
            return Client().post(
                webhook_path(live.pk), body, content_type="application/json", headers=headers
            )

    return post


def queued() -> int:
    return sum(django_rq.get_queue(name).count for name in ("default", "low"))


def test_the_same_signed_request_twice_starts_one_run(live, send):
    headers = signature_headers(live.webhook_secret, BODY)

    first, second = send(headers), send(headers)

    assert first.status_code == 202, first.content
    assert second.status_code == 409
    assert second.json()["detail"].startswith(REPLAY)
    assert Run.objects.count() == 1 and queued() == 1


def test_adding_an_idempotency_key_to_a_replay_does_not_get_past(live, send):
    headers = signature_headers(live.webhook_secret, BODY)
    assert send(headers).status_code == 202

    # The key is not signed: a replayer can add any, and still starts nothing.
    for key in ("fresh-1", "fresh-2"):
        replay = send({**headers, "Idempotency-Key": key})
        assert replay.status_code == 409, replay.content
    assert Run.objects.count() == 1 and queued() == 1


def test_the_idempotency_key_path_is_unchanged(live, send):
    headers = {**signature_headers(live.webhook_secret, BODY), "Idempotency-Key": "signup-42"}

    first, retry = send(headers), send(headers, commit=False)

    assert first.status_code == retry.status_code == 202
    assert first.json() == retry.json() == {"run_id": Run.objects.get().pk, "event_key": "webhook:signup-42"}
    # Without the key, or with another one, the same signature is a replay.
    assert send({k: v for k, v in headers.items() if k != "Idempotency-Key"}).status_code == 409
    assert send({**headers, "Idempotency-Key": "signup-43"}).status_code == 409
    assert Run.objects.count() == 1 and queued() == 1


def test_a_new_timestamp_is_a_new_event(live, send):
    now = int(time.time())
    first = send(signature_headers(live.webhook_secret, BODY, now - 1))
    second = send(signature_headers(live.webhook_secret, BODY, now))

    assert first.status_code == second.status_code == 202
    assert Run.objects.count() == 2 and queued() == 2


def test_a_rejected_request_does_not_use_up_its_signature(live, send):
    bad_body = b'{"email": "a\\u0000"}'
    headers = signature_headers(live.webhook_secret, bad_body)
    assert send(headers, bad_body).status_code == 400
    assert send(headers, bad_body).status_code == 400  # still a 400 for the body, not a 409
    assert Run.objects.count() == 0 and queued() == 0


def test_a_signature_is_remembered_for_the_rest_of_its_window(live, send, redis_conn, settings):
    settings.WEBHOOK_TIMESTAMP_TOLERANCE = 300
    signed_at = int(time.time()) - 250  # 50 s of the window left
    assert send(signature_headers(live.webhook_secret, BODY, signed_at)).status_code == 202

    [name] = redis_conn.keys("*webhook-signature*")
    assert 49 <= redis_conn.ttl(name) <= 51
    assert f":{live.pk}:sha256=" in name.decode()


def test_after_the_window_a_replay_is_stale_not_a_new_run(live, send, settings):
    settings.WEBHOOK_TIMESTAMP_TOLERANCE = 2
    headers = signature_headers(live.webhook_secret, BODY)
    assert send(headers).status_code == 202
    assert send(headers).status_code == 409

    time.sleep(3.2)  # the timestamp is whole seconds: now more than 2 s old
    late = send(headers)

    assert late.status_code == 401
    assert "sign the request again" in late.json()["detail"]
    assert Run.objects.count() == 1 and queued() == 1


def test_without_redis_the_request_is_refused_to_be_retried(live, settings, tenant_a):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    response = Client().post(
        webhook_path(live.pk),
        BODY,
        content_type="application/json",
        headers=signature_headers(live.webhook_secret, BODY),
    )

    assert response.status_code == 503
    assert "send it again shortly" in response.json()["detail"]
    assert Run.objects.count() == 0
