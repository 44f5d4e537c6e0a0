"""Provider rate limits (integrations/ratelimit.py, runs/engine/pacing.py) against the real Redis: one
bucket shared by every client, empty when new or lost, paced per recipient, slowed by throttling; a 429
or Retry-After waits without using an attempt; a provider's limit paces a real fan-out."""

from __future__ import annotations

import threading
import time

import pytest
from pytest_httpserver import HTTPServer
from redis import Redis
from werkzeug import Request, Response

from integrations import ratelimit
from integrations.channels.base import parse_retry_after
from integrations.ratelimit import RateLimit
from runs.engine import start_run
from runs.models import Delivery, StepExecution
from tests.emailing.conftest import esp_provider, make_sender
from tests.engine.conftest import build_workflow, data_source, email, query, settle, webhook, work
from tests.engine.test_recovery import recipients_table
from tests.support import unreachable_redis
from workflows.steps import get_kind


def most_in_a_second(times: list[float]) -> int:
    times, most, start = sorted(times), 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_new_bucket_is_empty_and_paces_to_the_limit(redis_conn):
    limit = RateLimit("test:pace", 50, 5)
    waits = [ratelimit.reserve(limit) for _ in range(100)]
    assert waits[0] > 0, "a new bucket starts empty: no free burst after Redis lost it"
    assert waits == sorted(waits), "each turn after the one before"
    assert waits[-1] == pytest.approx(100 / 50, abs=0.25)


def test_a_message_costs_one_token_per_recipient(redis_conn):
    kind = get_kind("send_email")
    assert kind.cost({"to": "a@example.com"}) == 1
    assert (
        kind.cost({"to": "a@example.com", "cc": ["b@x.example", "c@x.example"], "bcc": ["d@x.example"]}) == 4
    )
    limit = RateLimit("test:cost", 10, 1)
    ratelimit.reserve(limit, 1)
    assert ratelimit.reserve(limit, 4) == pytest.approx(0.5, abs=0.1), "4 recipients wait 4 turns"


def test_one_bucket_is_shared_by_every_client(redis_conn):
    """Four clients, each with its own Redis connection (as workers on different hosts have): the turns
    they are given never put more than the limit plus the burst in any second."""
    limit = RateLimit("test:shared", 40, 4)
    turns: list[float] = []
    lock = threading.Lock()

    def client():
        own = Redis.from_url(_url(redis_conn))
        script = own.register_script(ratelimit._SCRIPT)
        for _ in range(30):
            started = time.time()
            wait, _rate = script(keys=[limit.redis_key], args=_args(limit, 1, "reserve"))
            with lock:
                turns.append(started + float(wait))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(turns) == 120
    assert most_in_a_second(turns) <= 40 + 4
    assert max(turns) - min(turns) == pytest.approx(120 / 40, abs=0.4), "and the limit is used, not less"


def _url(conn) -> str:
    kwargs = conn.connection_pool.connection_kwargs
    return f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _args(limit: RateLimit, cost: int, mode: str) -> list:
    return [
        limit.rate,
        limit.burst,
        cost,
        mode,
        ratelimit.RECOVERY_SECONDS,
        ratelimit.MIN_RATE_FRACTION,
        ratelimit.IDLE_TTL_SECONDS,
        ratelimit.DECREASE_COOLDOWN_SECONDS,
    ]


def test_a_bucket_lost_with_redis_comes_back_empty(redis_conn):
    limit = RateLimit("test:lost", 100, 50)
    time.sleep(0.1)
    ratelimit.reserve(limit)
    time.sleep(0.6)  # 50 tokens saved up: the burst
    assert ratelimit.reserve(limit, 40) == 0
    redis_conn.flushdb()  # Redis restarted empty
    assert ratelimit.reserve(limit) > 0, "no burst handed out again after the loss"


