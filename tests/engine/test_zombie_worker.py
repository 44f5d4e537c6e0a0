"""A worker frozen (SIGSTOP) in the middle of a send batch, past its lease: the sweeper reclaims its
claims, another worker settles them, and when the frozen worker wakes (SIGCONT) nothing it writes
changes a delivery or an execution. Real RQ worker processes, a real SMTP sink."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
from django.utils import timezone

from runs.engine import start_run
from runs.engine.sweeper import sweep
from runs.models import Delivery, Run, StepExecution
from tests.engine.conftest import settle
from tests.engine.test_liveness import LEASE, fan_out, process_env, wait_for, worker
from tests.engine.test_recovery import real_clock

N = 300


def state(run: Run) -> tuple[list, list, str]:
    """Everything a late write could change: every execution and delivery of the run, and the run."""
    executions = list(
        StepExecution.objects.filter(run=run)
        .order_by("id")
        .values_list("id", "status", "attempts", "claimed_by", "error", "output", "attempt_log")
    )
    deliveries = list(
        Delivery.objects.filter(run=run)
        .order_by("id")
        .values_list("id", "step_execution_id", "status", "error", "provider_id", "sent_at")
    )
    run.refresh_from_db()
    return executions, deliveries, run.status


def empty_queues() -> None:
    """Drop the queued batch jobs (the sweeper's re-queues among them): the executions stay `pending`
    in PostgreSQL, where a later sweep finds them."""
    import django_rq

    for name in ("default", "low"):
        queue = django_rq.get_queue(name)
        queue.empty()
        for job_id in queue.scheduled_job_registry.get_job_ids():
            queue.scheduled_job_registry.remove(job_id)


@pytest.mark.slow  # real worker processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("connections", "wakes"),
    [(1, "after_another_settled"), (4, "after_another_settled"), (4, "before_another_claimed")],
)
def test_a_worker_that_wakes_after_losing_its_lease_writes_nothing(
    connections, wakes, redis_conn, smtp, tenant_a, tenant_database, monkeypatch, settings, tmp_path
):
    settings.WORKER_LEASE_SECONDS = LEASE
    clock = real_clock(monkeypatch)
    workflow = fan_out(tenant_a, tenant_database, N)
    smtp.delay = 0.02  # a message's DATA takes a while: the freeze lands with messages in flight
    run = start_run(workflow, {}, "evt-zombie")
    env = process_env(smtp.port, EMAIL_SMTP_CONNECTIONS=str(connections))
    zombie = worker(env, tmp_path / "zombie.log")
    try:
        wait_for(lambda: len(smtp.messages) >= 30, 60, "the first messages")
        zombie.send_signal(signal.SIGSTOP)
        held = StepExecution.objects.filter(run=run, status="running", step__kind="send_email")
        assert held.exists(), "frozen in the middle of a send batch"
        frozen = set(held.values_list("id", flat=True))

        # Past its lease the sweeper gives its claims back...
        deadline = time.monotonic() + LEASE + 15
        while StepExecution.objects.filter(pk__in=frozen, status="running").exists():
            assert time.monotonic() < deadline, "the frozen worker's claims were not reclaimed"
            time.sleep(0.25)
            clock.now = timezone.now()
            sweep()
        if wakes == "after_another_settled":
            # ...and another worker settles them (and the rest of the run) before it wakes.
            other = worker(env, tmp_path / "other.log")
            other.wait(timeout=120)
            smtp.delay = 0
            settle(clock, step_seconds=60)
            assert run_status(run) in (Run.Status.SUCCEEDED, Run.Status.PARTIAL)
        else:
            empty_queues()  # it wakes to nothing else to do: what it writes is only its old batch's
        before = state(run)
        assert not StepExecution.objects.filter(pk__in=frozen, status="running").exists()

        # The frozen worker wakes with answers it had not written and a batch it no longer holds.
        zombie.send_signal(signal.SIGCONT)
        zombie.wait(timeout=60)
    finally:
        if zombie.poll() is None:
            zombie.send_signal(signal.SIGCONT)
            zombie.kill()
            zombie.wait(timeout=10)
    after = state(run)
    log = (tmp_path / "zombie.log").read_text()
    assert after == before, f"the woken worker changed rows; its log:\n{log[-3000:]}"
    assert "no longer holds" in log, log[-3000:]
    assert "Traceback" not in log.split("*** Listening", 1)[-1], "a zombie's refusal is a log line"

    # Whatever it left is done by the next attempts: the sweeper queues them, a worker runs them.
    smtp.delay = 0
    settle(clock, step_seconds=60)
    assert run_status(run) in (Run.Status.SUCCEEDED, Run.Status.PARTIAL)
    assert_every_recipient_once_or_listed_uncertain(run, smtp, connections)


def run_status(run: Run) -> str:
    run.refresh_from_db()
    return run.status


def assert_every_recipient_once_or_listed_uncertain(run: Run, smtp, connections: int) -> None:
    sends = {e.pk: e for e in StepExecution.objects.filter(run=run, step__kind="send_email")}
    deliveries = {d.step_execution_id: d for d in Delivery.objects.filter(run=run)}
    received = Counter(smtp.recipients())
    assert len(sends) == N and max(received.values()) == 1, "a recipient got two emails"
    for pk, execution in sends.items():
        delivery = deliveries[pk]
        recipient = execution.input["email"]
        # A delivery's state and its execution's never disagree.
        if delivery.status == "sent":
            assert execution.status == "succeeded" and received[recipient] == 1, (execution, delivery)
        else:
            # Not known to have arrived: listed as uncertain on a failed item, for a person to resolve.
            assert delivery.status == "uncertain" and execution.status == "failed", (
                delivery.status,
                execution,
            )
            assert received[recipient] <= 1
    statuses = Counter(d.status for d in deliveries.values())
    assert statuses["uncertain"] <= 2 * connections + 1, statuses
