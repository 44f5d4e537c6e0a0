"""The row cap of a fan-out and the statement timeout of a data query, on real RQ burst workers.

Rules (docs/security.md):
- A fan-out over DATA_QUERY_MAX_ROWS creates nothing: when the first chunk of rows is full, the query's
  rows are counted (up to the cap + 1, in the same snapshot) before any item is made. If the rows still
  turn out to be more than the count said (volatile SQL), reading stops at the cap: nothing past it is
  created, and the step's error says exactly how many items had been made.
- A statement timeout is retried once (2 attempts in all), whatever the step's max_attempts.
"""

from __future__ import annotations

import pytest

from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import (  # noqa: F401 (fixtures)
    build_workflow,
    clock,
    customer_db,
    data_source,
    email,
    query,
    settle,
    smtp,
    webhook,
    work,
)

CAP = 120
CHUNK = 50  # rows per fetch, so that a few hundred rows exercise the count made after a full chunk
ROWS = "SELECT g AS id, 'user' || g || '@example.com' AS email, 'U' AS name FROM generate_series(1, {n}) g"


@pytest.fixture
def capped(settings, monkeypatch):
    settings.DATA_QUERY_MAX_ROWS = CAP
    settings.ENGINE_FANOUT_CHUNK = 40  # children written and queued while the rows are still read
    monkeypatch.setattr("integrations.query.FETCH_CHUNK", CHUNK)


def fan_out(tenant, url: str, sql: str):
    workflow = build_workflow(tenant, webhook([query(data_source(tenant, url), sql, children=[email()])]))
    return start_run(workflow, {}, "fan-out")


def query_execution(run: Run) -> StepExecution:
    return StepExecution.objects.get(run=run, step__kind="data_query")


@pytest.mark.parametrize("rows", [CAP + 1, 1000])
def test_a_fan_out_over_the_cap_creates_and_sends_nothing(
    clock,  # noqa: F811
    smtp,  # noqa: F811
    tenant_a,
    tenant_database,
    capped,
    rows,
):
    run = fan_out(tenant_a, tenant_database, ROWS.format(n=rows))
    work(clock)
    execution = query_execution(run)
    assert execution.status == "failed" and execution.attempts == 1
    assert f"more than {CAP:,} rows (nothing was created from it)" in execution.error
    assert StepExecution.objects.filter(run=run).count() == 2  # the trigger and the query, no children
    assert smtp.recipients() == [] and not Delivery.objects.filter(run=run).exists()
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED


@pytest.mark.parametrize("rows", [CHUNK, CAP])
def test_a_fan_out_at_the_cap_runs_every_row(clock, smtp, tenant_a, tenant_database, capped, rows):  # noqa: F811
    run = fan_out(tenant_a, tenant_database, ROWS.format(n=rows))
    work(clock)
    assert query_execution(run).status == "succeeded"
    assert len(set(smtp.recipients())) == rows


def test_rows_that_outgrow_their_count_stop_at_the_cap_and_are_reported_exactly(
    clock,  # noqa: F811
    smtp,  # noqa: F811
    tenant_a,
    tenant_database,
    capped,
):
    """current_query() differs between the count and the main cursor's FETCHes: 100 rows when counted, 300
    when read, like SQL whose rows depend on volatile functions."""
    sql = ROWS.format(n="CASE WHEN current_query() LIKE '%rowbell_rows%' THEN 300 ELSE 100 END")
    run = fan_out(tenant_a, tenant_database, sql)
    work(clock)
    execution = query_execution(run)
    assert execution.status == "failed" and execution.attempts == 1
    assert (
        f"the first {CAP:,} rows had already become items; nothing past the cap was created"
        in execution.error
    )
    children = StepExecution.objects.filter(run=run, step__kind="send_email")
    assert children.count() == CAP
    assert sorted(smtp.recipients()) == sorted(f"user{i}@example.com" for i in range(1, CAP + 1))


def test_a_statement_timeout_is_retried_once_then_fails(clock, smtp, tenant_a, tenant_database, settings):  # noqa: F811
    settings.DATA_QUERY_TIMEOUT_MS = 200
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    data_source(tenant_a, tenant_database),
                    "SELECT 1 AS id FROM pg_sleep(2)",
                    children=[email()],
                )
            ]
        ),
    )
    run = start_run(workflow, {}, "slow")
    settle(clock)
    execution = query_execution(run)
    assert execution.status == "failed"
    assert execution.attempts == 2  # the step allows 10 (ENGINE_MAX_ATTEMPTS) for network errors
    assert "longer than 200 ms" in execution.error and "gave up after 2 attempts" in execution.error


def test_a_lost_connection_still_gets_the_full_retry_budget(clock, smtp, tenant_a, settings):  # noqa: F811
    """Only the timeout is capped: an unreachable database is retried like any network error."""
    from integrations.models import DataSource

    source = DataSource.objects.create(
        tenant=tenant_a, name="Gone", connection_url="postgresql://postgres@127.0.0.1:1/nowhere"
    )
    workflow = build_workflow(
        tenant_a, webhook([query(source, "SELECT 1 AS id", max_attempts=4, children=[email()])])
    )
    run = start_run(workflow, {}, "gone")
    settle(clock)
    execution = query_execution(run)
    assert execution.status == "failed" and execution.attempts == 4
    assert "Cannot connect" in execution.error
