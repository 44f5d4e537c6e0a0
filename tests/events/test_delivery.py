"""Runs that finish send signed events through real RQ workers (burst mode) to a real local HTTP server.
Only the clock is patched (the `clock` fixture), to make retry delays come due."""

from __future__ import annotations

from datetime import timedelta

import django_rq
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rq import SimpleWorker

from integrations.models import EventDelivery
from integrations.signing import compute_signature
from runs.engine import cancel_run, start_run
from runs.engine.completion import close_run_if_done
from runs.events.delivery import JOB, QUEUE, deliver, requeue_due
from runs.models import Run
from tests.engine.conftest import build_workflow, webhook, work
from tests.events.conftest import REFUSED, body, item, make_endpoint, only_delivery, posts


@pytest.mark.parametrize(
    "address, event, executions, deliveries",
    [
        ("ada@example.com", "run.succeeded", {"succeeded": 2}, {"sent": 1}),
        (REFUSED, "run.failed", {"failed": 1, "succeeded": 1}, {"failed": 1}),
    ],
)
def test_a_finished_run_sends_one_signed_event(
    clock, welcome, endpoint, httpserver, address, event, executions, deliveries
):
    httpserver.expect_request("/events", method="POST").respond_with_data("thanks")

    run = start_run(welcome, item(address), "signup-7")
    work(clock)

    run.refresh_from_db()
    (request,) = posts(httpserver)
    sent = request.get_data()
    timestamp = request.headers["X-Rowbell-Timestamp"]
    assert request.headers["X-Rowbell-Signature"] == compute_signature(endpoint.secret, timestamp, sent)
    assert int(timestamp) == int(clock.now.timestamp())
    assert request.headers["X-Rowbell-Event"] == event
    assert request.headers["Content-Type"] == "application/json"
    delivery = only_delivery()
    assert request.headers["X-Rowbell-Delivery"] == str(delivery.pk)
    payload = body(request)
    assert payload == delivery.payload
    assert payload["id"] == delivery.event_id and payload["id"].startswith("evt_")
    assert payload["type"] == event
    assert payload["data"] == {
        "run": {
            "id": run.pk,
            "workflow_id": welcome.pk,
            "workflow_name": "Welcome",
            "version": 1,
            "status": run.status,
            "event_key": "signup-7",
            "is_test": False,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat(),
            "executions": executions,
            "deliveries": deliveries,
        }
    }
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.delivered_at == clock.now


def test_an_event_the_endpoint_does_not_subscribe_to_sends_nothing(clock, welcome, tenant_a, httpserver):
    make_endpoint(tenant_a, httpserver.url_for("/events"), events=["run.failed"])
    httpserver.expect_request("/events").respond_with_data("thanks")

    run = start_run(welcome, item(), "signup-1")
    work(clock)

    assert Run.objects.get(pk=run.pk).status == "succeeded"
    assert posts(httpserver) == []
    assert not EventDelivery.objects.exists()


def test_test_runs_send_nothing(clock, welcome, endpoint, httpserver):
    httpserver.expect_request("/events").respond_with_data("thanks")

    run = start_run(welcome, item(), "try-1", version=welcome.published_version, is_test=True)
    work(clock)

    assert Run.objects.get(pk=run.pk).status == "succeeded"
    assert posts(httpserver) == []


def test_another_tenants_endpoint_never_hears_of_my_runs(clock, welcome, endpoint, tenant_b, httpserver):
    make_endpoint(tenant_b, httpserver.url_for("/globex"))
    httpserver.expect_request("/events").respond_with_data("thanks")
    httpserver.expect_request("/globex").respond_with_data("thanks")

    start_run(welcome, item(), "signup-2")
    work(clock)

    assert len(posts(httpserver)) == 1
    assert posts(httpserver, "/globex") == []
    assert list(EventDelivery.objects.values_list("endpoint_id", flat=True)) == [endpoint.pk]


def test_cancelling_a_run_sends_run_cancelled(clock, tenant_a, endpoint, httpserver):
    waiting = build_workflow(tenant_a, webhook([{"kind": "wait", "config": {"amount": 3, "unit": "days"}}]))
    httpserver.expect_request("/events").respond_with_data("thanks")
    run = start_run(waiting, {}, "trial-ends")
    work(clock)
    assert posts(httpserver) == []  # waiting

    cancel_run(run)
    work(clock)

    (request,) = posts(httpserver)
    assert body(request)["type"] == "run.cancelled"
    assert body(request)["data"]["run"]["executions"] == {"cancelled": 1, "succeeded": 1}


