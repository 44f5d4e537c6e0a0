"""Cancel by key: a tombstone checked at every claim, so work created after the cancel is cancelled too.

Hostile and real-world cases: a key the item cannot fill; two runs with different keys; a run started
after the cancel for the same key; the tombstone expiring; undo before and after something came due; a
fan-out of 5,000 rows still being read when the cancel lands; a cancel racing the sends of real worker
processes, one of them SIGKILLed.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings

from runs.engine import BadCancelKey, CannotUndo, cancel_by_key, start_run, undo_cancel
from runs.engine.executor import claim
from runs.engine.spawn import Spawner
from runs.engine.sweeper import sweep
from runs.models import CancelTombstone, Delivery, Run, StepExecution
from tests.engine.conftest import build_workflow, data_source, email, query, settle, work
from tests.engine.test_recovery import kill_tree, real_clock, recipients_table, start_worker_process

KEY = "order:{{ item.order_id }}"


def keyed(children, key: str = KEY) -> dict:
    return {"kind": "webhook_trigger", "config": {"cancel_key": key}, "children": children}


def wait(days: float = 1, children=None) -> dict:
    return {
        "kind": "wait",
        "config": {"mode": "duration", "amount": days, "unit": "days"},
        "children": children or [],
    }


def reminder(tenant):
    return build_workflow(tenant, keyed([wait(1, [email(subject="Your order", text="Reminder")])]))


def test_a_cancel_stops_only_the_runs_with_its_key_and_counts_exactly_what_it_cancelled(
    clock, smtp, tenant_a
):
    workflow = reminder(tenant_a)
    one = start_run(workflow, {"order_id": 1, "email": "one@example.com"}, "o1")
    two = start_run(workflow, {"order_id": 2, "email": "two@example.com"}, "o2")
    work(clock)
    one.refresh_from_db()
    assert one.cancel_key == "order:1"

    result = cancel_by_key(workflow, "order:1")

    assert (result.runs, result.executions, result.runs_found) == (1, 1, 1)
    assert result.tombstone.cancelled == 1
    settle(clock)
    one.refresh_from_db()
    two.refresh_from_db()
    assert (one.status, two.status) == (Run.Status.CANCELLED, Run.Status.SUCCEEDED)
    assert smtp.recipients() == ["two@example.com"]
    # A cancel that finds nothing says so: no fake success.
    again = cancel_by_key(workflow, "order:1")
    assert (again.runs, again.executions) == (0, 0)
    assert cancel_by_key(workflow, "order:404").executions == 0


def test_a_run_started_after_the_cancel_is_cancelled_at_its_first_claim_until_the_tombstone_ends(
    clock, smtp, tenant_a
):
    workflow = reminder(tenant_a)
    tombstone = cancel_by_key(workflow, "order:7", until=clock.now + timedelta(hours=2)).tombstone
    late = start_run(workflow, {"order_id": 7, "email": "late@example.com"}, "late")
    other = start_run(workflow, {"order_id": 8, "email": "other@example.com"}, "other")
    settle(clock, step_seconds=60, rounds=3)
    late.refresh_from_db()
    assert late.status == Run.Status.CANCELLED
    assert StepExecution.objects.get(run=late).error == "Cancelled by key when claimed"
    tombstone.refresh_from_db()
    assert (tombstone.cancelled, tombstone.cancelled_when_due) == (1, 1)
    with pytest.raises(CannotUndo, match="came due"):
        undo_cancel(tombstone)

    clock.travel(hours=3)  # the tombstone has ended: the same key runs again
    after = start_run(workflow, {"order_id": 7, "email": "after@example.com"}, "after")
    settle(clock)
    after.refresh_from_db()
    other.refresh_from_db()
    assert (after.status, other.status) == (Run.Status.SUCCEEDED, Run.Status.SUCCEEDED)
    assert sorted(smtp.recipients()) == ["after@example.com", "other@example.com"]


def test_an_item_without_what_the_key_names_gets_no_key_and_is_not_cancelled(clock, smtp, tenant_a):
    workflow = reminder(tenant_a)
    run = start_run(workflow, {"email": "nokey@example.com"}, "nokey")
    assert run.cancel_key == ""
    assert cancel_by_key(workflow, "order:").executions == 0
    for bad in ("", "   ", "x" * 256):
        with pytest.raises(BadCancelKey):
            cancel_by_key(workflow, bad)
    settle(clock)
    assert smtp.recipients() == ["nokey@example.com"]


def test_undo_puts_back_a_waiting_run_while_nothing_was_due_and_refuses_once_it_was(clock, smtp, tenant_a):
    workflow = reminder(tenant_a)
    run = start_run(workflow, {"order_id": 3, "email": "undo@example.com"}, "undo")
    work(clock)
    cancelled = cancel_by_key(workflow, "order:3")
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    clock.travel(hours=12)  # the wait is due in a day: nothing came due yet

    assert undo_cancel(cancelled.tombstone) == 1
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    with pytest.raises(CannotUndo, match="already undone"):
        undo_cancel(cancelled.tombstone)
    settle(clock)
    assert smtp.recipients() == ["undo@example.com"]

    second = start_run(workflow, {"order_id": 4, "email": "late@example.com"}, "late-undo")
    work(clock)
    tombstone = cancel_by_key(workflow, "order:4").tombstone
    clock.travel(days=2)  # the wait would have ended meanwhile
    with pytest.raises(CannotUndo, match="due in the meantime"):
        undo_cancel(tombstone)
    settle(clock)
    second.refresh_from_db()
    assert second.status == Run.Status.CANCELLED and "late@example.com" not in smtp.recipients()


def test_a_cancel_in_the_middle_of_a_5000_item_fan_out_still_being_read_cancels_every_later_item(
    clock, smtp, tenant_a, settings
):
    settings.ENGINE_FANOUT_CHUNK = 500
    settings.ENGINE_BATCH_SIZE = 200
    workflow = build_workflow(tenant_a, keyed([email()]))
    run = start_run(workflow, {"order_id": 5}, "big")
    root = StepExecution.objects.get(run=run, step__parent=None)
    assert claim(run.pk, root.step_id, clock.now, 1) == [root.pk]  # the fan-out step is running
    spawner = Spawner(run, list(root.step.children.all()), clock.now)
    made_before_cancel: list[int] = []
    answers = []

    def rows():
        for i in range(1, 5001):
            if i == 2001:
                work(clock)  # the first chunks are sent while the rest is still being read
                made_before_cancel.append(StepExecution.objects.filter(run=run).count() - 1)
                answers.append(cancel_by_key(workflow, "order:5"))
            yield str(i), {"email": f"user{i}@example.com", "name": f"User {i}"}

    spawner.add(root, rows())
    spawner.finish()
    work(clock)

    sends = StepExecution.objects.filter(run=run, step__kind="send_email")
    statuses = Counter(sends.values_list("status", flat=True))
    sent = set(smtp.recipients())
    assert statuses["succeeded"] == len(sent) and 0 < len(sent) <= made_before_cancel[0] < 5000
    assert statuses["cancelled"] == 5000 - len(sent), statuses
    later = sends.filter(item_key__in=[f"0/{i}" for i in range(2001, 5001)])
    assert set(later.values_list("status", flat=True)) == {"cancelled"}  # created after the cancel
    assert Delivery.objects.filter(run=run).count() == len(sent) == len(smtp.recipients())
    tombstone = answers[0].tombstone
    tombstone.refresh_from_db()
    # The answer counted what was pending then; the tombstone adds what the claims cancelled later.
    assert answers[0].executions == made_before_cancel[0] - len(sent)
    assert tombstone.cancelled == statuses["cancelled"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kill", [False, True], ids=["worker-lives", "worker-sigkilled"])
def test_a_cancel_racing_real_workers_gives_exactly_one_of_sent_or_cancelled_per_item(
    kill, redis_conn, smtp, tenant_a, tenant_database, monkeypatch, tmp_path
):
    clock = real_clock(monkeypatch)
    recipients_table(tenant_database, 600)
    source = data_source(tenant_a, tenant_database)
    workflow = build_workflow(
        tenant_a, keyed([query(source, "SELECT id, email FROM r", children=[email(subject="hi", text="x")])])
    )
    smtp.delay = 0.004
    run = start_run(workflow, {"order_id": 9}, "race")
    worker = start_worker_process(smtp.port, 1, tmp_path / "worker.log")
    deadline = time.monotonic() + 90
    # 150: in the middle of the second batch of 100 (ENGINE_BATCH_SIZE of the worker), not at its end.
    while len(smtp.messages) < 150 and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.01)
    assert worker.poll() is None, "the worker finished before the cancel"
    if kill:
        # Killed mid-batch (its sends in flight, its batch `running`), then the cancel lands while
        # that batch waits for the sweeper: the reclaimed items must each end sent/uncertain or cancelled.
        kill_tree(worker)
        answer = cancel_by_key(workflow, "order:9")
        clock.travel(seconds=settings.ENGINE_EXECUTION_TIMEOUT + settings.SWEEPER_GRACE + 1)
        assert sweep().reclaimed > 0
    else:
        answer = cancel_by_key(workflow, "order:9")
        worker.wait(timeout=120)
    smtp.delay = 0
    settle(clock, step_seconds=60)

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    arrived = Counter(smtp.recipients())
    assert max(arrived.values()) == 1, "a recipient got two emails"
    sends = StepExecution.objects.filter(run=run, step__kind="send_email").select_related("delivery")
    assert sends.count() == 600
    both, neither = [], []
    for execution in sends:
        delivery = getattr(execution, "delivery", None)
        was_sent = delivery is not None and delivery.status in ("sent", "uncertain")
        if execution.status == "cancelled":
            if delivery is not None or execution.input["email"] in arrived:
                both.append(execution.pk)
        elif not was_sent:
            neither.append((execution.pk, execution.status))
    assert both == [] and neither == []
    cancelled = sum(1 for e in sends if e.status == "cancelled")
    assert 0 < cancelled < 600 and answer.executions <= cancelled
    uncertain = Delivery.objects.filter(run=run, status="uncertain").count()
    assert uncertain <= (1 if kill else 0)
    sent = Delivery.objects.filter(run=run, status="sent").count()
    assert sent + uncertain + cancelled == 600
    assert set(Delivery.objects.filter(run=run, status="sent").values_list("recipient", flat=True)) <= set(
        arrived
    )
    assert CancelTombstone.objects.get(pk=answer.tombstone.pk).cancelled == cancelled
