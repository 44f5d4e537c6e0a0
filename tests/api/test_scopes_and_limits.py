"""API key scopes (read, trigger, manage) refuse what they should with a 403 naming the missing scope;
the per-key rate limit answers 429 with Retry-After; a Redis outage lets requests through rather than
answering 500; keys made before scopes keep everything they could do."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tenants.models import ApiKey
from tests.api.conftest import key_client
from tests.support import free_port

# (method, path template, body): one per kind of change, each needing `manage` unless it says otherwise.
MANAGE = [
    ("post", "/api/v1/runs/{run}/cancel/", None),
    ("post", "/api/v1/runs/{run}/retry/", None),
    ("post", "/api/v1/runs/{run}/replay/", None),
    ("post", "/api/v1/workflows/{workflow}/publish/", {}),
    ("post", "/api/v1/workflows/{workflow}/release/", None),
    ("post", "/api/v1/workflows/{workflow}/cancel/", {"key": "order:1"}),
    ("post", "/api/v1/bulk-operations/", {"action": "retry", "dry_run": True}),
    ("post", "/api/v1/topics/", {"name": "News"}),
]
READ = ["/api/v1/workflows/", "/api/v1/runs/{run}/", "/api/v1/messages/", "/api/v1/bulk-operations/"]


@pytest.fixture
def ids(welcome, tenant_a) -> dict:
    from runs.engine import start_run

    return {"workflow": welcome.pk, "run": start_run(welcome, {"email": "a@example.com"}, "evt-1").pk}


def scoped(tenant, owner, *scopes: str):
    return key_client(ApiKey.issue(tenant, "Scoped", owner, scopes=list(scopes))[1])


def call(client, method: str, path: str, body=None):
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, body if body is not None else "", content_type="application/json")


@pytest.mark.parametrize("method, path, body", MANAGE)
def test_a_key_without_manage_cannot_change_anything(tenant_a, owner, ids, method, path, body):
    response = call(scoped(tenant_a, owner, "read", "trigger"), method, path.format(**ids), body)

    assert response.status_code == 403, response.content
    detail = response.json()["detail"]
    assert "lacks the “manage” scope" in detail and "its scopes: read, trigger" in detail
    assert "create a key with the manage scope on the API keys page" in detail


@pytest.mark.parametrize("path", READ)
def test_a_key_without_read_cannot_read(tenant_a, owner, ids, path):
    response = scoped(tenant_a, owner, "trigger").get(path.format(**ids))

    assert response.status_code == 403
    assert "lacks the “read” scope" in response.json()["detail"]


def test_a_trigger_key_starts_runs_and_nothing_more(tenant_a, owner, ids, welcome):
    trigger = scoped(tenant_a, owner, "trigger")

    started = trigger.post(
        f"/api/v1/workflows/{welcome.pk}/runs/", {"payload": {}}, content_type="application/json"
    )
    cancelled = trigger.post(f"/api/v1/runs/{ids['run']}/cancel/")

    assert started.status_code == 202
    assert cancelled.status_code == 403 and "“manage”" in cancelled.json()["detail"]


def test_a_read_key_cannot_start_runs(tenant_a, owner, welcome):
    response = scoped(tenant_a, owner, "read").post(
        f"/api/v1/workflows/{welcome.pk}/runs/", {"payload": {}}, content_type="application/json"
    )

    assert response.status_code == 403 and "lacks the “trigger” scope" in response.json()["detail"]


def test_a_manage_key_without_read_changes_but_cannot_list(tenant_a, owner, ids):
    manage = scoped(tenant_a, owner, "manage")

    assert manage.post(f"/api/v1/runs/{ids['run']}/cancel/").status_code == 200
    assert manage.get("/api/v1/runs/").status_code == 403


def test_over_the_limit_is_a_429_with_retry_after_per_key(tenant_a, owner, settings, monkeypatch, redis_conn):
    settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_SECONDS = 3, 60
    caches["default"].clear()
    # 15 seconds into a window: 45 seconds are left of it.
    monkeypatch.setattr("tenants.throttling.wall_clock", lambda: 1_800_000_015.0)
    busy, calm = scoped(tenant_a, owner, "read"), scoped(tenant_a, owner, "read")

    answers = [busy.get("/api/v1/workflows/") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3]["Retry-After"] == "45"
    assert answers[3].json()["detail"] == "Request was throttled. Expected available in 45 seconds."
    assert calm.get("/api/v1/workflows/").status_code == 200  # another key has its own count
    # The next window starts afresh.
    monkeypatch.setattr("tenants.throttling.wall_clock", lambda: 1_800_000_060.0)
    assert busy.get("/api/v1/workflows/").status_code == 200


def test_a_redis_outage_lets_api_calls_through_instead_of_failing_them(tenant_a, owner, settings, caplog):
    settings.API_RATE_LIMIT = 3
    # The cache points at a port where nothing listens: every INCR fails to connect.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    client = scoped(tenant_a, owner, "read")

    answers = [client.get("/api/v1/workflows/").status_code for _ in range(5)]

    assert answers == [200] * 5
    assert "API rate limit not checked (the cache is unreachable" in caplog.text


def test_the_limit_off_is_no_limit(tenant_a, owner, settings):
    settings.API_RATE_LIMIT = 0
    client = scoped(tenant_a, owner, "read")

    assert {client.get("/api/v1/workflows/").status_code for _ in range(5)} == {200}


@pytest.mark.django_db(transaction=True)
def test_keys_made_before_scopes_get_every_scope_they_had(tenant_a):
    executor = MigrationExecutor(connection)
    before = [("tenants", "0005_tenant_send_window_defaults")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    old_model = old_apps.get_model("tenants", "ApiKey")
    old_model.objects.create(tenant_id=tenant_a.pk, name="Old", prefix="rb_live_x", secret_hash="h" * 64)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert ApiKey.objects.get(name="Old").scopes == ["read", "trigger", "manage"]
