"""Every benchmark script still runs: each at its `--smoke` size (benchmarks/smoke.py), checked to finish
and to print its figures, so a change that breaks one (a new NOT NULL column its seed does not fill, a
renamed setting) fails here rather than on the day someone measures.

One slow test for all of them: a Rowbell database is migrated once and each script's own database is a
copy of it ($BENCH_TEMPLATE_DB), so the scripts' time goes to their work, not to migrations. The scripts
use the Redis databases reserved for benchmarks (tests/test_suite_isolation.py) and databases of their
own, dropped when they end. The figures of a smoke run mean nothing.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# What each script prints when it measured something: one line per script that only a finished run prints.
FIGURES = {
    "activity.py": r"slowest p95: [\d.]+ ms(.|\n)*retention \(\d+ days\) deleted [1-9][\d,]* runs(.|\n)*slowest p95 during the delete",
    "builder.py": r"publish dialog \(diff\) +median +[\d.]+ ms",
    "consent_fanout.py": r"suppression checks +\d+",
    "digest.py": r"digests: expected (\d+), sent \1, duplicates 0, items lost 0",
    "fanout.py": r"engine/floor: [\d.]+",
    "publish_preview.py": r"preview of \d+ events: [\d.]+ s",
    "rate_limit.py": r"with 429s for \d+% of requests: \d+ sent",
    "recovery.py": r"duplicates: 0",
    "row_wait.py": r"row change → wake: p50 [\d.]+ ms, p99 [\d.]+ ms",
    "supabase_hook.py": r"Send Email hook.*x the floor's median",
    "trigger_floor.py": r"Rowbell trigger +\d+ inserts/s",
    "trigger_latency.py": r"customer write overhead \(.*\): -?[\d.]+ %",
}
# Not scripts one runs to measure: a server the fan-out and rate-limit scripts start, and shared modules.
NOT_SCRIPTS = {"latency_server.py", "pgbench.py", "support.py", "smoke.py", "__init__.py"}
PER_SCRIPT_TIMEOUT = 300


def test_every_script_in_benchmarks_has_a_smoke_run():
    scripts = {path.name for path in BENCHMARKS.glob("*.py")} - NOT_SCRIPTS
    assert scripts == set(FIGURES), "give the new script a --smoke size and its figure line here"
    for name in scripts:
        assert "parse_with_smoke(" in (BENCHMARKS / name).read_text(), name


@pytest.fixture(scope="module")
def template_database():
    """A migrated Rowbell database the scripts copy (CREATE DATABASE … TEMPLATE), dropped at the end."""
    base = os.environ["DATABASE_URL"]
    admin = urlunsplit(urlsplit(base)._replace(path="/postgres"))
    name = f"rowbell_bench_template_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": urlunsplit(urlsplit(base)._replace(path=f"/{name}"))}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300
    )
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_the_benchmark_runs_at_its_smoke_size_and_prints_its_figures(template_database, name):
    """One test per script, so that a parallel worker runs other tests meanwhile; one script at a time
    (a lock shared by the workers), since several scripts use the same benchmark Redis database."""
    env = {
        **os.environ,
        "BENCH_TEMPLATE_DB": template_database,
        "BENCH_DB_NAME": f"rowbell_bench_smoke_{uuid.uuid4().hex[:8]}",
        "PYTHONUNBUFFERED": "1",
    }
    with open(Path(tempfile.gettempdir()) / "rowbell-benchmark-smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / name), "--smoke"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=PER_SCRIPT_TIMEOUT,
        )
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"{name} failed:\n{tail}"
    assert re.search(FIGURES[name], done.stdout), f"{name} did not print its figures:\n{tail}"
