"""The unique constraints hold when two connections race, not only for a sequential second insert."""

import threading

import pytest
from django.db import IntegrityError, close_old_connections, connection

from runs.models import Delivery, Run, StepExecution
from workflows.models import Step, Workflow, WorkflowVersion
from workflows.publishing import get_or_create_draft, publish

pytestmark = pytest.mark.django_db(transaction=True)


def race(action, workers: int = 2):
    """Run `action` in `workers` threads, each on its own connection, released at the same instant."""
    barrier = threading.Barrier(workers)
    outcomes: list = []

    def worker():
        try:
            barrier.wait()
            outcomes.append(action())
        except IntegrityError as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    close_old_connections()
    return outcomes


@pytest.fixture
def published(tenant_a, owner):
    workflow = Workflow.objects.create(tenant=tenant_a, name="Race")
    draft = get_or_create_draft(workflow)
    Step.objects.create(tenant=tenant_a, version=draft, kind="webhook_trigger")
    version = publish(workflow, owner)
    return workflow, version


def test_two_connections_inserting_one_event_make_one_run(published):
    workflow, version = published

    def insert():
        return Run.objects.create(
            tenant_id=workflow.tenant_id, workflow=workflow, version=version, event_key="e1"
        )

    outcomes = race(insert, workers=4)
    assert sum(isinstance(o, Run) for o in outcomes) == 1
    assert sum(isinstance(o, IntegrityError) for o in outcomes) == 3
    assert Run.objects.filter(workflow=workflow, event_key="e1").count() == 1


def test_two_connections_inserting_one_item_make_one_execution(published):
    workflow, version = published
    run = Run.objects.create(tenant_id=workflow.tenant_id, workflow=workflow, version=version, event_key="e2")
    step = version.steps.get()

    def insert():
        return StepExecution.objects.create(tenant_id=run.tenant_id, run=run, step=step, item_key="0/42")

    outcomes = race(insert, workers=4)
    assert sum(isinstance(o, StepExecution) for o in outcomes) == 1
    assert StepExecution.objects.filter(run=run, step=step, item_key="0/42").count() == 1


def test_two_connections_inserting_one_delivery_make_one(published):
    workflow, version = published
    run = Run.objects.create(tenant_id=workflow.tenant_id, workflow=workflow, version=version, event_key="e3")
    execution = StepExecution.objects.create(
        tenant_id=run.tenant_id, run=run, step=version.steps.get(), item_key="0"
    )

    def insert():
        return Delivery.objects.create(
            tenant_id=run.tenant_id, run=run, step_execution=execution, channel="email", recipient="a@b.c"
        )

    outcomes = race(insert, workers=4)
    assert sum(isinstance(o, Delivery) for o in outcomes) == 1
    assert Delivery.objects.filter(step_execution=execution).count() == 1


def test_two_editors_opening_the_builder_at_once_share_one_draft(published):
    workflow, _ = published

    outcomes = race(lambda: get_or_create_draft(Workflow.objects.get(pk=workflow.pk)).pk, workers=4)
    assert len(set(outcomes)) == 1 and all(isinstance(o, int) for o in outcomes)
    assert WorkflowVersion.objects.filter(workflow=workflow, state="draft").count() == 1


def test_two_publishers_get_distinct_version_numbers(published, owner):
    workflow, _ = published

    def edit_and_publish():
        wf = Workflow.objects.get(pk=workflow.pk)
        get_or_create_draft(wf)
        try:
            return publish(wf, owner).number
        except Exception as exc:  # the loser may find the draft already published
            return type(exc).__name__

    outcomes = race(edit_and_publish, workers=2)
    numbers = sorted(o for o in outcomes if isinstance(o, int))
    assert numbers and len(numbers) == len(set(numbers))
    published_numbers = sorted(
        WorkflowVersion.objects.filter(workflow=workflow, state="published").values_list("number", flat=True)
    )
    assert published_numbers == list(range(1, len(published_numbers) + 1))
