"""Sends through HTTP APIs keep several requests of a batch in flight (runs/engine/concurrent.py), and the
Delivery protocol holds for each: its row is committed before its request arrives, answers settle in any
order, one failure touches no other message, the pool's bound holds, and SIGKILL, a Redis flush and a
job timeout with requests in flight send nothing twice.

The provider is a real threaded HTTP server (pytest-httpserver) that sleeps per request, counts the
requests in flight, and looks the request's Delivery row up in PostgreSQL (its own connection) on arrival.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from email import message_from_bytes

import django_rq
import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from django.utils import timezone
from pytest_httpserver import HTTPServer
from rq import SimpleWorker
from werkzeug import Request, Response

from consent.models import Suppression
from runs.engine import start_run
from runs.engine.executor import claim
from runs.engine.sweeper import sweep
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import (
    SinkHandler,
    build_workflow,
    data_source,
    query,
    settle,
    webhook,
    work,
)
from tests.engine.test_liveness import LEASE, fan_out, process_env, wait_for, worker
from tests.engine.test_recovery import real_clock, recipients_table
from tests.support import execution_id_in, free_port, subprocess_database_url


class Provider:
    """A slow HTTP API: answers each request after `delay(execution id)` seconds with `status_for`'s status."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.received: list[int] = []  # execution ids, in arrival order
        self.answered: list[int] = []  # execution ids, in answer order
        self.row_on_arrival: dict[int, str | None] = {}  # the Delivery's status PostgreSQL had then
        self.delay: Callable[[int], float] = lambda execution_id: 0.05
        self.script: dict[int, list[tuple[int, dict]]] = {}  # execution id -> answers to give first
        self.check_rows = False
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    def url(self, path: str = "/hook") -> str:
        return self.server.url_for(path)

    def handle(self, request: Request) -> Response:
        execution_id = execution_id_in(request.get_data(as_text=True) + str(request.headers))
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.received.append(execution_id)
        try:
            if self.check_rows:
                self.row_on_arrival[execution_id] = delivery_status(execution_id)
            time.sleep(self.delay(execution_id))
            with self.lock:
                scripted = self.script.get(execution_id)
                status, body = scripted.pop(0) if scripted else (200, self.ok(request, execution_id))
            return Response(
                json.dumps(body),
                status=status,
                headers={"X-Request-Id": f"req-{execution_id}"},
                content_type="application/json",
            )
        finally:
            with self.lock:
                self.in_flight -= 1
                self.answered.append(execution_id)

    def ok(self, request: Request, execution_id: int) -> dict:
        if request.path == "/email":  # Postmark's answer to one message
            to = request.get_json()["To"]
            return {"To": to, "SubmittedAt": "2026-03-02T09:00:00Z", "MessageID": f"pm-{execution_id}",
                    "ErrorCode": 0, "Message": "OK"}  # fmt: skip
        return {"echo": (request.get_json(silent=True) or {}).get("id"), "execution": execution_id}


def delivery_status(execution_id: int) -> str | None:
    """What another connection sees: only committed rows."""
    with psycopg.connect(subprocess_database_url()) as conn:
        row = conn.execute(
            "SELECT status FROM runs_delivery WHERE step_execution_id = %s", [execution_id]
        ).fetchone()
    return row[0] if row else None


@pytest.fixture
def provider(settings):
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    yield Provider(server)
    server.clear()
    server.stop()


def http_fan_out(tenant, url: str, n: int, target: str, **config):
    recipients_table(url, n)
    step = {
        "kind": "http_request",
        "config": {"method": "POST", "url": target, "body": '{"id": {{ item.id }}}', **config},
    }
    source = data_source(tenant, url)
    return build_workflow(tenant, webhook([query(source, "SELECT id, email FROM r", children=[step])]))


def sends(run) -> list[StepExecution]:
    return list(StepExecution.objects.filter(run=run, step__kind__in=("http_request", "send_email")))


