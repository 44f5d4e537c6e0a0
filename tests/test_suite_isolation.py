"""The suite runs in parallel (pytest-xdist): each worker has its own Redis database, never one that
development or a benchmark uses, and everything in the worker that talks to Redis agrees on it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import django_rq
import pytest
from django.conf import settings
from django.core.cache import cache

from tests import workers

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("base", [15, 5, 1, 11])
def test_every_worker_gets_its_own_redis_database_and_none_that_is_reserved(base):
    dbs = [workers.worker_db(base, index) for index in range(workers.REDIS_DBS - len(workers.RESERVED_DBS))]
    assert dbs[0] == base  # a run with one worker uses REDIS_URL as given
    assert len(set(dbs)) == len(dbs)
    assert not set(dbs[1:]) & set(workers.RESERVED_DBS)
    assert all(0 <= db < workers.REDIS_DBS for db in dbs)


def test_ci_and_development_runs_use_the_databases_they_were_given():
    assert [workers.worker_db(15, i) for i in range(3)] == [15, 11, 10]  # CI: config.services --test
    assert [workers.worker_db(5, i) for i in range(4)] == [5, 6, 7, 8]  # a developer given dbs 5-8


def test_more_workers_than_databases_is_refused_not_shared():
    with pytest.raises(RuntimeError, match="free Redis databases"):
        workers.worker_db(15, workers.REDIS_DBS)


@pytest.mark.parametrize(
    "url, db, moved",
    [
        ("redis://127.0.0.1:6379/15", 15, "redis://127.0.0.1:6379/7"),
        ("redis://:secret@127.0.0.1:6379", 0, "redis://:secret@127.0.0.1:6379/7"),
        ("unix:///srv/data/redis.sock?db=15", 15, "unix:///srv/data/redis.sock?db=7"),
    ],
)
def test_redis_urls_are_read_and_rewritten_with_their_database(url, db, moved):
    assert workers.redis_db(url) == db
    assert workers.with_db(url, 7) == moved


def test_the_benchmarks_redis_databases_are_reserved():
    """A benchmark run on the same server as the tests flushes its own database: never a worker's."""
    defaults = set()
    for script in (ROOT / "benchmarks").glob("*.py"):
        text = script.read_text()
        defaults |= {int(db) for db in re.findall(r'"--redis-db", type=int, default=(\d+)', text)}
        defaults |= {int(db) for db in re.findall(r'BENCH_REDIS_URL", "redis://[^"]*/(\d+)"', text)}
    assert defaults and defaults <= set(workers.RESERVED_DBS), defaults


def test_queues_cache_and_started_processes_use_this_workers_redis_database(redis_conn):
    db = workers.redis_db(settings.REDIS_URL)
    if workers.worker_index() is not None:
        assert db == workers.worker_db(workers.redis_db(workers.run_redis_url), workers.worker_index())
    assert os.environ["REDIS_URL"] == settings.REDIS_URL  # what rqworker, listener and gunicorn inherit
    assert redis_conn.connection_pool.connection_kwargs["db"] == db
    for name in settings.RQ_QUEUES:
        assert django_rq.get_queue(name).connection.connection_pool.connection_kwargs["db"] == db
    cache.set("isolation-probe", "here")
    assert any(key.endswith(b"isolation-probe") for key in redis_conn.keys("*isolation-probe"))


def test_choosing_the_workers_database_again_moves_nothing(monkeypatch):
    """tests/conftest.py can be imported twice; a second choice would move gw1 from 11 on to gw0's 15."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    again = SimpleNamespace(
        REDIS_URL=settings.REDIS_URL,
        CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "x"}},
        RQ_QUEUES={"default": {"URL": "x"}},
    )
    workers.use_worker_redis(again)
    assert again.REDIS_URL == settings.REDIS_URL and again.RQ_QUEUES["default"]["URL"] == "x"
