"""The REST API's rate limit per API key: API_RATE_LIMIT requests per API_RATE_WINDOW_SECONDS, counted in
the cache (Redis) in fixed windows with one atomic INCR per request; over it, DRF answers 429 with
`Retry-After` (the seconds left in the window).

When the cache cannot be reached the request is let through (and logged): the limit protects the service
from a runaway client, while an API that answers 500 to every call during a Redis outage would stop every
client, well-behaved ones too. PostgreSQL does the work either way.
"""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from tenants.models import ApiKey

logger = logging.getLogger(__name__)


def wall_clock() -> float:
    """Seconds since the epoch (tests move it to a window's start)."""
    return time.time()


class ApiKeyRateThrottle(BaseThrottle):
    retry_after: int | None = None

    def allow_request(self, request: Request, view) -> bool:
        api_key = request.auth
        limit = settings.API_RATE_LIMIT
        if not isinstance(api_key, ApiKey) or limit <= 0:
            return True
        window = settings.API_RATE_WINDOW_SECONDS
        now = wall_clock()
        start = int(now // window) * window
        key = f"api-rate:{api_key.pk}:{start}"
        try:
            cache.add(key, 0, timeout=window + 5)
            count = cache.incr(key)
        except (RedisError, OSError) as exc:
            logger.warning(
                "API rate limit not checked (the cache is unreachable: %s); request let through", exc
            )
            return True
        if count <= limit:
            return True
        self.retry_after = max(1, math.ceil(start + window - now))
        return False

    def wait(self) -> int | None:
        return self.retry_after