def test_a_close_that_rolls_back_leaves_no_event_and_queues_no_job(clock, welcome, endpoint):
    run = start_run(welcome, item(), "signup-3")
    run.executions.update(status="succeeded")

    with pytest.raises(RuntimeError), transaction.atomic():
        assert close_run_if_done(run.pk) == "succeeded"
        assert EventDelivery.objects.count() == 1  # written with the close...
        raise RuntimeError("the caller's transaction fails after the close")

    assert Run.objects.get(pk=run.pk).status == "pending"
    assert not EventDelivery.objects.exists()  # ...and rolled back with it
    assert django_rq.get_queue(QUEUE).count == 0  # its job is queued on commit only


def test_closing_a_run_costs_one_query_more_and_only_when_it_closes(clock, welcome, endpoint):
    endpoint.events = ["run.failed"]  # listens, but not to what this run will do
    endpoint.save()
    run = start_run(welcome, item(), "signup-4")

    def statements_of_close() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            close_run_if_done(run.pk)
        # The close and its events share a transaction: BEGIN and COMMIT are not statements of their own.
        return [query["sql"] for query in queries if query["sql"] not in ("BEGIN", "COMMIT")]

    assert len(statements_of_close()) == 1  # still open: the conditional UPDATE alone
    run.executions.update(status="succeeded")
    _close, endpoints = statements_of_close()
    assert "integrations_eventendpoint" in endpoints
    assert Run.objects.get(pk=run.pk).status == "succeeded"


def test_a_500_is_retried_with_backoff_then_delivered_once(clock, welcome, endpoint, httpserver):
    httpserver.expect_ordered_request("/events").respond_with_data("busy", status=500)
    httpserver.expect_ordered_request("/events").respond_with_data("thanks")

    start_run(welcome, item(), "signup-5")
    work(clock)

    delivery = only_delivery()
    assert len(posts(httpserver)) == 1
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500" in delivery.last_error and "busy" in delivery.last_error
    # The engine's full-jitter backoff after a first failure: at most ENGINE_RETRY_BASE_SECONDS (2 s).
    assert clock.now < delivery.next_attempt_at <= clock.now + timedelta(seconds=2)

    clock.travel(seconds=2)
    work(clock)
    clock.travel(minutes=10)
    work(clock)

    delivery.refresh_from_db()
    assert len(posts(httpserver)) == 2
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    first, second = posts(httpserver)
    assert first.headers["X-Rowbell-Delivery"] == second.headers["X-Rowbell-Delivery"]
    assert first.get_data() == second.get_data()


def test_a_delivery_fails_after_the_last_attempt(clock, welcome, endpoint, httpserver, settings):
    settings.EVENT_WEBHOOK_MAX_ATTEMPTS = 3
    httpserver.expect_request("/events").respond_with_data("down", status=503)

    start_run(welcome, item(), "signup-6")
    for _ in range(6):
        work(clock)
        clock.travel(hours=1)

    delivery = only_delivery()
    assert len(posts(httpserver)) == 3
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 503)
    assert delivery.next_attempt_at is None
    assert django_rq.get_queue(QUEUE).count == 0


def test_410_gone_disables_the_endpoint(clock, welcome, endpoint, httpserver):
    httpserver.expect_request("/events").respond_with_data("unsubscribed", status=410)

    start_run(welcome, item(), "signup-8")
    work(clock)
    start_run(welcome, item(), "signup-9")
    work(clock)

    endpoint.refresh_from_db()
    assert endpoint.active is False
    assert len(posts(httpserver)) == 1
    assert (only_delivery().status, only_delivery().last_status_code) == ("failed", 410)


def test_the_same_job_run_twice_posts_once(clock, welcome, endpoint, httpserver):
    httpserver.expect_request("/events").respond_with_data("thanks")
    start_run(welcome, item(), "signup-10")
    work(clock)
    delivery = only_delivery()

    queue = django_rq.get_queue(QUEUE)
    queue.enqueue(JOB, delivery.pk, job_id="duplicate-1")
    queue.enqueue(JOB, delivery.pk, job_id="duplicate-2")
    work(clock)

    assert len(posts(httpserver)) == 1
    assert deliver(delivery.pk) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)


def test_a_delivery_whose_job_was_lost_is_queued_again(
    clock, welcome, endpoint, httpserver, redis_conn, settings
):
    httpserver.expect_request("/events").respond_with_data("thanks")
    start_run(welcome, item(), "signup-11")
    SimpleWorker([django_rq.get_queue("default")], connection=redis_conn).work(burst=True)
    redis_conn.flushdb()  # Redis loses the delivery's job: PostgreSQL still has the delivery
    assert only_delivery().status == "pending"

    assert requeue_due() == 0  # not overdue yet
    clock.travel(seconds=settings.SWEEPER_GRACE + 1)
    assert requeue_due() == 1
    assert requeue_due() == 0  # touched: left alone for another grace period
    work(clock)

    assert len(posts(httpserver)) == 1
    assert only_delivery().status == "succeeded"
