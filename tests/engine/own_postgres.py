"""A PostgreSQL server of the test's own, which the test may stop and start: a fresh cluster from the
machine's initdb on a free port, in a temporary directory, removed afterwards. PostgreSQL refuses to run
as root, so under root it runs as the `postgres` system user."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests.support import free_port


class OwnPostgres:
    def __init__(self, root: Path):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        assert found, "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
        self.bin = Path(found[-1]).parent
        self.root = root
        self.data = root / "data"
        self.port = free_port()

    def _run(self, program: str, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, str(self.bin / program), *args], check=True, capture_output=True, timeout=120
        )

    def init(self) -> OwnPostgres:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    root = Path(tempfile.mkdtemp(prefix="rowbell-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = OwnPostgres(root).init()
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
