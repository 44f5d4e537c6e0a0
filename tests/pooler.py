"""A real PgBouncer in transaction mode between Rowbell and a test's customer database.

Supabase's pooler (Supavisor) and most hosted PostgreSQL poolers run in transaction mode, as PgBouncer
does: each transaction may run on a different server connection, so session state (SET, LISTEN,
prepared statements, startup `options`) is not kept between transactions. The tests start Debian's
`pgbouncer` (scripts/test installs it) with its default settings except the ones that make it a test
fixture: a free port, pool_mode=transaction, trust authentication for the roles the test names, and no
Unix socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from tests.support import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
START_TIMEOUT = 10.0


def config_text(port: int, server_host: str, server_port: int, workdir: str) -> str:
    """pgbouncer.ini: every database name goes to the same name on the real server."""
    return "\n".join(
        [
            "[databases]",
            f"* = host={server_host} port={server_port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "pool_mode = transaction",
            "auth_type = trust",
            f"auth_file = {workdir}/users.txt",
            f"logfile = {workdir}/pgbouncer.log",
            f"pidfile = {workdir}/pgbouncer.pid",
            # PgBouncer refuses to run as root; it drops to this user after reading its files.
            *([f"user = {unprivileged_user()}"] if os.geteuid() == 0 else []),
            "",
        ]
    )


def unprivileged_user() -> str:
    """Debian's PostgreSQL user where there is one, else nobody (the embedded server has no such user)."""
    import pwd

    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return "nobody"


class Pooler:
    """A running PgBouncer: `url_for(database_url)` is the same database reached through it."""

    def __init__(self, server_url: str, roles: list[str]):
        parts = urlsplit(server_url)
        self.server_host = parts.hostname or "127.0.0.1"
        self.server_port = parts.port or 5432
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="rowbell-pgbouncer-")
        self.roles = list(roles)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(os.path.join(self.workdir, "pgbouncer.ini"), "w") as ini:
            ini.write(config_text(self.port, self.server_host, self.server_port, self.workdir))
        self.write_users()
        os.chmod(self.workdir, 0o777)  # the postgres user writes its log and pid file here
        self.process = subprocess.Popen(
            [PGBOUNCER, os.path.join(self.workdir, "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.process.stderr.read().decode()}{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {self.log()}")

    def write_users(self) -> None:
        """The auth file: trust authentication still needs each user name listed."""
        path = os.path.join(self.workdir, "users.txt")
        with open(path, "w") as users:
            users.writelines(f'"{role}" ""\n' for role in self.roles)
        os.chmod(path, 0o644)

    def allow(self, role: str) -> None:
        """Let `role` in too (PgBouncer rereads its auth file on SIGHUP)."""
        self.roles.append(role)
        self.write_users()
        self.process.send_signal(1)
        time.sleep(0.2)

    def url_for(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        auth = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{self.port}"))

    def log(self) -> str:
        try:
            with open(os.path.join(self.workdir, "pgbouncer.log")) as log:
                return log.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def running_pooler(server_url: str, roles: list[str]) -> Iterator[Pooler]:
    pooler = Pooler(server_url, roles)
    try:
        pooler.start()
        yield pooler
    finally:
        pooler.stop()
