"""Replay protection for inbound webhooks: a signature is accepted once.

A captured request (timestamp, signature, body) stays valid for WEBHOOK_TIMESTAMP_TOLERANCE seconds either
side of its timestamp, and the `Idempotency-Key` header is not signed, so without this a replay (with no
key, or any new key) would start another run. Each accepted signature is remembered in Redis (Django's
cache: an atomic SET NX) until its timestamp can no longer pass the tolerance check; a second use is a 409.

The Idempotency-Key path is unchanged: the same signed request sent again with the same key still
reaches start_run, which answers with the run that key already started.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from integrations.inbound import InboundRejected

KEY_PREFIX = "webhook-signature"


def remember_signature(workflow_id: int, signature: str, timestamp: int, event_key: str, keyed: bool) -> None:
    """Record a verified signature; InboundRejected(409) when it was accepted before (a replay)."""
    tolerance = getattr(settings, "WEBHOOK_TIMESTAMP_TOLERANCE", 300)
    # The signature stays acceptable until timestamp + tolerance: remember it at least that long.
    ttl = max(1, timestamp + tolerance - int(time.time()) + 1)
    name = f"{KEY_PREFIX}:{workflow_id}:{signature}"
    try:
        if cache.add(name, event_key, ttl):
            return
        first_key = cache.get(name)
    except RedisError:
        raise InboundRejected(
            503, "Rowbell cannot check this request for replays right now: send it again shortly."
        ) from None
    if keyed and first_key == event_key:
        return  # the sender's retry of one event: start_run answers with the run its key started
    raise InboundRejected(
        409,
        "This signed request was already accepted: a replayed signature starts no run. "
        "Sign each new event with the current timestamp, or retry one event with the same Idempotency-Key.",
    )
