"""Retry policy: exponential backoff with full jitter, kept in PostgreSQL as `next_attempt_at`.

Defaults (settings, overridable per step with `max_attempts` and `retry_base_seconds`): 10 attempts;
retry n waits a random time in [0, min(3600, 2 × 3^(n-1))] seconds: up to 2 s, 6 s, 18 s, 54 s, ...
Full jitter spreads retries of a big batch that failed together (e.g. an SMTP server's 451s).
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from django.conf import settings


def max_attempts(config: dict[str, Any]) -> int:
    return int(config.get("max_attempts") or settings.ENGINE_MAX_ATTEMPTS)


def backoff_bound(attempt: int, config: dict[str, Any]) -> float:
    """The longest wait before retrying after failed attempt number `attempt` (1-based)."""
    base = float(config.get("retry_base_seconds") or settings.ENGINE_RETRY_BASE_SECONDS)
    factor = settings.ENGINE_RETRY_FACTOR
    return float(min(settings.ENGINE_RETRY_MAX_SECONDS, base * factor ** max(0, attempt - 1)))


def backoff(attempt: int, config: dict[str, Any], rng: random.Random | None = None) -> timedelta:
    """A full-jitter delay after failed attempt `attempt`."""
    return timedelta(seconds=(rng or random).uniform(0, backoff_bound(attempt, config)))
