"""A claim that only defers its item (a throttle's next slot, a frequency budget, a wait whose time moved)
is no try: the retry limit and the backoff count `tries` (attempts - deferrals), so an item deferred
again and again still gets all its retries when its dependency fails afterwards (#23)."""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import pytest

from runs.engine import start_run
from runs.engine.sweeper import sweep
from runs.models import StepExecution
from tests.engine.conftest import build_workflow, customer_db, data_source, settle, work
from tests.engine.test_throttle import fire, throttle_executions, throttled
from tests.engine.test_wait_reread import ORDERS, ROW, reminder


@pytest.fixture
def source(tenant_a, tenant_database):
    customer_db(tenant_database, ORDERS)
    return data_source(tenant_a, tenant_database)


def allow_connections(admin_url: str, database_url: str, allowed: bool) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')


def test_a_wait_deferred_twice_still_retries_when_the_database_is_down(
    clock, smtp, tenant_a, tenant_database, source, pg_admin_url, settings
):
    settings.ENGINE_MAX_ATTEMPTS = 2
    until = {"mode": "until", "field": "pay_by", "offset_amount": 1, "offset_unit": "days", "reread": True}
    run = start_run(reminder(tenant_a, source, until), ROW, "db:1")
    work(clock)
    for moved in ("2026-03-10T09:00:00Z", "2026-03-20T09:00:00Z"):  # the row's time moves later, twice
        customer_db(tenant_database, f"UPDATE orders SET pay_by = '{moved}' WHERE id = 1")
        wait = StepExecution.objects.get(run=run, step__kind="wait")
        clock.travel(seconds=(wait.next_attempt_at - clock.now).total_seconds() + 60)
        sweep()
        work(clock)
    wait = StepExecution.objects.get(run=run, step__kind="wait")
    assert (wait.status, wait.attempts, wait.deferrals, wait.tries) == ("pending", 2, 2, 0)

    allow_connections(pg_admin_url, tenant_database, False)
    try:
        clock.travel(seconds=(wait.next_attempt_at - clock.now).total_seconds() + 60)
        sweep()
        work(clock)
        wait.refresh_from_db()
        # Before, the third claim was "attempt 3 of 2": the wait failed at once, the reminder was lost.
        assert wait.status == "pending" and "Cannot connect" in wait.error, (wait.status, wait.error)
        assert (wait.attempts, wait.deferrals, wait.tries) == (3, 2, 1)
    finally:
        allow_connections(pg_admin_url, tenant_database, True)
    settle(clock, step_seconds=600)
    wait.refresh_from_db()
    assert wait.status == "succeeded" and smtp.recipients() == ["ada@example.com"]


def test_throttle_deferrals_are_counted_apart_from_tries(clock, smtp, tenant_a):
    build = build_workflow(tenant_a, throttled("defer", limit=1))
    fire(build, 4)
    settle(clock, step_seconds=3600)
    assert len(smtp.messages) == 4
    executions = list(throttle_executions().order_by("id"))
    assert sorted(e.deferrals for e in executions) == [0, 1, 2, 3]
    assert all(e.tries == 1 and e.status == "succeeded" for e in executions)
