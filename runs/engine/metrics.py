"""Counters that many processes add to: send latency per channel and the sweeper's reclaims, in Redis.

Why Redis and not prometheus_client's multiprocess mode: workers run on several machines, and a
PROMETHEUS_MULTIPROC_DIR is one machine's directory; one Redis is what all processes share already.
Each batch adds its latencies with one pipeline (not one command per message), and the web process's
`/metrics` reads them back (config/metrics.py). Losing Redis resets them, which Prometheus treats like
any counter reset. Writing a metric never fails a batch: Redis errors are logged and dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from runs.engine.enqueue import redis_connection

logger = logging.getLogger(__name__)

PREFIX = "rowbell:metrics:"
LATENCY_KEY = PREFIX + "send_latency"
RECLAIMS_KEY = PREFIX + "sweeper_reclaims"
LISTENER_LAG_KEY = PREFIX + "listener_lag"  # data source id -> "<seconds> <unix time measured>"
# Seconds: a local SMTP relay answers in milliseconds, a slow HTTP receiver in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def record_send_latencies(channel: str, latencies: Iterable[float]) -> None:
    latencies = list(latencies)
    if not latencies:
        return
    try:
        pipe = redis_connection().pipeline(transaction=False)
        for bound in LATENCY_BUCKETS:
            n = sum(1 for value in latencies if value <= bound)
            if n:
                pipe.hincrby(LATENCY_KEY, f"{channel}|{bound}", n)
        pipe.hincrby(LATENCY_KEY, f"{channel}|count", len(latencies))
        pipe.hincrbyfloat(LATENCY_KEY, f"{channel}|sum", sum(latencies))
        pipe.execute()
    except Exception:
        logger.warning("Could not record send latencies", exc_info=True)


def count_reclaims(n: int, reason: str) -> None:
    if n:
        try:
            redis_connection().hincrby(RECLAIMS_KEY, reason, n)
        except Exception:
            logger.warning("Could not count reclaims", exc_info=True)


def read_send_latencies() -> dict[str, dict[str, Any]]:
    """{channel: {"buckets": [(bound, cumulative count), ...], "count": n, "sum": s}}."""
    raw = redis_connection().hgetall(LATENCY_KEY)
    by_channel: dict[str, dict[str, float]] = {}
    for key, value in raw.items():
        channel, _, field = _text(key).partition("|")
        by_channel.setdefault(channel, {})[field] = float(value)
    result = {}
    for channel, fields in by_channel.items():
        buckets = [(bound, int(fields.get(str(bound), 0))) for bound in LATENCY_BUCKETS]
        result[channel] = {
            "buckets": buckets,
            "count": int(fields.get("count", 0)),
            "sum": fields.get("sum", 0.0),
        }
    return result


def read_reclaims() -> dict[str, int]:
    return {_text(key): int(value) for key, value in redis_connection().hgetall(RECLAIMS_KEY).items()}


def record_listener_lag(datasource_id: int, seconds: float) -> None:
    try:
        redis_connection().hset(LISTENER_LAG_KEY, str(datasource_id), f"{seconds:.3f} {time.time():.0f}")
    except Exception:
        logger.warning("Could not record the listener's lag", exc_info=True)


def read_listener_lags(max_age: float = 300.0) -> dict[int, float]:
    """{data source id: lag in seconds}, leaving out measurements older than `max_age` (stale sources)."""
    now = time.time()
    lags = {}
    for key, value in redis_connection().hgetall(LISTENER_LAG_KEY).items():
        seconds, measured = (float(part) for part in _text(value).split())
        if now - measured <= max_age:
            lags[int(key)] = seconds
    return lags


def _text(raw: bytes | str) -> str:
    """A key or value as read from Redis (bytes from the engine's client, which does not decode)."""
    return raw.decode() if isinstance(raw, bytes) else raw
