"""A Redis and a PostgreSQL that a test starts, stops and starts again (never the shared servers), and
the Procfile's processes pointed at them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis

from tests.support import free_port


def wait_until(predicate, timeout: float, what: str, step: float = 0.1) -> float:
    """Seconds it took for `predicate()` to hold; fails after `timeout`."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, f"timed out ({timeout} s) waiting for {what}"
        time.sleep(step)
    return time.monotonic() - started


class RedisServer:
    """`redis-server` on a free port, without persistence: a restart loses every key, as a Redis without
    a disk (or a failover to an empty replica) does."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server)")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: _pings(client), 10, "redis-server to answer")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextmanager
def own_redis(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def pg_bin(name: str) -> str:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    for folder in reversed(versions):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found (PostgreSQL's server binaries)")
    return found


class PostgresServer:
    """A PostgreSQL cluster of the test's own (initdb in a temp dir, a free port, trust auth)."""

    def __init__(self, settings: dict[str, str] | None = None):
        self.port = free_port()
        self.settings = settings or {}  # server settings on the command line, e.g. {"wal_level": "logical"}
        # Its own temp dir, not the test's: as root the server runs as `postgres`, who must reach it.
        self.folder = Path(tempfile.mkdtemp(prefix="rowbell-test-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "postgres.log"
        self.admin_url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        run = {"check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT}
        as_postgres = _as_postgres_user()
        if as_postgres:
            os.chown(self.folder, *as_postgres)
        subprocess.run(
            [pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"],
            **run,
            **_user_kwargs(as_postgres),
        )
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off"
        options += "".join(f" -c {name}={value}" for name, value in self.settings.items())
        subprocess.run(
            [pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            **_user_kwargs(_as_postgres_user()),
        )

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(
            [pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **_user_kwargs(_as_postgres_user()),
        )

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new database on this server; its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.Error:
            return False


def _as_postgres_user() -> tuple[int, int] | None:
    """initdb refuses to run as root: as root, run the server as the `postgres` user."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs a `postgres` user to run the test's PostgreSQL")
    return entry.pw_uid, entry.pw_gid


def _user_kwargs(ids: tuple[int, int] | None) -> dict:
    return {} if ids is None else {"user": ids[0], "group": ids[1]}


@contextmanager
def own_postgres(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    server = PostgresServer(settings)
    try:
        server.init()
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.folder, ignore_errors=True)