@pytest.mark.django_db(transaction=True)
def test_answers_out_of_order_settle_each_delivery_and_item_correctly(
    clock, tenant_a, tenant_database, provider, settings
):
    settings.ENGINE_SEND_CONCURRENCY = 8
    provider.check_rows = True
    workflow = http_fan_out(tenant_a, tenant_database, 8, provider.url(), response="merge")
    run = start_run(workflow, {}, "evt-order")

    def in_reverse(execution_id: int) -> float:
        """The first request to arrive answers last: once all 8 are in, each waits for the one that came
        after it to be answered (not for a time, which a busy machine stretches past the arrivals' gaps)."""
        deadline = time.monotonic() + 30
        while len(provider.received) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        with provider.lock:
            index = provider.received.index(execution_id)
            successor = provider.received[index + 1] if index + 1 < len(provider.received) else None
        while successor is not None and successor not in provider.answered and time.monotonic() < deadline:
            time.sleep(0.01)
        return 0.0

    provider.delay = in_reverse
    settle(clock, step_seconds=60)

    assert provider.answered != provider.received, "the answers came back in another order"
    assert provider.answered[0] == provider.received[-1] and provider.answered[-1] == provider.received[0]
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    for execution in sends(run):
        delivery = Delivery.objects.get(step_execution=execution)
        assert delivery.status == "sent" and delivery.provider_id == f"req-{execution.pk}"
        # The response merged into the item is this request's own, not another thread's.
        assert execution.output["echo"] == execution.input["id"]
        assert execution.output["execution"] == execution.pk
    assert set(provider.row_on_arrival.values()) == {"sending"}, "a request arrived before its row"


@pytest.mark.django_db(transaction=True)
def test_every_delivery_row_is_committed_before_its_request_arrives(
    clock, tenant_a, tenant_database, provider, settings
):
    settings.ENGINE_SEND_CONCURRENCY = 16
    provider.check_rows = True
    provider.delay = lambda execution_id: 0.0  # answers as fast as it can: the tightest race
    workflow = http_fan_out(tenant_a, tenant_database, 60, provider.url())
    run = start_run(workflow, {}, "evt-commit")
    settle(clock, step_seconds=60)

    assert len(provider.row_on_arrival) == 60
    assert Counter(provider.row_on_arrival.values()) == {"sending": 60}
    assert Counter(Delivery.objects.filter(run=run).values_list("status", flat=True)) == {"sent": 60}


