"""Bulk retry and cancel by filter (runs/bulk/), through the REST API, on real RQ burst workers and a real
SMTP sink: a retry never sends a message the ledger says was sent, whatever the execution says; a double
submit makes one operation; a cancel stops what the filter matches and nothing else."""

from __future__ import annotations

import threading
from collections import Counter

import django_rq
import pytest
from django.db import connection
from django.test import Client
from rq import SimpleWorker

from runs.bulk import run_batch
from runs.engine import retry_execution, start_run
from runs.jobs import sweep as sweep_job
from runs.models import BulkOperation, Delivery, Run, StepExecution
from tenants.models import ApiKey, AuditEvent
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

ITEMS = 1000


def key_client(tenant, owner) -> Client:
    return Client(headers={"Authorization": f"Bearer {ApiKey.issue(tenant, 'Ops', owner)[1]}"})


def work_default_queue_only() -> None:
    """The engine's own jobs, not the bulk operation's (which wait on the low queue): "meanwhile"."""
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def failed_fan_out(clock, smtp, tenant, tenant_database):
    """ITEMS recipients, every message refused for good (550) by the SMTP server: ITEMS failed sends."""
    customer_db(
        tenant_database,
        f"CREATE TABLE u (id int, email text); INSERT INTO u SELECT g, 'u'||g||'@x.io' "
        f"FROM generate_series(1, {ITEMS}) g",
    )
    source = data_source(tenant, tenant_database)
    workflow = build_workflow(
        tenant,
        webhook(
            [
                query(
                    source,
                    "SELECT id, email FROM u",
                    children=[email(name="Notice", subject="Hi", text="Hi")],
                )
            ]
        ),
        name="Notices",
    )
    for i in range(1, ITEMS + 1):
        smtp.refuse[f"u{i}@x.io"] = "550 5.1.1 Mailbox unavailable"
    run = start_run(workflow, {}, "evt-1")
    settle(clock)
    smtp.refuse.clear()
    return workflow, run


def test_a_bulk_retry_of_1000_failures_where_10_were_sent_meanwhile_sends_none_of_them_again(
    clock, smtp, tenant_a, owner, tenant_database
):
    workflow, run = failed_fan_out(clock, smtp, tenant_a, tenant_database)
    sends = StepExecution.objects.filter(run=run, step__kind="send_email").order_by("id")
    assert sends.filter(status="failed").count() == ITEMS and smtp.recipients() == []
    api = key_client(tenant_a, owner)
    body = {"action": "retry", "filter": {"workflow": workflow.pk, "error": "mailbox UNAVAILABLE"}}

    counted = api.post("/api/v1/bulk-operations/", {**body, "dry_run": True}, content_type="application/json")

    assert counted.status_code == 200, counted.content
    assert counted.json()["summary"] == "1,000 executions, 1,000 recipients, 0 already sent"
    assert not BulkOperation.objects.exists()

    started = api.post("/api/v1/bulk-operations/", body, content_type="application/json")
    assert started.status_code == 201, started.content
    operation = started.json()["operation"]
    assert (operation["status"], operation["total"], operation["processed"]) == ("queued", ITEMS, 0)

    # Meanwhile, before the operation's first batch: 10 are retried one by one and sent...
    retried_alone = list(sends[:10])
    for execution in retried_alone:
        assert retry_execution(execution)
    work_default_queue_only()
    assert sorted(smtp.recipients()) == sorted(
        d.recipient for d in Delivery.objects.filter(step_execution__in=retried_alone)
    )
    # ...and 5 more reached their recipients, or may have, though their executions still say failed (a
    # worker that lost its claim after the provider took the message; one stopped mid-hand-over, whose
    # message is uncertain): only the ledger knows. A retry resets an uncertain message to be sent again,
    # so without the bulk path's own look at the ledger these two would arrive twice.
    ledger_sent = list(sends[10:15])
    Delivery.objects.filter(step_execution__in=ledger_sent[:3]).update(status=Delivery.Status.SENT)
    Delivery.objects.filter(step_execution__in=ledger_sent[3:]).update(status=Delivery.Status.UNCERTAIN)

    work(clock)  # the bulk batches on the low queue, then the sends they queued

    received = Counter(smtp.recipients())
    assert len(received) == ITEMS - 5 and set(received.values()) == {1}, received.most_common(3)
    for execution in ledger_sent:
        assert Delivery.objects.get(step_execution=execution).recipient not in received
    done = BulkOperation.objects.get()
    assert (done.status, done.processed, done.acted, done.skipped_sent, done.skipped_changed) == (
        "done",
        ITEMS,
        ITEMS - 15,
        5,
        10,
    )
    assert sends.filter(status="succeeded").count() == ITEMS - 5
    progress = api.get(f"/api/v1/bulk-operations/{done.pk}/").json()
    assert (progress["percent"], progress["status"], progress["acted"]) == (100, "done", ITEMS - 15)
    actions = list(AuditEvent.objects.filter(tenant=tenant_a).values_list("action", "actor_label"))
    assert ("bulk.retry", "API key “Ops” (" + ApiKey.objects.get().prefix + "…)") in actions
    assert ("bulk.finished", "system") in actions

    # A second run of a batch (a duplicate job, the sweep's resume) finds the operation finished.
    assert run_batch(done.pk) is False
    assert len(smtp.recipients()) == ITEMS - 5


