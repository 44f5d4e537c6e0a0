"""A small run's steps follow one another in one RQ job; waits, fan-outs and limits still queue jobs."""

from __future__ import annotations

from datetime import timedelta

import django_rq
from rq import SimpleWorker

from runs.engine import start_run
from runs.models import Run, StepExecution
from tests.engine.conftest import build_workflow, email, settle, webhook


def condition(expression: str, children=None) -> dict:
    return {"kind": "condition", "config": {"expression": expression}, "children": children or []}


def one_job() -> None:
    queues = [django_rq.get_queue("default"), django_rq.get_queue("low")]
    SimpleWorker(queues, connection=queues[0].connection).work(burst=True, max_jobs=1)


def test_trigger_condition_and_email_run_in_one_job(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, webhook([condition("true", [email()])]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    one_job()
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert smtp.recipients() == ["ann@example.com"]
    assert django_rq.get_queue("default").count == 0


def test_a_wait_below_is_scheduled_not_run(clock, smtp, tenant_a):
    wait = {"kind": "wait", "config": {"mode": "duration", "amount": 30, "unit": "minutes"}}
    workflow = build_workflow(tenant_a, webhook([{**wait, "children": [email()]}]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    one_job()
    waiting = StepExecution.objects.get(run=run, step__kind="wait")
    assert waiting.status == "pending" and waiting.next_attempt_at == clock.now + timedelta(minutes=30)
    assert django_rq.get_queue("default").scheduled_job_registry.count == 1
    assert smtp.recipients() == []
    clock.travel(minutes=30, seconds=1)
    settle(clock, step_seconds=60)
    assert smtp.recipients() == ["ann@example.com"]


def test_steps_beyond_the_limit_are_queued(clock, smtp, tenant_a, settings):
    settings.ENGINE_FOLLOW_MAX_STEPS = 1
    workflow = build_workflow(tenant_a, webhook([condition("true", [email()])]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    one_job()  # the trigger, then the condition; the email is queued
    assert StepExecution.objects.get(run=run, step__kind="condition").status == "succeeded"
    assert StepExecution.objects.get(run=run, step__kind="send_email").status == "pending"
    assert django_rq.get_queue("default").count == 1
    settle(clock)
    assert smtp.recipients() == ["ann@example.com"]
