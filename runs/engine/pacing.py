"""Sending at the provider's pace: a token from its bucket before each message leaves.

Both send paths (runs/engine/delivery_protocol.py one at a time, runs/engine/concurrent.py several in
flight) ask a batch's `Pacer` before a message's Delivery row is written: the token is reserved first,
the batch waits until its turn (settling answers meanwhile), then writes the row and sends. So a worker
killed while waiting for the provider's limit leaves no `sending` row behind (nothing uncertain), and the
in-flight concurrency stays what it was: the bucket, shared by every worker, decides the pace.

While a batch waits longer than `VISIBLE_AFTER_SECONDS`, it says so in Redis (`waiting_key`, expiring on
its own) so that the run page shows the step "waiting for the provider's limit"; a throttling answer
(429) lowers the bucket's rate (integrations/ratelimit.py, AIMD).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from integrations import ratelimit
from integrations.channels.base import ChannelError
from integrations.ratelimit import RateLimit
from runs.engine.context import StepContext
from runs.engine.enqueue import redis_connection
from tenants.limits import limits_for
from workflows.steps.send_kind import SendKind

logger = logging.getLogger(__name__)

VISIBLE_AFTER_SECONDS = 0.5
# A message may leave this long after its turn; later, it takes a new one (its old tokens are lost).
LATE_SECONDS = 0.05
WAITING_TTL_SECONDS = 5


def late_key(limit: RateLimit) -> str:
    return f"{limit.redis_key}:late"


def waiting_key(run_id: int, step_id: int) -> str:
    return f"{ratelimit.KEY_PREFIX}:waiting:{run_id}:{step_id}"


def tenant_rate_limit(tenant_id: int) -> RateLimit | None:
    """The tenant's own send rate over all its providers (an operator's limit, tenants/limits.py)."""
    limits = limits_for(tenant_id)
    if limits.send_rate_per_second <= 0:
        return None
    burst = limits.send_rate_burst or max(1, math.ceil(limits.send_rate_per_second))
    return RateLimit(f"tenant:{tenant_id}", limits.send_rate_per_second, burst)


class Pacer:
    def __init__(self, ctx: StepContext, kind: SendKind):
        self.ctx, self.kind = ctx, kind
        self.limit: RateLimit | None = kind.rate_limit(ctx)
        # A message takes tokens from its provider's bucket and from its tenant's: the slower one decides.
        self.buckets = [b for b in (self.limit, tenant_rate_limit(ctx.run.tenant_id)) if b is not None]
        self._shown_until = 0.0
        self.late = 0  # messages that took a fresh turn (counted for the benchmark's log line)

    def reserve(self, transport: dict[str, Any], idle: Callable[[float], None] = time.sleep) -> float:
        """Take this message's tokens; the seconds to wait before it may leave (0: now)."""
        cost = self.kind.cost(transport)
        waits = {bucket: ratelimit.wait_for_tokens(bucket, cost, idle=idle) for bucket in self.buckets}
        if not waits:
            return 0.0
        slowest, wait = max(waits.items(), key=lambda pair: pair[1])
        if wait >= VISIBLE_AFTER_SECONDS:
            self._show_waiting(wait, slowest)
        return wait

    def on_time(self, transport: dict[str, Any], turn: float) -> None:
        """Just before the request leaves: a message held up past its turn (a slow commit, a busy CPU)
        by more than LATE_SECONDS takes a fresh turn, so that late messages never bunch up with those
        on time: the provider sees at most the limit (plus the burst) in any second."""
        while time.monotonic() - turn > LATE_SECONDS:
            self.late += 1
            wait = self.reserve(transport)
            turn = time.monotonic() + wait
            if wait > 0:
                time.sleep(wait)

    def finish(self) -> None:
        """At the batch's end: count the messages that took a fresh turn (`late_key`, for the benchmark)."""
        if self.buckets and self.late:
            with contextlib.suppress(RedisError):
                redis_connection().incrby(late_key(self.buckets[0]), self.late)

    def throttled(self, error: ChannelError) -> None:
        """The provider refused for its rate: slow the shared bucket down (AIMD's decrease)."""
        if self.limit is None or not error.throttled:
            return
        try:
            rate = ratelimit.throttled(self.limit)
        except ratelimit.RedisUnavailable:
            return  # the refusal is retried anyway; the rate stays until Redis answers
        logger.warning(
            "Provider %s refused for its rate (%s): its rate is now %.2f/s",
            self.limit.key,
            error.message[:200],
            rate,
        )

    def _show_waiting(self, wait: float, bucket: RateLimit) -> None:
        now = time.monotonic()
        if now < self._shown_until:
            return
        self._shown_until = now + 1.0
        whose = "tenant" if bucket is not self.limit else "provider"
        value = json.dumps({"rate": bucket.rate, "wait": round(wait, 1), "whose": whose})
        with contextlib.suppress(RedisError):  # only what the page shows
            redis_connection().set(
                waiting_key(self.ctx.run.pk, self.ctx.step.pk),
                value,
                ex=WAITING_TTL_SECONDS + int(wait),
            )


def waiting_steps(run_id: int, step_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{step id: {"rate", "wait"}} for the run's steps whose messages wait for the provider's limit now."""
    if not step_ids:
        return {}
    try:
        values = redis_connection().mget([waiting_key(run_id, step_id) for step_id in step_ids])
    except RedisError:
        return {}
    found = {}
    for step_id, value in zip(step_ids, values, strict=True):
        if value:
            try:
                found[step_id] = json.loads(value)
            except ValueError:
                continue
    return found
