"""What the trigger benchmarks share: admin statements and pgbench runs against a scratch database."""

from __future__ import annotations

import re
import subprocess
import tempfile
from urllib.parse import urlsplit

import psycopg


def admin(admin_url: str, statement: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)


def pgbench(url: str, script: str, seconds: int, clients: int = 8) -> float:
    """Transactions per second of `clients` pgbench clients running `script` for `seconds`."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script + "\n")
        file.flush()
        parts = urlsplit(url)
        command = [
            "pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", file.name,
            "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres",
            parts.path.lstrip("/"),
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(re.search(r"tps = ([\d.]+)", output).group(1))
