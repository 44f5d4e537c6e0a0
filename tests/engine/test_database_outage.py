"""PostgreSQL stopped for 10 s while a worker's send batch is inserting its Delivery rows: the batch is
interrupted whatever layer raises the error (psycopg's own AdminShutdown from the pipelined insert), its
claims go back to `pending` as soon as the database returns (its release is retried until written, not
left to ENGINE_EXECUTION_TIMEOUT), and the run finishes with every message sent exactly once and no
Delivery left `sending`. A PostgreSQL server of the test's own, a real RQ worker, a real SMTP sink."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import psycopg
import pytest

from tests.engine.outage_support import own_postgres, wait_until
from tests.engine.test_liveness import ROOT, process_env, worker

N = 300
OUTAGE = 10.0


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=2) as conn:
        return conn.execute(sql).fetchall()


def reachable_query(url: str, sql: str) -> list[tuple] | None:
    try:
        return query(url, sql)
    except psycopg.OperationalError:
        return None


@pytest.mark.slow  # a PostgreSQL server of its own, migrate and a worker as processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("connections", [1, 4])
def test_postgresql_stopped_while_a_batch_inserts_its_deliveries(
    connections, redis_conn, smtp, tenant_database, tmp_path
):
    with own_postgres() as pg:
        url = pg.create_database("rowbell")
        env = process_env(smtp.port, DATABASE_URL=url, EMAIL_SMTP_CONNECTIONS=str(connections))
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        made = subprocess.run(
            [sys.executable, "-m", "tests.engine.outage_setup", tenant_database, str(N)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        run_id = int(made.stdout.split()[-1])
        smtp.delay = 0.01
        log = tmp_path / "worker.log"
        process = worker(env, log, burst=False)
        try:
            inserted = f"SELECT count(*) FROM runs_delivery WHERE run_id = {run_id}"
            wait_until(lambda: query(url, inserted)[0][0] >= 40, 60, "the batch inserting its deliveries")
            pg.stop("fast")  # every backend gets AdminShutdown, the worker's pipelined insert too
            time.sleep(OUTAGE)
            pg.start()
            back = time.monotonic()
            status = f"SELECT status FROM runs_run WHERE id = {run_id}"
            finished = ("succeeded", "partial", "failed")
            wait_until(lambda: (reachable_query(url, status) or [("",)])[0][0] in finished, 90, "the run")
            took = time.monotonic() - back
            assert process.poll() is None, "the worker survived the outage"
        finally:
            process.terminate()
            process.wait(timeout=30)
        output = log.read_text()
        print(f"run finished {took:.1f} s after the database returned")  # a figure for the report (-s)
        assert "interrupted (AdminShutdown)" in output or "interrupted (OperationalError)" in output, output[
            -3000:
        ]
        assert took < 60, f"the run finished {took:.0f} s after the database returned"
        deliveries = Counter(
            dict(query(url, f"SELECT status, count(*) FROM runs_delivery WHERE run_id = {run_id} GROUP BY 1"))
        )
        executions = Counter(
            dict(
                query(
                    url, f"SELECT status, count(*) FROM runs_stepexecution WHERE run_id = {run_id} GROUP BY 1"
                )
            )
        )
        received = Counter(smtp.recipients())
        assert len(received) == N and max(received.values()) == 1, "every recipient got exactly one email"
        assert deliveries == {"sent": N}, (deliveries, output[-3000:])
        assert executions == {"succeeded": N + 2}, executions
        assert query(url, status)[0][0] == "succeeded"
