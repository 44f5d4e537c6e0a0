"""Throttle step: 10 events in one window with a limit of 3, once per policy (3 sent, 7 dropped or
deferred, each state visible); counters in PostgreSQL survive a crashed worker and a flushed Redis without
counting twice; keys never share a window; test runs and previews take no slot and say what would happen."""

from __future__ import annotations

import uuid

import pytest
from rq.timeouts import JobTimeoutException

from runs.engine import start_run
from runs.models import Delivery, Run, StepExecution
from runs.preview import preview_step
from tests.engine.conftest import build_workflow, email, settle, webhook, work
from workflows.models import ThrottleSlot
from workflows.steps import get_kind, throttle_slots
from workflows.steps.errors import ConfigError


def throttled(policy: str, limit: int = 3, **extra) -> dict:
    config = {
        "limit": limit,
        "amount": 1,
        "unit": "hours",
        "key": "{{ item.email }}",
        "policy": policy,
        **extra,
    }
    return webhook(
        [{"kind": "throttle", "config": config, "children": [email(subject="N {{ item.n }}", text="x")]}]
    )


def fire(workflow, count: int, email_address: str = "a@example.com", start: int = 0, **extra) -> list[Run]:
    return [
        start_run(workflow, {"email": email_address, "name": "A", "n": n, **extra}, f"e{n}")
        for n in range(start, start + count)
    ]


def throttle_executions(**filters):
    return StepExecution.objects.filter(step__kind="throttle", **filters)


def test_drop_sends_3_of_10_and_marks_7_throttled_with_the_reason(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, throttled("drop"))
    fire(workflow, 10)
    work(clock)
    assert len(smtp.messages) == 3
    dropped = list(throttle_executions(status="skipped"))
    assert len(dropped) == 7
    for execution in dropped:
        assert "3 of 3 used for “a@example.com”" in execution.output["throttled"]
        assert execution.output["next_slot"] == "2026-03-02T10:00:00+00:00"
        assert execution.error == ""  # dropped on purpose, not a failure
    assert throttle_executions(status="succeeded").count() == 3
    assert Run.objects.filter(status="succeeded").count() == 10  # a dropped item fails no run
    assert ThrottleSlot.objects.count() == 3


def test_defer_sends_3_now_and_the_other_7_in_later_windows_never_more_than_3_per_window(
    clock, smtp, tenant_a
):
    workflow = build_workflow(tenant_a, throttled("defer"))
    fire(workflow, 10)
    work(clock)
    assert len(smtp.messages) == 3
    deferred = list(throttle_executions(status="pending"))
    assert len(deferred) == 7
    for execution in deferred:
        assert execution.next_attempt_at.isoformat() == "2026-03-02T10:00:00+00:00"
        assert execution.output["deferred_until"] == "2026-03-02T10:00:00+00:00"
    settle(clock, step_seconds=3600)
    assert len(smtp.messages) == 10
    assert sorted(int(m["Subject"].split()[1]) for m in smtp.messages) == list(range(10))
    per_hour: dict = {}
    for delivery in Delivery.objects.all():
        hour = delivery.created_at.replace(minute=0, second=0, microsecond=0)
        per_hour[hour] = per_hour.get(hour, 0) + 1
    assert sorted(per_hour.values()) == [1, 3, 3, 3]
    assert throttle_executions(status="succeeded").count() == 10


def test_a_worker_killed_after_taking_a_slot_does_not_count_twice_and_a_lost_redis_resets_nothing(
    clock, smtp, tenant_a, redis_conn, monkeypatch
):
    workflow = build_workflow(tenant_a, throttled("drop"))
    real_take = throttle_slots.take
    crashes = []

    def take_then_die(window, execution_id, now):
        slot = real_take(window, execution_id, now)
        if len(crashes) < 2:  # the worker dies after the slot row is committed, before the step settles
            crashes.append(execution_id)
            raise JobTimeoutException("killed")
        return slot

    monkeypatch.setattr(throttle_slots, "take", take_then_die)
    fire(workflow, 10)
    work(clock)
    assert len(crashes) == 2
    redis_conn.flushdb()  # Redis lost: the counts are in PostgreSQL
    settle(clock, step_seconds=60)
    assert len(smtp.messages) == 3
    assert ThrottleSlot.objects.count() == 3
    assert set(ThrottleSlot.objects.values_list("execution_id", flat=True)) == set(
        throttle_executions(status="succeeded").values_list("pk", flat=True)
    )
    assert throttle_executions(status="skipped").count() == 7


