"""The sweeper is the backstop for whatever holds a due job in Redis: a job waiting in RQ's scheduled
registry behind a dead scheduler, or one that failed while the database was away, is moved to the queue
under its own id; and a sweep that could not queue a job (Redis away) leaves its due time alone, so the
next sweep tries again."""

from __future__ import annotations

from datetime import timedelta

import django_rq
import pytest
from django.conf import settings
from rq.job import JobStatus

from runs.engine import enqueue, start_run
from runs.engine.sweeper import sweep
from runs.models import StepExecution
from tests.engine.conftest import build_workflow, email, settle, webhook
from tests.support import unreachable_redis


@pytest.fixture
def due_trigger(clock, tenant_a):
    """A run whose trigger execution is due, with its job taken out of the queue (the test puts it back
    where it wants it)."""
    workflow = build_workflow(tenant_a, webhook([email(to="ann@example.com", subject="hi", text="x")]))
    run = start_run(workflow, {}, "evt-backstop")
    execution = StepExecution.objects.get(run=run, step__kind="webhook_trigger")
    StepExecution.objects.filter(pk=execution.pk).update(next_attempt_at=clock.now)  # due on the test's clock
    django_rq.get_queue("default").empty()
    return run, execution


def test_a_job_overdue_in_the_scheduled_registry_is_moved_within_seconds(clock, due_trigger, smtp):
    run, execution = due_trigger
    queue = django_rq.get_queue("default")
    ident = enqueue.job_id(execution.pk, 1)
    # As if RQ's scheduler had it and died: due in a second, and nobody to move it.
    assert enqueue.enqueue_batch(
        run.pk, execution.step_id, execution_id=execution.pk, attempt=1, at=clock.now + timedelta(seconds=1)
    )
    clock.travel(seconds=enqueue.SCHEDULED_JOB_GRACE)
    assert sweep().scheduled_jobs_moved == 0, "a live scheduler has a few seconds to move it"
    clock.travel(seconds=2)

    report = sweep()

    assert report.scheduled_jobs_moved == 1 and report.jobs_queued == 0
    assert ident in queue.job_ids and ident not in queue.scheduled_job_registry.get_job_ids()
    settle(clock)
    assert [m["To"] for m in smtp.messages] == ["ann@example.com"]


def test_a_due_execution_whose_job_waits_under_its_id_for_a_later_time_is_queued(clock, due_trigger, smtp):
    run, execution = due_trigger
    queue = django_rq.get_queue("default")
    ident = enqueue.job_id(execution.pk, 1)
    # The job under its id is scheduled for later than the execution is due (a retry made sooner).
    later = clock.now + timedelta(hours=1)
    assert enqueue.enqueue_batch(run.pk, execution.step_id, execution_id=execution.pk, attempt=1, at=later)
    clock.travel(seconds=settings.SWEEPER_GRACE + 5)

    report = sweep()

    assert report.jobs_queued == 1 and report.scheduled_jobs_moved == 0
    assert ident in queue.job_ids and ident not in queue.scheduled_job_registry.get_job_ids()
    settle(clock, step_seconds=60)
    assert [m["To"] for m in smtp.messages] == ["ann@example.com"]


def test_a_due_job_that_failed_under_its_id_is_queued_again(clock, due_trigger, smtp):
    run, execution = due_trigger
    queue = django_rq.get_queue("default")
    ident = enqueue.job_id(execution.pk, 1)
    job = queue.enqueue("runs.jobs.run_batch", run.pk, execution.step_id, 0, job_id=ident)
    queue.remove(job)  # what RQ does with a job that raised: status failed, in the failed registry
    job.set_status(JobStatus.FAILED)
    queue.failed_job_registry.add(job, ttl=3600, exc_string="PostgreSQL went away")
    clock.travel(seconds=settings.SWEEPER_GRACE + 5)

    assert sweep().jobs_queued == 1
    assert ident in queue.job_ids and ident not in queue.failed_job_registry.get_job_ids()
    settle(clock)
    assert [m["To"] for m in smtp.messages] == ["ann@example.com"]


def test_a_sweep_that_cannot_reach_redis_leaves_the_due_time_for_the_next_sweep(
    clock, due_trigger, smtp, monkeypatch
):
    _run, execution = due_trigger
    clock.travel(seconds=settings.SWEEPER_GRACE + 5)
    due = StepExecution.objects.get(pk=execution.pk).next_attempt_at
    unreachable = django_rq.get_queue("default")
    unreachable.connection = unreachable_redis(1, socket_connect_timeout=0.2)
    with monkeypatch.context() as patch:
        patch.setattr(enqueue, "_queue", lambda name: unreachable)
        report = sweep()

    assert report.jobs_queued == 0 and report.requeued_executions == 0
    assert StepExecution.objects.get(pk=execution.pk).next_attempt_at == due, "touched without a job"
    clock.travel(seconds=5)
    assert sweep().jobs_queued == 1, "the next sweep queues it"
    assert StepExecution.objects.get(pk=execution.pk).next_attempt_at == clock.now
    settle(clock)
    assert [m["To"] for m in smtp.messages] == ["ann@example.com"]
