"""Retention: finished runs past ACTIVITY_RETENTION_DAYS go with their executions and messages; runs still
needing a person stay; settled event deliveries go too. Off by default."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from integrations.models import EventDelivery, EventEndpoint
from runs.jobs import prune
from runs.models import Delivery, Run, StepExecution
from runs.retention import prune_runs, retention_cutoff
from tests.activity.conftest import add_delivery, add_execution, make_run, steps_of

pytestmark = pytest.mark.django_db

OLD, RECENT = timedelta(days=40), timedelta(days=10)


def run_with_message(workflow, key: str, age: timedelta, message=Delivery.Status.SENT, **run_fields) -> Run:
    run = make_run(workflow, key, age=age, **run_fields)
    execution = add_execution(run, steps_of(workflow)["Welcome"], "0")
    add_delivery(execution, f"{key}@example.com", status=message)
    return run


@pytest.fixture
def history(onboarding) -> dict[str, Run]:
    return {
        "old": run_with_message(onboarding, "old", OLD),
        "old failed": run_with_message(onboarding, "old-failed", OLD, status=Run.Status.FAILED),
        "recent": run_with_message(onboarding, "recent", RECENT),
        "old held": run_with_message(onboarding, "old-held", OLD, message=Delivery.Status.HELD),
        "old uncertain": run_with_message(
            onboarding, "old-uncertain", OLD, message=Delivery.Status.UNCERTAIN
        ),
        "old running": run_with_message(onboarding, "old-running", OLD, status=Run.Status.RUNNING),
    }


def kept(history: dict[str, Run]) -> list[str]:
    present = set(Run.objects.values_list("pk", flat=True))
    return [name for name, run in history.items() if run.pk in present]


def test_retention_is_off_by_default_and_the_command_says_how_to_turn_it_on(history, settings):
    assert settings.ACTIVITY_RETENTION_DAYS == 0
    assert prune() == {}
    with pytest.raises(
        CommandError,
        match=r"Retention is off \(ACTIVITY_RETENTION_DAYS=0 and no tenant has its own\): set it, or pass",
    ):
        call_command("prune_activity")
    assert kept(history) == list(history)


def test_expired_runs_go_with_their_executions_and_messages(history, settings):
    settings.ACTIVITY_RETENTION_DAYS = 30
    gone = [history["old"].pk, history["old failed"].pk]
    # "old running" has an old finished_at too (the fixture sets one): its status alone keeps it.

    report = prune()

    assert report == {"runs": 2, "executions": 4, "deliveries": 2, "done": True, "event_deliveries": 0}
    assert kept(history) == ["recent", "old held", "old uncertain", "old running"]
    assert not StepExecution.objects.filter(run_id__in=gone).exists()
    assert not Delivery.objects.filter(run_id__in=gone).exists()
    assert Delivery.objects.filter(status=Delivery.Status.HELD).count() == 1


def test_slices_stop_at_the_budget_and_the_next_call_goes_on(onboarding):
    for key in ("a", "b", "c"):
        run_with_message(onboarding, key, OLD)
    cutoff = retention_cutoff(days=30)

    first = prune_runs(cutoff, slice_size=2, budget=0)
    assert (first.runs, first.done) == (2, False)
    second = prune_runs(cutoff, slice_size=2, budget=0)
    assert (second.runs, second.done) == (1, True)
    assert not Run.objects.exists()


def test_settled_event_deliveries_go_and_pending_ones_stay(tenant_a, settings):
    settings.ACTIVITY_RETENTION_DAYS = 30
    endpoint = EventEndpoint.objects.create(
        tenant=tenant_a, url="http://127.0.0.1:9/events", events=["run.failed"]
    )
    statuses = {
        "old delivered": (EventDelivery.Status.SUCCEEDED, OLD),
        "old failed": (EventDelivery.Status.FAILED, OLD),
        "old pending": (EventDelivery.Status.PENDING, OLD),
        "recent delivered": (EventDelivery.Status.SUCCEEDED, RECENT),
    }
    for event_id, (status, age) in statuses.items():
        delivery = EventDelivery.objects.create(
            tenant=tenant_a,
            endpoint=endpoint,
            event_type="run.failed",
            event_id=event_id,
            payload={},
            status=status,
        )
        EventDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - age)

    assert prune()["event_deliveries"] == 2
    assert sorted(EventDelivery.objects.values_list("event_id", flat=True)) == [
        "old pending",
        "recent delivered",
    ]


def test_the_command_counts_on_a_dry_run_and_then_deletes(history, capsys):
    call_command("prune_activity", "--days", "30", "--dry-run")
    assert capsys.readouterr().out.startswith("2 runs finished before ")
    assert len(kept(history)) == len(history)

    call_command("prune_activity", "--days", "30")
    out = capsys.readouterr().out
    assert out.startswith("Deleted 2 runs finished before ")
    assert out.endswith("with 4 executions and 2 messages, and 0 event deliveries.\n")
    assert kept(history) == ["recent", "old held", "old uncertain", "old running"]


def test_a_tenants_own_retention_takes_its_search_values_and_leaves_other_tenants_and_held_runs(
    clock, tenant_a, tenant_b, settings
):
    """Tenant A keeps 7 days, B everything: A's old run goes with its searchable values; A's old run with a
    held message, A's recent run and B's old run stay, and B's values are untouched."""
    from runs.engine import start_run
    from runs.models import RunSearchValue
    from tenants.limits import forget
    from tenants.models import TenantLimits
    from tests.engine.conftest import build_workflow

    trigger = {"kind": "webhook_trigger", "config": {"search_fields": [{"path": "item.account_id"}]}}
    mine, theirs = (build_workflow(tenant, trigger, name="Searchable") for tenant in (tenant_a, tenant_b))
    TenantLimits.objects.create(tenant=tenant_a, activity_retention_days=7)
    forget()
    runs = {
        name: start_run(workflow, {"account_id": "acc-1"}, name)
        for name, workflow in (("a old", mine), ("a held", mine), ("a recent", mine), ("b old", theirs))
    }
    ages = {"a old": 8, "a held": 8, "a recent": 6, "b old": 400}
    for name, run in runs.items():
        when = clock.now - timedelta(days=ages[name])
        Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED, created_at=when, finished_at=when)
    held = runs["a held"]
    execution = StepExecution.objects.filter(run=held).first()
    add_delivery(execution, "held@example.com", status=Delivery.Status.HELD)

    report = prune()

    assert report["runs"] == 1
    left = set(Run.objects.values_list("event_key", flat=True))
    assert left == {"a held", "a recent", "b old"}
    assert set(RunSearchValue.objects.values_list("run__event_key", flat=True)) == left
    assert RunSearchValue.objects.filter(tenant=tenant_b).count() == 1


def test_slices_walk_past_kept_runs_to_the_end(onboarding):
    """Each slice starts after the last run the previous one took: a held run among the oldest is passed
    over, never taken, and never stops the slices before the last expired run."""
    runs = [
        run_with_message(
            onboarding,
            f"r{n}",
            OLD + timedelta(hours=n),
            message=Delivery.Status.HELD if n == 1 else Delivery.Status.SENT,
        )
        for n in range(7)
    ]
    report = prune_runs(retention_cutoff(days=30), slice_size=2, budget=float("inf"))
    assert (report.runs, report.done) == (6, True)
    assert list(Run.objects.values_list("pk", flat=True)) == [runs[1].pk]
