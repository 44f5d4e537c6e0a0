"""Riding out a dependency that is away: Redis or PostgreSQL stopped, restarting or failing over.

No long-running process exits because a dependency is unreachable (worker, scheduler, cron, listener;
gunicorn serves 503s from `/readyz` meanwhile). Each waits, retrying with a capped backoff, and logs the
outage once when it starts and once when it ends, instead of a traceback per retry.

Two levers:
- `RideOutRetry`, a redis-py retry policy that retries forever, set on the Redis clients that RQ's own
  loops use (the worker's, the scheduler's, the cron's). RQ's work loop, its failure handling and its
  scheduler then wait for Redis inside the client instead of raising `ConnectionError` into code that
  quits on it. The engine's own client (runs/engine/enqueue.py) keeps redis-py's few retries: a batch
  must not hang on Redis, it leaves its follow-ups to the sweeper.
- `retry_database()` and `wait_for_database()`, for what cannot go on without PostgreSQL: a process's
  first heartbeat, the sweeper's pass, a worker after a job failed because the database went away, and
  a batch's writes: its outcomes, and the release of a batch the outage interrupted
  (runs/engine/executor.py), so that its claims go back to `pending` as soon as the database returns.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from rq.timeouts import JobTimeoutException

from integrations.failures import behind
from runs.engine import connections

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds between attempts: 0.25, 0.5, 1, 2, then every 2 s, so work resumes soon after the return.
BACKOFF_BASE = 0.25
BACKOFF_CAP = 2.0

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)
# The database went away, whichever layer noticed: Django's wrappers, or psycopg's own errors where the
# engine talks to libpq directly (the pipelined Delivery insert, runs/engine/ledger.py), e.g.
# psycopg.errors.AdminShutdown when PostgreSQL is restarted.
DATABASE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


class Outage:
    """One dependency's state in this process: logs when it goes away and when it is back, once each."""

    def __init__(self, dependency: str):
        self.dependency = dependency
        self.since: float | None = None
        self.lock = threading.Lock()

    def down(self, error: BaseException) -> None:
        with self.lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
        logger.warning("%s is unreachable (%s); waiting for it", self.dependency, error)

    def up(self) -> None:
        if self.since is None:  # the common case, without the lock
            return
        with self.lock:
            since, self.since = self.since, None
        if since is not None:
            logger.warning("%s is back after %.1f s", self.dependency, time.monotonic() - since)


REDIS = Outage("Redis")
DATABASE = Outage("PostgreSQL")


class RideOutRetry(Retry):
    """redis-py's retry, forever, with one log line when Redis goes away and one when it is back.

    `stopping` makes it give up (the error is raised as usual), so that a process asked to stop during
    an outage does stop.
    """

    def __init__(self, outage: Outage = REDIS):
        super().__init__(ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), retries=-1)
        self.outage = outage
        self.stopping = threading.Event()

    def __deepcopy__(self, memo: dict[int, Any]) -> RideOutRetry:
        # redis-py copies the policy into each new connection: share this one, so `stopping` reaches all.
        return self

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        failures = 0

        def failed(error: Exception, *count: int) -> Any:
            nonlocal failures
            failures += 1
            result = fail(error, *count) if with_failure_count else fail(error)
            if self.stopping.is_set():
                raise error
            if (
                failures > 1
            ):  # not a pooled connection that a restarted server closed: reconnecting fixes that
                self.outage.down(error)
            return result

        result = super().call_with_retry(do, failed, is_retryable, with_failure_count)
        if failures > 1:  # only a call that waited out the outage knows it ended (some calls touch no socket)
            self.outage.up()
        return result


def ride_out_redis(*clients: Redis) -> RideOutRetry:
    """Make these Redis clients (and every connection of their pools) wait out outages; returns the
    policy, whose `stopping` event ends the waiting."""
    policy = RideOutRetry()
    for client in clients:
        client.set_retry(policy)
    return policy


def is_database_outage(error: BaseException | None) -> bool:
    """True when `error`, or one it was raised from, says PostgreSQL could not be reached or went away
    (Django's wrappers or psycopg's own errors, e.g. `AdminShutdown` from a pipeline)."""
    return behind(error, DATABASE_ERRORS) is not None


def database_answers() -> bool:
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")
    except DatabaseError as error:
        DATABASE.down(error)
        connection.close()  # a broken connection is replaced by the next attempt
        return False
    DATABASE.up()
    return True


def wait_for_database(stop: Callable[[], bool] = lambda: False) -> bool:
    """Block until PostgreSQL answers (True), or `stop()` says to give up (False)."""
    delay = BACKOFF_BASE
    while not database_answers():
        if stop():
            return False
        time.sleep(delay)
        delay = min(delay * 2, BACKOFF_CAP)
    return True


def retry_database(
    call: Callable[[], T],
    stop: Callable[[], bool] = lambda: False,
    *,
    what: str = "",
    give_up_after: float | None = None,
) -> T | None:
    """`call()`, retried until PostgreSQL takes it; None if `stop()` said to give up, or `give_up_after`
    seconds passed (then, for a batch's writes, the sweeper's backstop takes its claims).

    Retried: a database outage (`is_database_outage`), a connection an error left busy mid-statement,
    and RQ's job timeout firing inside the call or the wait (a batch's release must not be stranded by
    its own timeout). Anything else is raised. The first failure is retried at once on a new connection
    (a pooled one that a restarted server closed is no outage); from the second, the outage is logged
    once per process (`DATABASE`) and the tries back off from BACKOFF_BASE to BACKOFF_CAP seconds.
    `what` names the write in the log lines of a caller that waits for it.
    """
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    delay, failures, started = BACKOFF_BASE, 0, time.monotonic()
    while True:
        try:
            result = call()
        except Exception as error:
            busy = connections.reset_if_busy()
            outage = is_database_outage(error)
            if not (outage or busy or isinstance(error, JobTimeoutException)):
                raise
            with contextlib.suppress(Exception):
                connection.close()  # the next try opens a new connection
            failures += 1
            if failures == 1:
                continue
            if outage:
                DATABASE.down(error)
            if what and failures == 2:
                logger.warning("Writing %s waits for PostgreSQL (%s)", what, error)
            if stop() or (deadline is not None and time.monotonic() + delay > deadline):
                if what:
                    logger.warning("Could not write %s; the sweeper takes it over", what, exc_info=True)
                return None
            _sleep(delay)
            delay = min(delay * 2, BACKOFF_CAP)
            continue
        if failures > 1:
            DATABASE.up()
            if what:
                logger.warning("Wrote %s after %.1f s", what, time.monotonic() - started)
        return result


def _sleep(seconds: float) -> None:
    """A sleep that RQ's job timeout may interrupt: the retry goes on."""
    with contextlib.suppress(JobTimeoutException):
        time.sleep(seconds)