def test_an_uncertain_message_is_never_retried_in_bulk(clock, smtp, tenant_a, owner):
    workflow = build_workflow(tenant_a, webhook([email()]))
    smtp.refuse["ann@example.com"] = "550 5.1.1 Gone"
    runs = [
        start_run(workflow, {"email": f"{name}@example.com", "name": name}, name) for name in ("ann", "bob")
    ]
    smtp.refuse["bob@example.com"] = "550 5.1.1 Gone"
    work(clock)
    smtp.refuse.clear()
    # Bob's worker stopped while handing the message over: it may have arrived.
    Delivery.objects.filter(run=runs[1]).update(status=Delivery.Status.UNCERTAIN)
    api = key_client(tenant_a, owner)

    answer = api.post("/api/v1/bulk-operations/", {"action": "retry"}, content_type="application/json").json()
    work(clock)

    assert answer["counts"] == {"executions": 2, "runs": 2, "recipients": 2, "already_sent": 1}
    assert smtp.recipients() == ["ann@example.com"]
    assert Delivery.objects.get(run=runs[1]).status == "uncertain"
    assert BulkOperation.objects.get().skipped_sent == 1


def test_a_double_submit_makes_one_operation(clock, smtp, tenant_a, owner):
    workflow = build_workflow(tenant_a, webhook([email()]))
    smtp.refuse["ann@example.com"] = "550 5.1.1 Gone"
    start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    smtp.refuse.clear()
    api = key_client(tenant_a, owner)
    body = {"action": "retry", "filter": {"workflow": workflow.pk}}
    headers = {"Idempotency-Key": "retry-ann"}

    # Two at once (two threads, two connections): the unique constraint lets one in.
    answers: list = []

    def submit():
        answers.append(
            api.post("/api/v1/bulk-operations/", body, content_type="application/json", headers=headers)
        )
        connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The same filter again without a key, while the first is unfinished; and the key again later.
    again = api.post("/api/v1/bulk-operations/", body, content_type="application/json")
    work(clock)
    later = api.post("/api/v1/bulk-operations/", body, content_type="application/json", headers=headers)

    assert sorted(a.status_code for a in answers) == [200, 201], [a.content for a in answers]
    assert {a.json()["operation"]["id"] for a in [*answers, again, later]} == {BulkOperation.objects.get().pk}
    assert again.status_code == 200 and again.json()["created"] is False
    assert smtp.recipients() == ["ann@example.com"]
    assert AuditEvent.objects.filter(action="bulk.retry").count() == 1
    # The key names that operation: another filter under it is a conflict, not a second operation.
    other = api.post(
        "/api/v1/bulk-operations/", {"action": "cancel"}, content_type="application/json", headers=headers
    )
    assert other.status_code == 409 and "another filter" in other.json()["detail"]


