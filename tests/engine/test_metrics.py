"""/metrics after real work: runs, executions, messages, a reclaim on a missing heartbeat, send latency,
listener lag, queue depth and process heartbeats."""

from __future__ import annotations

import socket

from django.test import Client

from runs.engine import liveness, metrics, start_run
from runs.engine.executor import claim
from runs.engine.liveness import Heartbeat
from runs.engine.sweeper import sweep
from tests.engine.conftest import build_workflow, email, webhook, work
from tests.test_operations import sample


def test_metrics_after_real_work(clock, smtp, tenant_a, settings):
    workflow = build_workflow(tenant_a, webhook([email(), email(to="team@example.com")]))
    for n in range(3):
        start_run(workflow, {"email": f"a{n}@example.com", "name": "A"}, f"evt-{n}")
    work(clock)
    # A worker that claimed and died: the sweeper reclaims on its missing heartbeat.
    stuck = start_run(workflow, {"email": "b@example.com", "name": "B"}, "evt-stuck")
    liveness.worker_name = "dead-worker"
    try:
        claimed = claim(stuck.pk, workflow.published_version.steps.get(parent=None).pk, clock.now, 10)
    finally:
        liveness.worker_name = ""
    assert claimed
    clock.travel(seconds=settings.WORKER_LEASE_SECONDS + 1)
    assert sweep().reclaimed == 1
    heartbeat = Heartbeat("cron", name="cron-test")
    heartbeat.beat()
    metrics.record_listener_lag(42, 3.5)

    body = Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()
    assert sample(body, "rowbell_runs", status="succeeded") == 3
    assert sample(body, "rowbell_deliveries", channel="email", status="sent") == 6
    assert sample(body, "rowbell_executions", kind="send_email", status="succeeded") == 6
    assert sample(body, "rowbell_sweeper_reclaims_total", reason="worker_gone") == 1
    assert sample(body, "rowbell_send_latency_seconds_count", channel="email") == 6
    assert sample(body, "rowbell_send_latency_seconds_bucket", channel="email", le="+Inf") == 6
    assert sample(body, "rowbell_listener_lag_seconds", datasource="42") == 3.5
    assert sample(body, "rowbell_queue_jobs", queue="default", state="queued") is not None
    assert sample(body, "rowbell_oldest_due_execution_age_seconds") is not None
    assert (
        sample(
            body,
            "rowbell_process_heartbeat_age_seconds",
            kind="cron",
            name="cron-test",
            host=socket.gethostname(),
        )
        is not None
    )
    assert sample(body, "rowbell_scrape_error", part="database") == 0