def test_a_retry_of_the_same_execution_keeps_its_slot(clock, tenant_a):
    window = throttle_slots.Window(tenant_a.pk, uuid.uuid4(), "k", clock.now, 2)
    assert throttle_slots.take(window, 101, clock.now) == 1
    assert throttle_slots.take(window, 101, clock.now) == 1
    assert throttle_slots.take(window, 102, clock.now) == 2
    assert throttle_slots.take(window, 103, clock.now) is None
    assert throttle_slots.take(window, 102, clock.now) == 2
    assert throttle_slots.used(window) == 2


def test_keys_never_share_a_window_and_a_new_window_starts_fresh(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, throttled("drop", limit=2))
    fire(workflow, 3, "a@example.com")
    fire(workflow, 3, "b@example.com", start=10)
    work(clock)
    assert sorted(smtp.recipients()) == ["a@example.com"] * 2 + ["b@example.com"] * 2
    clock.travel(hours=1)
    fire(workflow, 1, "a@example.com", start=20)
    work(clock)
    assert len(smtp.messages) == 5


def test_a_window_from_the_item_and_a_bad_one_fails_with_the_field_name(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, throttled("drop", limit=1, window_field="every"))
    fire(workflow, 2, every=60)
    work(clock)
    assert len(smtp.messages) == 1
    clock.travel(seconds=61)
    fire(workflow, 1, start=5, every="60")
    fire(workflow, 1, start=6, every="soon")
    fire(workflow, 1, start=7)
    work(clock)
    assert len(smtp.messages) == 2
    failed = throttle_executions(status="failed").order_by("pk")
    assert ["soon" in failed[0].error, "“every”" in failed[1].error] == [True, True]


def test_a_test_run_and_the_preview_take_no_slot_and_say_what_would_happen(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, throttled("defer", limit=3))
    fire(workflow, 2)
    work(clock)
    step = workflow.published_version.steps.get(kind="throttle")
    said = preview_step(step, {"email": "a@example.com"})
    assert said.decision.startswith("would pass: 2 of 3 used")
    fire(workflow, 1, start=2)
    work(clock)
    said = preview_step(step, {"email": "a@example.com"})
    assert said.decision == (
        "would be throttled: 3 of 3 used for “a@example.com”, next slot 10:00Z (deferred to 2026-03-02 10:00Z)"
    )
    run = start_run(workflow, {"email": "a@example.com", "n": 9}, "t", is_test=True)
    work(clock)
    execution = throttle_executions(run=run).get()
    assert execution.output["would"].startswith("would be throttled: 3 of 3 used")
    assert ThrottleSlot.objects.count() == 3


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 2.5}, "limit"),
        ({"limit": "three"}, "limit"),
        ({"amount": 0}, "amount"),
        ({"amount": 401, "unit": "days"}, "amount"),
        ({"unit": "weeks"}, "unit"),
        ({"policy": "fold"}, "fold_into"),
        ({"policy": "spam"}, "policy"),
        ({"key": ""}, "key"),
        ({"key": "{{ item.email "}, "key"),
    ],
)
def test_bad_settings_name_the_field(db, config, field):
    base = {"limit": 3, "amount": 1, "unit": "hours", "key": "{{ item.email }}", "policy": "drop"}
    with pytest.raises(ConfigError) as raised:
        get_kind("throttle").validate({**base, **config})
    assert field in raised.value.errors


def test_summary_and_defaults(db):
    kind = get_kind("throttle")
    assert kind.summary(kind.validate(kind.default_config())) == "at most 3 per hour, then drop"
    assert (
        kind.summary({"limit": 3, "amount": 2, "unit": "days", "policy": "defer"})
        == "at most 3 per 2 days, then defer"
    )


