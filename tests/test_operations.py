"""What operators see: /healthz, /readyz, /metrics (access, and the numbers after real work), JSON logs
with the ids a line is about, and process heartbeats."""

from __future__ import annotations

import json
import logging
import re

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

import config.health
from common.logs import EngineContextFilter, JsonFormatter, bound


def sample(body: str, metric: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus's text format, None when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        match = re.match(rf"^{metric}(?:\{{(.*)\}})? (\S+)$", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))) == wanted:
            return float(match.group(2))
    return None


def test_healthz_answers_without_a_session(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_redis_and_migrations(client, redis_conn, monkeypatch):
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "redis": "ok", "migrations": "ok"}
    # A deploy whose database lags behind its code: a migration is not applied.
    monkeypatch.setattr(config.health, "_migrated", False)
    # The newest one: the plan skips a gap below an applied migration, so an older one proves nothing.
    MigrationRecorder.Migration.objects.filter(app="runs").order_by("-name").first().delete()
    lagging = client.get("/readyz")
    assert lagging.status_code == 503
    assert "not applied" in lagging.json()["migrations"] and "runs" in lagging.json()["migrations"]


@pytest.mark.django_db
def test_readyz_says_which_dependency_is_down(client, monkeypatch, settings):
    from tests.support import unreachable_redis

    monkeypatch.setattr(
        "runs.engine.enqueue.redis_connection",
        lambda: unreachable_redis(1, socket_timeout=1),
    )
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["redis"].startswith("failed: ConnectionError")
    assert response.json()["database"] == "ok"


@pytest.mark.django_db
def test_metrics_need_the_token_or_an_allowed_network(settings, redis_conn):
    settings.METRICS_TOKEN = "s3cret-token"
    outside = Client(REMOTE_ADDR="203.0.113.9")
    assert outside.get("/metrics").status_code == 404
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    settings.METRICS_TOKEN = ""
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404, (
        "an empty token opens nothing"
    )
    settings.METRICS_ALLOWED_NETWORKS = ["203.0.113.0/24"]
    assert outside.get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="not an address").get("/metrics").status_code == 404


def test_json_logs_carry_the_ids_the_line_is_about():
    record = logging.LogRecord(
        "runs.engine.executor", logging.WARNING, __file__, 1, "Batch %s stopped", (7,), None
    )
    with bound(tenant_id=3, run_id=7), bound(execution_id=99):
        EngineContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Batch 7 stopped" and line["level"] == "WARNING"
    assert (line["tenant_id"], line["run_id"], line["execution_id"]) == (3, 7, 99) and "step_id" not in line
    assert record.context == "[tenant=3 run=7 execution=99] "
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "plain", (), None)
    EngineContextFilter().filter(outside)
    assert outside.context == "" and "run_id" not in json.loads(JsonFormatter().format(outside))