def test_throttling_halves_the_rate_once_a_second_and_it_grows_back(redis_conn):
    limit = RateLimit("test:aimd", 40, 4)
    assert ratelimit.current_rate(limit) == 40
    assert ratelimit.throttled(limit) == pytest.approx(20)
    assert ratelimit.throttled(limit) == pytest.approx(20, abs=0.5), "the refusals of one moment cut once"
    time.sleep(0.5)
    grown = ratelimit.current_rate(limit)
    assert 20 < grown < 40, "the additive increase"
    waits = [ratelimit.reserve(limit) for _ in range(10)]
    assert waits[-1] == pytest.approx((10 - 4) / grown, rel=0.25), (
        "paced at the lowered rate, after the burst"
    )


def test_while_redis_is_away_no_token_is_given(redis_conn, monkeypatch):
    """No token, no send: wait_for_tokens keeps trying while Redis does not answer."""
    dead = unreachable_redis(socket_connect_timeout=0.2)
    monkeypatch.setattr(ratelimit, "_connection", lambda: dead)
    monkeypatch.setattr(ratelimit, "_script", None)
    idles: list[float] = []

    def idle(seconds: float) -> None:
        idles.append(seconds)
        if len(idles) == 3:  # Redis is back
            monkeypatch.setattr(ratelimit, "_connection", lambda: redis_conn)
            monkeypatch.setattr(ratelimit, "_script", None)

    wait = ratelimit.wait_for_tokens(RateLimit("test:down", 10, 1), 1, idle=idle)
    assert idles == [0.25, 0.5, 1.0] and wait > 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30", 30.0), ("0", 0.0), ("-5", 0.0), ("soon", None), ("", None), (None, None), ("1e9", 3600.0)],
)
def test_retry_after_is_read_in_seconds_or_as_a_date(value, seconds):
    assert parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later) == pytest.approx(90, abs=3)


class ThrottlingApi:
    """An HTTP receiver that answers 429 (Retry-After: 30) to each key's first request, then 200."""

    def __init__(self, server: HTTPServer, retry_after: str | None = "30"):
        self.seen: list[str] = []
        self.retry_after = retry_after
        server.expect_request("/hook").respond_with_handler(self.handle)

    def handle(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key", "")
        first = key not in self.seen
        self.seen.append(key)
        if first:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return Response('{"error": "slow down"}', status=429, headers=headers)
        return Response('{"ok": true}', status=200, content_type="application/json")


@pytest.mark.parametrize("retry_after", ["30", None])
def test_a_429_waits_its_retry_after_without_using_an_attempt(
    clock, tenant_a, httpserver, settings, retry_after
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    api = ThrottlingApi(httpserver, retry_after)
    step = {"kind": "http_request", "config": {"method": "POST", "url": httpserver.url_for("/hook"), "body": "{}",
                                                 "max_attempts": 1}}  # fmt: skip
    workflow = build_workflow(tenant_a, webhook([step]))
    run = start_run(workflow, {}, "evt-429")
    work(clock)
    execution = StepExecution.objects.get(run=run, step__kind="http_request")
    assert execution.status == "pending" and execution.attempts == 0, "the 429 counted no attempt"
    wait = (execution.next_attempt_at - clock.now).total_seconds()
    if retry_after:
        assert wait == pytest.approx(30, abs=1)
    else:
        assert 0 < wait <= 2
    assert "Waiting for the provider's limit" in execution.error
    settle(clock, step_seconds=31)
    execution.refresh_from_db()
    assert execution.status == "succeeded" and execution.attempts == 1, "max_attempts=1 was enough"
    assert [a["outcome"] for a in execution.attempt_log] == ["throttled", "succeeded"]
    assert len(api.seen) == 2 and len(set(api.seen)) == 1, "sent again once, with the same key"
    assert Delivery.objects.get(step_execution=execution).status == "sent"


def test_a_provider_that_refuses_for_its_rate_forever_ends_in_a_failure(
    clock, tenant_a, httpserver, settings
):
    """Throttling uses no attempt, until ENGINE_THROTTLED_GIVE_UP_SECONDS after the execution was made:
    then each 429 counts, and the step gives up after its attempts instead of waiting forever."""
    from datetime import timedelta

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.ENGINE_THROTTLED_GIVE_UP_SECONDS = 3600
    httpserver.expect_request("/hook").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "60"}
    )
    step = {"kind": "http_request", "config": {"method": "POST", "url": httpserver.url_for("/hook"), "body": "{}",
                                                 "max_attempts": 2}}  # fmt: skip
    run = start_run(build_workflow(tenant_a, webhook([step])), {}, "evt-429-forever")
    work(clock)
    execution = StepExecution.objects.get(run=run, step__kind="http_request")
    assert execution.status == "pending" and execution.attempts == 0, "an hour of grace: no attempt used"

    StepExecution.objects.filter(pk=execution.pk).update(created_at=clock.now - timedelta(hours=2))
    settle(clock, step_seconds=61)
    execution.refresh_from_db()
    assert execution.status == "failed" and execution.attempts == 2
    assert "gave up after 2 attempts" in execution.error


