"""Provider rate limits: one token bucket per provider in Redis, shared by every worker on every host.

A provider (a tenant's `Provider` row, or the platform's own mail server) allows `rate` messages a second
with bursts of up to `burst`; a message costs one token per recipient (To + CC + BCC: SES and most ESPs
count recipients, not messages). The bucket is a Redis hash changed by one Lua script, so taking tokens is
atomic across processes and hosts, and its clock is Redis's own `TIME` (hosts' clocks may disagree).

Tokens are *reserved*: `reserve(limit, cost)` takes them at once, letting the bucket go below zero, and
answers how long the caller must wait before sending (0 when tokens were there). Waiters are thus served
in the order they asked and nobody polls; a caller that dies while waiting only wastes its tokens (fewer
sends, never more).

Why Redis and not PostgreSQL: every message asks the bucket, 100s of times a second from every worker; a
row updated that often is one hot lock and one WAL record per message in the database that holds the
work itself. The bucket holds nothing that must survive: if Redis is lost (restarted empty, flushed) the
bucket is created again *empty* (never full), so the provider sees at most `rate` a second from then on,
never more than the limit; while Redis does not answer, `reserve` waits for it (no token, no send) and
the messages stay in PostgreSQL (their executions pending or running), so nothing is lost, only time.

AIMD: a provider that refuses for throttling (HTTP 429, SES's Throttling) calls `throttled(limit)`, which
halves the bucket's rate (not below `MIN_RATE_FRACTION` of the limit, at most once a second: the answers
to requests sent before a decrease say nothing new); the rate then grows back linearly, by the full limit
over `RECOVERY_SECONDS`, until the provider refuses again or the limit is reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

# A throttled bucket's rate climbs back to the limit over this many seconds (the additive increase).
RECOVERY_SECONDS = 30.0
# One decrease per this many seconds: the refusals of requests sent before a decrease say nothing new.
DECREASE_COOLDOWN_SECONDS = 1.0
# The multiplicative decrease never takes the rate below this fraction of the limit.
MIN_RATE_FRACTION = 0.05
KEY_PREFIX = "ratelimit"
# A bucket idle this long is forgotten (an empty bucket is what a new one is anyway).
IDLE_TTL_SECONDS = 3600

# KEYS[1] bucket. ARGV: limit, burst, cost, mode ("reserve" | "peek" | "throttled").
# Fields: tokens, at (when tokens was computed), cut (the rate after the last decrease), cut_at.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local mode = ARGV[4]
local recovery = tonumber(ARGV[5])
local floor = tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'cut', 'cut_at')
local tokens = tonumber(h[1]) or 0
local at = tonumber(h[2]) or now
local rate = limit
if h[3] then
  rate = math.min(limit, tonumber(h[3]) + (now - tonumber(h[4])) * limit / recovery)
end
if h[1] then
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
if mode == 'throttled' then
  if h[4] and now - tonumber(h[4]) < tonumber(ARGV[8]) then
    return {'0', tostring(rate)}
  end
  local cut = math.max(limit * floor, rate / 2)
  redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tokens, 0)), 'at', tostring(now),
    'cut', tostring(cut), 'cut_at', tostring(now))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
  return {'0', tostring(cut)}
end
local wait = 0
if mode == 'reserve' then
  tokens = tokens - cost
  if tokens < 0 then wait = -tokens / rate end
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
end
return {tostring(wait), tostring(rate)}
"""


@dataclass(frozen=True)
class RateLimit:
    """`key` names the bucket ("provider:12", "platform:email"); `rate` a second, bursts of `burst`."""

    key: str
    rate: float
    burst: int

    @property
    def redis_key(self) -> str:
        return f"{KEY_PREFIX}:{self.key}"


class RedisUnavailable(Exception):
    """Redis did not answer: no token can be taken, so nothing may be sent yet."""


def _connection():
    import django_rq  # the engine's Redis; imported here so that settings are read when first used

    return django_rq.get_connection("default")


_script = None


def _run(limit: RateLimit, cost: int, mode: str) -> tuple[float, float]:
    global _script
    try:
        if _script is None:
            _script = _connection().register_script(_SCRIPT)
        wait, rate = _script(
            keys=[limit.redis_key],
            args=[
                max(limit.rate, 0.001),
                max(limit.burst, 1),
                cost,
                mode,
                RECOVERY_SECONDS,
                MIN_RATE_FRACTION,
                IDLE_TTL_SECONDS,
                DECREASE_COOLDOWN_SECONDS,
            ],
        )
    except RedisError as exc:
        raise RedisUnavailable(str(exc)) from exc
    return float(wait), float(rate)


def reserve(limit: RateLimit, cost: int = 1) -> float:
    """Take `cost` tokens now; the seconds to wait before sending (0: send at once)."""
    return _run(limit, max(1, int(cost)), "reserve")[0]


def throttled(limit: RateLimit) -> float:
    """The provider refused for throttling: halve the bucket's rate; the new rate."""
    return _run(limit, 0, "throttled")[1]


def current_rate(limit: RateLimit) -> float:
    """The rate the bucket allows now (the limit, or less after the provider throttled)."""
    return _run(limit, 0, "peek")[1]


def wait_for_tokens(
    limit: RateLimit, cost: int, idle=time.sleep, on_redis_down=None, max_backoff: float = 2.0
) -> float:
    """Reserve `cost` tokens and return the seconds still to wait before sending. While Redis is away,
    retry (backing off to `max_backoff`), calling `idle(seconds)` between tries: no token, no send."""
    backoff = 0.25
    while True:
        try:
            return reserve(limit, cost)
        except RedisUnavailable:
            if on_redis_down is not None:
                on_redis_down()
            idle(backoff)
            backoff = min(max_backoff, backoff * 2)


# How many messages wait to go through a provider: counted by the engine (runs/provider_queue.py), which
# registers itself here when it loads (a provider page lives below the engine and cannot import it).
QUEUE_COUNTERS: list[Callable[[Any], int]] = []


def queued(provider) -> int | None:
    """Messages waiting for `provider` (pending or running sends through it); None when nobody counts."""
    if not QUEUE_COUNTERS:
        return None
    return sum(counter(provider) for counter in QUEUE_COUNTERS)


def limit_line(limit: RateLimit | None, waiting: int | None) -> str:
    """ "14/s · 3,200 queued · about 4 min": the provider's rate now (lower than its limit while it is
    throttled), the messages waiting for it and how long they take at that rate."""
    if limit is None:
        return "No limit" + (f" · {waiting:,} queued" if waiting else "")
    try:
        rate = current_rate(limit)
    except RedisUnavailable:
        rate = limit.rate
    parts = [f"{_number(rate)}/s"]
    if rate < limit.rate * 0.99:
        parts[0] += f" (slowed down from {_number(limit.rate)}/s: the provider refused for its rate)"
    if waiting is not None:
        parts.append(f"{waiting:,} queued")
        if waiting:
            parts.append(f"about {_duration(waiting / rate)}")
    return " · ".join(parts)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