def folding(limit: int = 3) -> dict:
    config = {"limit": limit, "key": "{{ item.email }}", "policy": "fold", "fold_into": "Overflow"}
    digest = {
        "kind": "digest",
        "name": "Overflow",
        "config": {"key": "{{ item.email }}", "window": "fixed", "amount": 1, "unit": "hours"},
        "children": [email(to="{{ item.digest.key }}", subject="{{ item.digest.count }} more", text="x")],
    }
    # The digest sits where no item reaches it by itself: it only collects what the throttle folds.
    return webhook(
        [
            {"kind": "throttle", "config": config, "children": [email(subject="N {{ item.n }}", text="x")]},
            {"kind": "condition", "config": {"expression": "false"}, "children": [digest]},
        ]
    )


def test_fold_sends_3_and_one_digest_of_the_other_7_even_when_workers_die_after_folding(
    clock, smtp, tenant_a, monkeypatch
):
    from workflows.steps import throttle

    workflow = build_workflow(tenant_a, folding())
    real_fold = throttle._fold
    crashes = []

    def fold_then_die(ctx, settings, item):
        folded = real_fold(ctx, settings, item)
        if len(crashes) < 2:  # the item is in the bucket, the execution not settled yet
            crashes.append(item["n"])
            raise JobTimeoutException("killed")
        return folded

    monkeypatch.setattr(throttle, "_fold", fold_then_die)
    fire(workflow, 10)
    work(clock)
    assert len(crashes) == 2
    settle(clock, step_seconds=60, rounds=3)  # the crashed executions come back and run again
    assert sorted(m["Subject"] for m in smtp.messages) == ["N 0", "N 1", "N 2"]
    folded = list(throttle_executions(status="skipped"))
    assert len(folded) == 7
    assert all(
        e.output["folded_into"] == "Overflow" and "3 of 3 used" in e.output["throttled"] for e in folded
    )
    assert max(e.output["items_so_far"] for e in folded) == 7
    settle(clock, step_seconds=3600)
    assert sorted(m["Subject"] for m in smtp.messages) == ["7 more", "N 0", "N 1", "N 2"]
    assert Run.objects.exclude(status="succeeded").count() == 0


def test_fold_into_a_missing_digest_fails_with_its_name_and_the_preview_says_where_it_would_go(
    clock, smtp, tenant_a
):
    spec = folding(limit=1)
    spec["children"] = spec["children"][:1]  # no digest step
    broken = build_workflow(tenant_a, spec, name="Broken")
    fire(broken, 2)
    work(clock)
    [failed] = throttle_executions(status="failed")
    assert "no digest step named “Overflow”" in failed.error

    workflow = build_workflow(tenant_a, folding(limit=1))
    fire(workflow, 2, start=10)
    work(clock)
    step = workflow.published_version.steps.get(kind="throttle")
    said = preview_step(step, {"email": "a@example.com"}).decision
    assert said.startswith("would be throttled: 1 of 1 used")
    assert said.endswith(
        "joins the digest in “Overflow” for a@example.com: 1 items so far, releases at 10:00Z"
    )


def test_fold_needs_the_digest_named(db):
    base = {"limit": 3, "key": "{{ item.email }}", "policy": "fold"}
    with pytest.raises(ConfigError) as raised:
        get_kind("throttle").validate(base)
    assert "fold_into" in raised.value.errors
    assert (
        get_kind("throttle").validate({**base, "policy": "drop", "fold_into": "x"}).get("fold_into") is None
    )


def test_the_run_page_says_dropped_and_deferred_with_the_reason(clock, smtp, tenant_a, owner_client):
    from django.urls import reverse

    dropping = build_workflow(tenant_a, throttled("drop", limit=1), name="Drop")
    deferring = build_workflow(tenant_a, throttled("defer", limit=1), name="Defer")
    dropped = fire(dropping, 2)[1]
    deferred = fire(deferring, 2, start=10)[1]
    work(clock)
    for run, said in ((dropped, "throttled: 1 of 1 used"), (deferred, "deferred: 1 of 1 used")):
        step = run.version.steps.get(kind="throttle")
        page = owner_client.get(reverse("runs:run_detail", args=[run.pk]), {"step": step.pk})
        html = " ".join(page.content.decode().split())
        assert said in html and "next slot 2026-03-02 10:00Z" in html, html[-3000:]
