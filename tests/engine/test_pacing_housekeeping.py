"""Housekeeping deletes the pacing counters no window can read any more: throttle slots a day after their
window ended, frequency-budget counts a day after the tenant's budget window; live ones stay (#23)."""

from __future__ import annotations

from datetime import timedelta

from runs.jobs import prune
from tenants.limits import forget
from tenants.models import TenantLimits
from tests.engine.conftest import build_workflow, work
from tests.engine.test_throttle import fire, throttled
from workflows.models import BudgetCount, ThrottleSlot


def test_throttle_slots_go_a_day_after_their_window_and_the_live_window_keeps_counting(clock, smtp, tenant_a):
    workflow = build_workflow(tenant_a, throttled("drop", limit=2))
    fire(workflow, 2)
    work(clock)
    first = list(ThrottleSlot.objects.values_list("window_start", "window_end"))
    assert len(first) == 2 and all(end - start == timedelta(hours=1) for start, end in first)
    assert prune() == {}  # the window is live: nothing goes
    clock.travel(hours=1, minutes=1)
    fire(workflow, 1, start=10)  # the next window's slot
    work(clock)
    clock.travel(days=1)
    answer = prune()
    assert answer["throttle_slots"] == 2
    assert ThrottleSlot.objects.count() == 1  # the later window's slot ended less than a day ago
    # A slot from before `window_end` existed goes once even the longest window surely ended.
    ThrottleSlot.objects.update(window_end=None)
    assert prune() == {}
    clock.travel(days=401)
    assert prune()["throttle_slots"] == 1 and not ThrottleSlot.objects.exists()


def test_budget_counts_go_a_day_after_each_tenants_window(clock, tenant_a, tenant_b, settings):
    settings.FREQUENCY_BUDGET_HOURS = 24
    TenantLimits.objects.create(tenant=tenant_b, frequency_budget_hours=24 * 7)
    forget()
    now = clock.now
    for tenant, n in ((tenant_a, 0), (tenant_b, 100)):
        for hours_ago in (1, 50, 24 * 7 + 25):
            BudgetCount.objects.create(
                tenant=tenant,
                recipient="a@x.org",
                counted_at=now - timedelta(hours=hours_ago),
                execution_id=n + hours_ago,
            )
    answer = prune()
    assert answer["budget_counts"] == 3
    kept = sorted(
        (c.tenant_id, round((now - c.counted_at).total_seconds() / 3600)) for c in BudgetCount.objects.all()
    )
    # Tenant a (24 h, plus a day): only the 1-hour-old count stays; tenant b (7 days, its own): 1 h and 50 h.
    assert kept == [(tenant_a.pk, 1), (tenant_b.pk, 1), (tenant_b.pk, 50)]
