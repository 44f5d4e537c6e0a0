"""One Redis database per pytest-xdist worker, like pytest-django's one PostgreSQL database per worker.

Tests flush their Redis database (the `redis_conn` fixture, RQ's burst workers drain whole queues), so two
workers sharing one would empty each other's queues. The run's REDIS_URL (database 15 under
`config.services --test`) is worker gw0's; worker gwN takes the N-th database after it, counting up to 15
and then down below the base, skipping the databases development and the benchmarks use. A run without
xdist keeps REDIS_URL as it is.

The choice is written back to the settings that hold the URL and to os.environ, so that RQ workers, the
listener and gunicorn the tests start (they copy os.environ or pass settings.REDIS_URL) use it too.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Never a worker's: development's database and the benchmarks' `--redis-db` / BENCH_REDIS_URL defaults
# (tests/test_suite_isolation.py checks the benchmarks still use these).
RESERVED_DBS = {0: "development", 2: "benchmarks", 12: "benchmarks", 13: "benchmarks", 14: "benchmarks"}
REDIS_DBS = 16  # Redis's default `databases`
run_redis_url = ""  # the run's REDIS_URL, before use_worker_redis gave this worker its own database


def worker_index() -> int | None:
    """This process's xdist worker number (gw3 -> 3), or None outside xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return int(worker.removeprefix("gw")) if worker else None


def worker_db(base: int, index: int) -> int:
    """The Redis database of worker `index` when the run's REDIS_URL names database `base`."""
    above = range(base + 1, REDIS_DBS)
    below = range(base - 1, -1, -1)
    choices = [base, *(db for db in [*above, *below] if db not in RESERVED_DBS)]
    if index >= len(choices):
        raise RuntimeError(f"{index + 1} xdist workers but only {len(choices)} free Redis databases")
    return choices[index]


def redis_db(url: str) -> int:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if "db" in query:  # unix://path?db=15 (the embedded Redis)
        return int(query["db"])
    return int(parts.path.strip("/") or 0)


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if "db" in query or parts.scheme == "unix":  # kept as text: urlunsplit drops unix:///'s empty host
        return url.partition("?")[0] + "?" + urlencode({**query, "db": db})
    return urlunsplit(parts._replace(path=f"/{db}"))


def use_worker_redis(settings) -> None:
    """Point REDIS_URL, the cache and every RQ queue at this worker's own database (no-op outside xdist).

    Runs before anything connects: Django's cache and django-rq read these settings on first use. Runs
    once per process: tests/conftest.py is imported twice (by pytest as `conftest`, and by the test modules
    that import PASSWORD from `tests.conftest`), and a second call would move gw1 from database 11 on to
    15, gw0's, so the two workers flushed each other's queues, cache and sign-in counters.
    """
    global run_redis_url
    if run_redis_url:
        return
    run_redis_url = settings.REDIS_URL
    index = worker_index()
    if index is None:
        return
    url = with_db(settings.REDIS_URL, worker_db(redis_db(settings.REDIS_URL), index))
    settings.REDIS_URL = os.environ["REDIS_URL"] = url
    for cache in settings.CACHES.values():
        if "redis" in cache["BACKEND"].lower():
            cache["LOCATION"] = url
    for queue in settings.RQ_QUEUES.values():  # django_rq.settings.QUEUES is this same dict
        queue["URL"] = url
