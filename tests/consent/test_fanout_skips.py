"""A fan-out where some recipients are suppressed or unsubscribed: the others are sent, those are skipped,
and the check costs at most one statement per batch. (The 10,000/2,000 run of the issue is
benchmarks/consent_fanout.py; this is the same shape at 1,000/200, to keep the suite quick.)"""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent.models import Suppression, Unsubscribe
from runs.engine import start_run
from runs.models import Delivery, Run
from tests.engine.conftest import build_workflow, customer_db, data_source, email, query, webhook, work

N = 1000
SUPPRESSED = range(1, N + 1, 10)  # 100 addresses
UNSUBSCRIBED = range(5, N + 1, 10)  # 100 more

RECIPIENTS = "SELECT g AS id, 'user' || g || '@example.com' AS email, 'User ' || g AS name FROM generate_series(1, %d) g"


def test_fan_out_skips_suppressed_and_unsubscribed_with_one_check_per_batch(
    clock, smtp, tenant_a, tips, tenant_database, settings
):
    settings.ENGINE_BATCH_SIZE = 200
    customer_db(tenant_database, "SELECT 1")
    source = data_source(tenant_a, tenant_database)
    Suppression.objects.bulk_create(
        Suppression(tenant=tenant_a, address=f"user{i}@example.com", reason="hard_bounce") for i in SUPPRESSED
    )
    Unsubscribe.objects.bulk_create(
        Unsubscribe(tenant=tenant_a, address=f"USER{i}@example.com".lower(), topic=tips if i % 20 else None)
        for i in UNSUBSCRIBED
    )
    step = email(subject="Tip", allow_unsubscribe=True, topic=tips.pk)
    workflow = build_workflow(tenant_a, webhook([query(source, RECIPIENTS % N, children=[step])]))
    email_step = workflow.published_version.steps.get(kind="send_email")
    run = start_run(workflow, {}, "tips-1")
    with CaptureQueriesContext(connection) as queries:
        work(clock)
    run.refresh_from_db()
    from runs.models import StepExecution

    failed = list(StepExecution.objects.filter(run=run, status="failed").values_list("error", flat=True)[:3])
    assert run.status == Run.Status.SUCCEEDED, failed

    sent = set(smtp.recipients())
    skipped = {f"user{i}@example.com" for i in (*SUPPRESSED, *UNSUBSCRIBED)}
    assert len(sent) == N - 200 and len(smtp.recipients()) == N - 200
    assert not sent & skipped
    deliveries = Delivery.objects.filter(run=run)
    assert deliveries.filter(status="sent").count() == N - 200
    assert deliveries.filter(status="skipped").count() == 200
    assert set(deliveries.filter(status="skipped").values_list("recipient", flat=True)) == skipped
    assert deliveries.filter(status="skipped", error="Skipped: suppressed (hard bounce)").count() == 100

    checks = [q for q in queries if "consent_suppression" in q["sql"]]
    claims = [
        q
        for q in queries
        if "WITH claimable AS MATERIALIZED" in q["sql"] and f"step_id = {email_step.pk}" in q["sql"]
    ]
    batches = N // settings.ENGINE_BATCH_SIZE
    assert batches <= len(checks) <= len(claims), (len(checks), len(claims))
    # Nothing else about consent is read per message: the layout is read once per batch too.
    layouts = [q for q in queries if "consent_emaillayout" in q["sql"]]
    assert len(layouts) <= len(claims)