@pytest.mark.django_db(transaction=True)
def test_the_pool_bound_is_respected(clock, tenant_a, tenant_database, provider, settings):
    settings.ENGINE_SEND_CONCURRENCY = 4
    provider.delay = lambda execution_id: 0.1
    workflow = http_fan_out(tenant_a, tenant_database, 30, provider.url())
    run = start_run(workflow, {}, "evt-bound")
    settle(clock, step_seconds=60)

    assert provider.max_in_flight == 4, provider.max_in_flight
    assert Counter(provider.received) == {e.pk: 1 for e in sends(run)}
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_one_transient_failure_in_flight_does_not_affect_the_others(
    clock, tenant_a, tenant_database, provider, settings
):
    settings.ENGINE_SEND_CONCURRENCY = 8
    workflow = http_fan_out(tenant_a, tenant_database, 12, provider.url())
    run = start_run(workflow, {}, "evt-flaky")
    # The send step's executions do not exist yet: script the 5th request that arrives.
    flaky: list[int] = []
    first = provider.handle

    def handle(request: Request) -> Response:
        execution_id = execution_id_in(str(request.headers))
        with provider.lock:
            if len(provider.received) == 4 and not flaky:
                flaky.append(execution_id)
                provider.script[execution_id] = [(503, {"error": "try later"})]
        return first(request)

    provider.server.clear()
    provider.server.expect_request(re.compile(".*")).respond_with_handler(handle)
    work(clock)  # the first round: every request once, one answered 503
    (failed_id,) = flaky
    after_first = {e.pk: e for e in sends(run)}
    assert after_first[failed_id].status == "pending" and "HTTP 503" in after_first[failed_id].error
    assert Delivery.objects.get(step_execution_id=failed_id).status == "failed"
    others = [e for pk, e in after_first.items() if pk != failed_id]
    assert all(e.status == "succeeded" and e.attempts == 1 for e in others)
    assert set(Delivery.objects.exclude(step_execution_id=failed_id).values_list("status", flat=True)) == {
        "sent"
    }

    settle(clock, step_seconds=60)  # the retry
    counts = Counter(provider.received)
    assert counts[failed_id] == 2 and all(counts[e.pk] == 1 for e in others)
    assert Delivery.objects.get(step_execution_id=failed_id).status == "sent"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_email_through_an_esp_with_anymail_sends_concurrently(
    clock, tenant_a, tenant_database, provider, settings
):
    """anymail's real Postmark backend against the local server playing Postmark's API."""
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": provider.url("/")}
    settings.ENGINE_SEND_CONCURRENCY = 8
    provider.check_rows = True
    run = start_run(fan_out(tenant_a, tenant_database, 20), {}, "evt-esp")
    refusals = {
        "r3@example.com": (422, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'r3@example.com'."}),
        "r4@example.com": (500, {"ErrorCode": 500, "Message": "Internal server error"}),
    }
    first = provider.handle

    def handle(request: Request) -> Response:
        to = request.get_json()["To"]
        if to in refusals:
            execution_id = execution_id_in(request.get_data(as_text=True))
            with provider.lock:
                provider.script[execution_id] = [refusals.pop(to)]
        return first(request)

    provider.server.clear()
    provider.server.expect_request("/email", method="POST").respond_with_handler(handle)
    settle(clock, step_seconds=60)

    assert provider.max_in_flight > 1, "the ESP's requests were sent one at a time"
    assert set(provider.row_on_arrival.values()) == {"sending"}
    by_recipient = {d.recipient: d for d in Delivery.objects.filter(run=run)}
    invalid = by_recipient.pop("r3@example.com")
    assert invalid.status == "failed" and "Invalid 'To' address" in invalid.error
    assert StepExecution.objects.get(pk=invalid.step_execution_id).attempts == 1, "a 422 is not retried"
    retried = by_recipient["r4@example.com"]
    assert StepExecution.objects.get(pk=retried.step_execution_id).attempts == 2, "a 500 is retried"
    assert all(
        d.status == "sent" and d.provider_id == f"pm-{d.step_execution_id}" for d in by_recipient.values()
    )
    assert Counter(provider.received)[retried.step_execution_id] == 2


def test_a_tenants_own_esp_provider_sends_concurrently(clock, tenant_a, tenant_database, provider, settings):
    """The step's sender goes through the tenant's Postmark provider (not the platform's backend)."""
    from tests.emailing.conftest import make_provider, make_sender

    settings.ENGINE_SEND_CONCURRENCY = 8
    provider.check_rows = True
    postmark = make_provider(tenant_a, "postmark", {"api_url": provider.url("/")}, {"server_token": "t"})
    make_sender(tenant_a, postmark)
    run = start_run(fan_out(tenant_a, tenant_database, 12), {}, "evt-tenant-esp")
    settle(clock, step_seconds=60)

    assert provider.max_in_flight > 1, "the tenant's ESP requests were sent one at a time"
    assert set(provider.row_on_arrival.values()) == {"sending"}
    deliveries = list(Delivery.objects.filter(run=run))
    assert len(deliveries) == 12
    assert all(d.status == "sent" and d.provider_id == f"pm-{d.step_execution_id}" for d in deliveries)


class ConnectionCountingSink(SinkHandler):
    """An SMTP sink that counts its open sessions and reads each message's Delivery row at DATA."""

    def __init__(self):
        super().__init__()
        self.sessions = self.max_sessions = 0
        self.row_at_data: dict[str, str | None] = {}

    async def handle_DATA(self, server, session, envelope):
        key = message_from_bytes(envelope.content)["X-Rowbell-Key"]
        execution_id = execution_id_in(key)
        self.row_at_data[key] = await asyncio.to_thread(delivery_status, execution_id)
        return await super().handle_DATA(server, session, envelope)


def test_smtp_sends_over_several_connections_each_message_after_its_row(
    clock, tenant_a, tenant_database, settings
):
    """EMAIL_SMTP_CONNECTIONS: a batch keeps that many SMTP sessions, one message in flight on each."""
    settings.EMAIL_SMTP_CONNECTIONS = 3
    sink = ConnectionCountingSink()
    sink.delay = 0.02
    port = free_port()

    class Counting(SMTP):
        def connection_made(self, transport):
            sink.sessions += 1
            sink.max_sessions = max(sink.max_sessions, sink.sessions)
            super().connection_made(transport)

        def connection_lost(self, exc):
            sink.sessions -= 1
            super().connection_lost(exc)

    class CountingController(Controller):
        def factory(self):
            return Counting(self.handler, **self.SMTP_kwargs)

    controller = CountingController(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    try:
        run = start_run(fan_out(tenant_a, tenant_database, 30), {}, "evt-smtp-connections")
        settle(clock, step_seconds=60)
    finally:
        controller.stop()

    assert sink.max_sessions == 3, "the batch kept EMAIL_SMTP_CONNECTIONS sessions"
    assert sorted(Counter(sink.recipients()).values()) == [1] * 30
    assert set(sink.row_at_data.values()) == {"sending"}, "a message left before its row was committed"
    assert set(Delivery.objects.filter(run=run).values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize("connections", [1, 4])
def test_a_recipient_refused_at_rcpt_in_a_fan_out_is_suppressed(
    connections, clock, smtp, tenant_a, tenant_database, settings
):
    """Over one connection or several, a 5xx at RCPT fails that message alone and suppresses its address."""
    settings.EMAIL_SMTP_CONNECTIONS = connections
    smtp.refuse["r2@example.com"] = "550 5.1.1 <r2@example.com>: Recipient address rejected"
    run = start_run(fan_out(tenant_a, tenant_database, 6), {}, "evt-refused")
    settle(clock, step_seconds=60)

    statuses = dict(Delivery.objects.filter(run=run).values_list("recipient", "status"))
    assert statuses.pop("r2@example.com") == "failed" and set(statuses.values()) == {"sent"}
    entry = Suppression.objects.get(tenant=tenant_a, address="r2@example.com")
    assert entry.reason == Suppression.Reason.REJECTED and entry.source == Suppression.Source.SMTP
    assert "Recipient address rejected" in entry.detail
    assert sorted(smtp.recipients()) == [f"r{i}@example.com" for i in (1, 3, 4, 5, 6)]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_of_every_worker_with_requests_in_flight_sends_nothing_twice(
    redis_conn, tenant_a, tenant_database, provider, monkeypatch, settings, tmp_path
):
    settings.WORKER_LEASE_SECONDS = LEASE
    clock = real_clock(monkeypatch)
    provider.delay = lambda execution_id: 0.03
    workflow = http_fan_out(tenant_a, tenant_database, 300, provider.url())
    run = start_run(workflow, {}, "evt-kill-concurrent")
    env = process_env(25, ENGINE_SEND_CONCURRENCY="8", OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32")
    workers = [worker(env, tmp_path / f"w{i}.log") for i in range(2)]
    wait_for(lambda: len(provider.received) >= 60, 60, "the first requests")
    for process in workers:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    received_at_kill = len(provider.received)
    assert received_at_kill < 300 and provider.max_in_flight > 1

    killed_at = time.monotonic()
    while StepExecution.objects.filter(run=run, status="running").exists():
        assert time.monotonic() - killed_at < LEASE + 10, "the claims of the dead workers were not reclaimed"
        clock.now = timezone.now()
        sweep()
        time.sleep(0.25)
    restarted = worker(env, tmp_path / "w-restart.log")
    restarted.wait(timeout=120)
    settle(clock, step_seconds=60)

    counts = Counter(provider.received)
    assert max(counts.values()) == 1, "a request was sent twice"
    deliveries = dict(Delivery.objects.filter(run=run).values_list("step_execution_id", "status"))
    statuses = Counter(deliveries.values())
    # Uncertain: at most the requests in flight and the answers not yet written, per killed worker.
    assert statuses["sent"] + statuses["uncertain"] == 300 and statuses["uncertain"] <= 2 * 2 * 8, statuses
    assert {pk for pk, status in deliveries.items() if status == "sent"} <= set(counts), (
        "sent, never received"
    )
    assert all(deliveries[pk] in ("sent", "uncertain") for pk in counts), "received, but not recorded"
    run.refresh_from_db()
    assert run.status in (Run.Status.SUCCEEDED, Run.Status.PARTIAL)


@pytest.mark.django_db(transaction=True)
def test_redis_lost_mid_fan_out_with_concurrent_sends_completes_from_postgres(
    redis_conn, tenant_a, tenant_database, provider, monkeypatch, settings
):
    settings.ENGINE_BATCH_SIZE = 10
    settings.ENGINE_SEND_CONCURRENCY = 4
    clock = real_clock(monkeypatch)
    workflow = http_fan_out(tenant_a, tenant_database, 40, provider.url())
    run = start_run(workflow, {}, "evt-redis-concurrent")
    queues = [django_rq.get_queue("default"), django_rq.get_queue("low")]
    SimpleWorker(queues, connection=redis_conn).work(burst=True, max_jobs=3)
    assert 0 < len(provider.received) < 40
    send_step = StepExecution.objects.filter(run=run, step__kind="http_request").first().step_id
    assert len(claim(run.pk, send_step, clock.now, 5)) == 5  # a batch claimed, not settled
    redis_conn.flushdb()

    clock.travel(seconds=settings.ENGINE_EXECUTION_TIMEOUT + settings.SWEEPER_GRACE + 1)
    assert sweep().reclaimed == 5
    settle(clock, step_seconds=600)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert Counter(provider.received) == {e.pk: 1 for e in sends(run)}
    assert Delivery.objects.filter(run=run, status="sent").count() == 40


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_timeout_with_requests_in_flight_records_them_and_releases_the_rest(
    redis_conn, tenant_a, tenant_database, provider, monkeypatch, settings, tmp_path
):
    settings.ENGINE_EXECUTION_TIMEOUT = 3  # the batch jobs' RQ timeout, set when they are queued
    clock = real_clock(monkeypatch)
    provider.delay = lambda execution_id: 1.0
    workflow = http_fan_out(tenant_a, tenant_database, 24, provider.url())
    run = start_run(workflow, {}, "evt-timeout-concurrent")
    log = tmp_path / "worker.log"
    env = process_env(
        25,
        ENGINE_EXECUTION_TIMEOUT="3",
        ENGINE_SEND_CONCURRENCY="4",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32",
    )
    worker(env, log).wait(timeout=120)
    settle(clock, step_seconds=60)

    assert "JobTimeoutException" in log.read_text()
    assert Counter(provider.received) == {e.pk: 1 for e in sends(run)}, "each request exactly once"
    assert Counter(Delivery.objects.filter(run=run).values_list("status", flat=True)) == {"sent": 24}
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (
        "the run closes although its last items ended in the interrupted job"
    )
    first_attempts = [e.attempt_log[0] for e in sends(run)]
    released = [a for a in first_attempts if a["error"].startswith("The batch was interrupted")]
    finished = [a for a in first_attempts if a["outcome"] == "succeeded"]
    # The requests in flight when the timeout struck were answered and kept: no item failed an attempt.
    assert released and finished and len(released) + len(finished) == 24, first_attempts
    assert provider.max_in_flight == 4
