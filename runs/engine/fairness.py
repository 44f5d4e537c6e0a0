"""Per-tenant concurrency: at most `limits_for(tenant).concurrency` batches of one tenant run at a time
(the operator's value in the admin, else ENGINE_TENANT_CONCURRENCY).

Slots are members of a Redis sorted set per tenant, scored by when they were taken; slots older than
ENGINE_EXECUTION_TIMEOUT (a worker killed while holding one) expire on the next acquire. A batch that
finds its tenant full does not wait in the worker: it is queued again a second later, so the worker
moves on to other tenants' jobs. Together with the per-fan-out lanes (ENGINE_FANOUT_PARALLELISM) and
the `default`-before-`low` queue order, one tenant's 100,000-item fan-out cannot hold every worker.
If Redis is unreachable the batch runs anyway: fairness is best effort, correctness lives in PostgreSQL.
"""

from __future__ import annotations

import contextlib
import time
import uuid

from django.conf import settings
from redis.exceptions import RedisError

from runs.engine.enqueue import redis_connection
from tenants.limits import limits_for


def _key(tenant_id: int) -> str:
    return f"rowbell:tenant:{tenant_id}:batches"


def acquire(tenant_id: int) -> str | None:
    """A slot token, or None when the tenant already runs its maximum of batches."""
    limit = limits_for(tenant_id).concurrency
    token = uuid.uuid4().hex
    if limit <= 0:
        return token
    key, now = _key(tenant_id), time.time()
    try:
        conn = redis_connection()
        with conn.pipeline() as pipe:
            pipe.zremrangebyscore(key, 0, now - settings.ENGINE_EXECUTION_TIMEOUT)
            pipe.zadd(key, {token: now})
            pipe.zcard(key)
            pipe.expire(key, settings.ENGINE_EXECUTION_TIMEOUT)
            _removed, _added, taken, _ttl = pipe.execute()
        if taken > limit:
            conn.zrem(key, token)
            return None
    except RedisError:
        return token
    return token


def release(tenant_id: int, token: str) -> None:
    with contextlib.suppress(RedisError):
        redis_connection().zrem(_key(tenant_id), token)
