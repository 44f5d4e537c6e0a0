"""A big fan-out does not starve another tenant; step kinds' own behaviour (waits until, enrich, caps)."""

from __future__ import annotations

from datetime import timedelta

import django_rq
from rq import SimpleWorker

from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import (
    build_workflow,
    customer_db,
    data_source,
    email,
    query,
    settle,
    webhook,
    work,
)


def test_a_big_fan_out_does_not_starve_another_tenants_welcome_email(
    clock, smtp, tenant_a, tenant_b, tenant_database, settings, redis_conn
):
    settings.ENGINE_BATCH_SIZE = 50
    customer_db(
        tenant_database,
        "CREATE TABLE r (id int, email text); INSERT INTO r SELECT g, 'r' || g || "
        "'@big.example' FROM generate_series(1, 1000) g",
    )
    big = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    data_source(tenant_a, tenant_database),
                    "SELECT id, email FROM r",
                    children=[email(subject="news", text="x")],
                )
            ]
        ),
    )
    welcome = build_workflow(tenant_b, webhook([email(subject="Welcome", text="x")]))
    queues = [django_rq.get_queue("default"), django_rq.get_queue("low")]
    big_run = start_run(big, {}, "newsletter")
    SimpleWorker(queues, connection=redis_conn).work(burst=True, max_jobs=4)  # trigger, query, 2 batches
    assert 0 < len(smtp.messages) < 1000
    assert django_rq.get_queue("low").count <= settings.ENGINE_FANOUT_PARALLELISM

    start_run(welcome, {"email": "new@small.example", "name": "N"}, "signup-1")
    SimpleWorker(queues, connection=redis_conn).work(burst=True, max_jobs=4)
    recipients = smtp.recipients()
    assert "new@small.example" in recipients
    assert recipients.index("new@small.example") <= 250, "the welcome email waited behind the fan-out"
    work(clock)
    assert Run.objects.get(pk=big_run.pk).status == "succeeded"
    assert len(smtp.messages) == 1001


def test_wait_until_a_time_in_the_item_with_an_offset(clock, smtp, tenant_a):
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "wait",
                    "config": {
                        "mode": "until",
                        "field": "trial_ends_at",
                        "offset_amount": 1,
                        "offset_unit": "days",
                        "offset_direction": "before",
                    },
                    "children": [email(subject="Your trial ends tomorrow", text="x")],
                },
            ]
        ),
    )
    ends = clock.now + timedelta(days=14)
    run = start_run(workflow, {"email": "t@example.com", "name": "T", "trial_ends_at": ends.isoformat()}, "t")
    work(clock)
    wait = StepExecution.objects.get(run=run, step__kind="wait")
    assert wait.next_attempt_at == ends - timedelta(days=1)
    clock.travel(days=12, hours=23)
    settle(clock, step_seconds=60, rounds=2)
    assert smtp.recipients() == []
    clock.travel(hours=1, minutes=1)
    settle(clock)
    assert smtp.recipients() == ["t@example.com"]


def test_wait_on_a_missing_field_fails_with_its_name(clock, smtp, tenant_a):
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {
                    "kind": "wait",
                    "config": {"mode": "until", "field": "trial_ends_at"},
                    "children": [email()],
                },
            ]
        ),
    )
    run = start_run(workflow, {"email": "t@example.com"}, "t")
    work(clock)
    wait = StepExecution.objects.get(run=run, step__kind="wait")
    assert wait.status == "failed" and "trial_ends_at" in wait.error


def test_enrich_modes_and_zero_rows_end_the_path(clock, smtp, tenant_a, tenant_database):
    customer_db(
        tenant_database,
        "CREATE TABLE orders (id int, user_id int, total numeric); "
        "INSERT INTO orders VALUES (1, 5, 10.5), (2, 5, 20), (3, 6, 7)",
    )
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                query(
                    source,
                    "SELECT id, total FROM orders WHERE user_id = {{ item.user_id }} ORDER BY id",
                    mode="all",
                    into="orders",
                    children=[
                        email(
                            subject="{{ item.orders|length }} orders",
                            text="{% for o in item.orders %}{{ o.total }};{% endfor %}",
                        )
                    ],
                ),
            ]
        ),
    )
    run = start_run(workflow, {"user_id": 5, "email": "u5@example.com", "name": "U"}, "u5")
    empty = start_run(workflow, {"user_id": 99, "email": "u99@example.com", "name": "U"}, "u99")
    work(clock)
    assert smtp.recipients() == ["u5@example.com"]
    assert smtp.messages[0]["Subject"] == "2 orders"
    assert Delivery.objects.get(run=run).content["text"] == "10.5;20;"
    empty.refresh_from_db()
    assert empty.status == "succeeded" and not Delivery.objects.filter(run=empty).exists()


def test_row_cap_and_statement_timeout_stop_a_query_with_a_clear_error(
    clock, smtp, tenant_a, tenant_database, settings
):
    settings.DATA_QUERY_MAX_ROWS = 100
    settings.DATA_QUERY_TIMEOUT_MS = 300
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                query(source, "SELECT g AS id FROM generate_series(1, 1000) g", name="many"),
                query(source, "SELECT 1 AS id FROM pg_sleep(5)", name="slow", max_attempts=1),
            ]
        ),
    )
    run = start_run(workflow, {}, "caps")
    work(clock)
    many, slow = StepExecution.objects.filter(run=run, step__kind="data_query").order_by("step__position")
    assert many.status == "failed" and "more than 100 rows" in many.error
    assert slow.status == "failed" and "longer than 300 ms" in slow.error


def test_a_false_condition_ends_the_path(clock, smtp, tenant_a):
    workflow = build_workflow(
        tenant_a,
        webhook(
            [
                {"kind": "condition", "config": {"expression": "item.plan == 'pro'"}, "children": [email()]},
            ]
        ),
    )
    start_run(workflow, {"email": "free@example.com", "name": "F", "plan": "free"}, "a")
    start_run(workflow, {"email": "pro@example.com", "name": "P", "plan": "pro"}, "b")
    work(clock)
    assert smtp.recipients() == ["pro@example.com"]
    assert set(Run.objects.values_list("status", flat=True)) == {"succeeded"}


def test_a_tenant_at_its_concurrency_limit_is_deferred_not_run(clock, smtp, tenant_a, settings):
    from runs.engine import fairness

    settings.ENGINE_TENANT_CONCURRENCY = 1
    workflow = build_workflow(tenant_a, webhook([email()]))
    held = fairness.acquire(tenant_a.pk)  # another batch of this tenant is running
    assert held is not None and fairness.acquire(tenant_a.pk) is None
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    assert StepExecution.objects.get(run=run).status == "pending"
    assert django_rq.get_queue("default").scheduled_job_registry.count == 1

    fairness.release(tenant_a.pk, held)
    clock.travel(seconds=2)
    work(clock)
    assert smtp.recipients() == ["ann@example.com"]