def test_a_bulk_cancel_stops_the_matching_runs_only(clock, smtp, tenant_a, tenant_b, owner):
    wait_then_mail = webhook(
        [{"kind": "wait", "config": {"mode": "duration", "amount": 2, "unit": "days"}, "children": [email()]}]
    )
    reminders = build_workflow(tenant_a, wait_then_mail, name="Reminders")
    others = build_workflow(tenant_a, wait_then_mail, name="Others")
    foreign = build_workflow(tenant_b, wait_then_mail, name="Reminders")
    item = {"email": "ann@example.com", "name": "Ann"}
    ours = [start_run(reminders, item, f"r{i}") for i in range(3)]
    theirs = [start_run(others, item, "o1"), start_run(foreign, item, "f1")]
    work(clock)
    api = key_client(tenant_a, owner)
    body = {"action": "cancel", "filter": {"workflow": reminders.pk, "state": "waiting"}}

    counted = api.post("/api/v1/bulk-operations/", {**body, "dry_run": True}, content_type="application/json")
    started = api.post("/api/v1/bulk-operations/", body, content_type="application/json")
    work(clock)
    clock.travel(days=3)
    settle(clock)

    assert counted.json()["summary"] == "3 runs, 3 open executions"
    assert started.status_code == 201
    assert {run.status for run in Run.objects.filter(pk__in=[r.pk for r in ours])} == {"cancelled"}
    assert [Run.objects.get(pk=r.pk).status for r in theirs] == ["succeeded", "succeeded"]
    assert smtp.recipients() == ["ann@example.com", "ann@example.com"]
    assert BulkOperation.objects.get(tenant=tenant_a).acted == 3


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"action": "resend"}, "action must be one of retry, cancel."),
        ({"action": "retry", "filter": {"state": "open"}}, "state: a retry takes failed, not “open”."),
        ({"action": "retry", "filter": {"step": "nope"}}, "step must be a step's key"),
        (
            {"action": "retry", "filter": {"created_from": "yesterday"}},
            "created_from must be an RFC 3339 time",
        ),
        ({"action": "retry", "filter": {"workflow": "1"}}, "workflow must be a workflow's id"),
        ({"action": "retry", "filter": {"colour": "red"}}, "Unknown filter field(s): colour"),
        ({"action": "retry", "filter": [1]}, "filter must be an object"),
        ({"action": "retry", "dry_run": "yes"}, "dry_run must be true or false."),
    ],
)
def test_a_bad_filter_is_a_400_saying_what_is_wrong(tenant_a, owner, body, detail):
    response = key_client(tenant_a, owner).post(
        "/api/v1/bulk-operations/", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert not BulkOperation.objects.exists()


def test_another_tenants_workflow_or_operation_is_a_404(tenant_a, tenant_b, owner, outsider):
    theirs = build_workflow(tenant_b, webhook([email()]), name="Theirs")
    operation = BulkOperation.objects.create(
        tenant=tenant_b, name="Theirs", action="retry", filter_digest="x"
    )
    api = key_client(tenant_a, owner)

    by_filter = api.post(
        "/api/v1/bulk-operations/",
        {"action": "retry", "filter": {"workflow": theirs.pk}},
        content_type="application/json",
    )

    assert by_filter.status_code == 404 and by_filter.json() == {
        "detail": f"workflow: there is no workflow {theirs.pk}."
    }
    assert api.get(f"/api/v1/bulk-operations/{operation.pk}/").status_code == 404
    assert api.get("/api/v1/bulk-operations/").json()["count"] == 0


def test_an_operation_whose_job_was_lost_is_queued_again_by_the_sweep(
    clock, smtp, tenant_a, owner, redis_conn
):
    workflow = build_workflow(tenant_a, webhook([email()]))
    smtp.refuse["ann@example.com"] = "550 5.1.1 Gone"
    start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    smtp.refuse.clear()
    api = key_client(tenant_a, owner)
    api.post("/api/v1/bulk-operations/", {"action": "retry"}, content_type="application/json")
    redis_conn.flushdb()  # Redis restarted without its data: the queued batch is gone

    work(clock)
    clock.travel(seconds=60)
    first = sweep_job()
    assert (
        BulkOperation.objects.get().status == "queued" and first["bulk_resumed"] == 0
    )  # not quiet long enough
    clock.travel(seconds=90)
    second = sweep_job()
    work(clock)

    assert second["bulk_resumed"] == 1
    assert BulkOperation.objects.get().status == "done"
    assert smtp.recipients() == ["ann@example.com"]