def paced_fan_out(
    clock, tenant, tenant_database, httpserver, provider, count: int
) -> tuple[list[float], float]:
    """`count` messages through `provider` (a Postmark speaking local server): when each arrived, and how
    long the whole fan-out took; every message is sent once."""
    arrivals: list[float] = []

    def accept(request: Request) -> Response:
        arrivals.append(time.time())
        return Response('{"MessageID": "m", "ErrorCode": 0, "Message": "OK"}',
                        content_type="application/json")  # fmt: skip

    httpserver.expect_request("/email", method="POST").respond_with_handler(accept)
    make_sender(tenant, provider)
    recipients_table(tenant_database, count)
    source = data_source(tenant, tenant_database)
    workflow = build_workflow(
        tenant, webhook([query(source, "SELECT id, email FROM r", children=[email(subject="hi", text="x")])])
    )
    run = start_run(workflow, {}, f"evt-paced-{count}")
    started = time.time()
    settle(clock, step_seconds=5)
    assert len(arrivals) == count
    assert Delivery.objects.filter(run=run, status="sent").count() == count
    return arrivals, time.time() - started


def test_a_provider_limit_paces_a_fan_out(clock, tenant_a, tenant_database, httpserver, settings):
    """A tenant's Postmark provider limited to 20 recipients a second (burst 2): 50 messages from a batch
    with 32 in flight arrive at most 22 in any second, and each once."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    provider = esp_provider(tenant_a, "postmark", httpserver)
    provider.rate_per_second, provider.rate_burst = 20, 2
    provider.save()
    arrivals, took = paced_fan_out(clock, tenant_a, tenant_database, httpserver, provider, 50)
    assert most_in_a_second(arrivals) <= 22
    assert took >= 50 / 20 * 0.9, "paced, not sent at once"


def test_a_tenants_own_send_rate_paces_it_over_every_provider(
    clock, tenant_a, tenant_database, httpserver, settings
):
    """An operator limits the workspace to 10 messages a second (burst 2); its provider has no limit of
    its own: 30 messages arrive at most 12 in any second, each once."""
    from tenants.limits import forget
    from tenants.models import TenantLimits

    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    TenantLimits.objects.create(tenant=tenant_a, send_rate_per_second=10, send_rate_burst=2)
    forget()
    provider = esp_provider(tenant_a, "postmark", httpserver)
    arrivals, took = paced_fan_out(clock, tenant_a, tenant_database, httpserver, provider, 30)
    assert most_in_a_second(arrivals) <= 12
    assert took >= 30 / 10 * 0.9, "paced, not sent at once"


def test_the_run_page_says_the_workspace_limit_holds_a_step(owner_client, tenant_a, redis_conn):
    import json as json_module

    from runs.engine.pacing import waiting_key

    workflow = build_workflow(tenant_a, webhook([email(subject="hi", text="x")]))
    run = start_run(workflow, {"email": "a@example.com"}, "evt-held")
    step = workflow.published_version.steps.get(kind="send_email")
    redis_conn.set(
        waiting_key(run.pk, step.pk), json_module.dumps({"rate": 10, "wait": 3, "whose": "tenant"})
    )

    from django.urls import reverse

    page = owner_client.get(reverse("runs:run_detail", args=[run.pk])).content.decode()

    assert (
        "waiting for the workspace&#x27;s send limit (10/s)" in page
        or "waiting for the workspace's send limit (10/s)" in page
    )
