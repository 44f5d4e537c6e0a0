"""The charts' numbers: one aggregate query each, the right rows counted in the right bucket, nothing of
test runs, other tenants, other workflows or outside the window; the pages that show them stay at a
constant number of queries however many rows there are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.charts.drawing import Chart, nice_ceiling
from runs.charts.queries import MESSAGE_DAYS, messages_per_day, node_counts, runs_per_hour
from runs.models import Delivery, DeliveryEvent, Run, StepExecution
from tests.activity.conftest import add_delivery, add_execution, steps_of
from tests.engine.conftest import build_workflow, email, webhook

pytestmark = pytest.mark.django_db

# A fixed "now", half past the hour, so that every seeded row sits well inside its bucket.
NOW = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)


@pytest.fixture
def fixed_now(monkeypatch):
    monkeypatch.setattr("integrations.clock.now", lambda: NOW)
    return NOW


@pytest.fixture
def onboarding(tenant_a):
    return build_workflow(tenant_a, webhook([email(name="Welcome")]), name="Onboarding")


@pytest.fixture
def other(tenant_a):
    return build_workflow(tenant_a, webhook([email(name="Digest")]), name="Digest")


def run_at(workflow, key: str, when: datetime, status=Run.Status.SUCCEEDED, is_test=False) -> Run:
    run = Run.objects.create(
        tenant_id=workflow.tenant_id,
        workflow=workflow,
        version=workflow.published_version,
        event_key=key,
        status=status,
        is_test=is_test,
    )
    Run.objects.filter(pk=run.pk).update(created_at=when)
    run.created_at = when
    return run


def message_at(workflow, key: str, when: datetime, status=Delivery.Status.SENT, events=(), is_test=False):
    run = run_at(workflow, key, when, is_test=is_test)
    step = next(s for name, s in steps_of(workflow).items() if name)
    delivery = add_delivery(add_execution(run, step, "0"), f"{key}@example.com", status=status)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=when)
    for n, kind in enumerate(events):
        DeliveryEvent.objects.create(
            tenant_id=workflow.tenant_id,
            delivery=delivery,
            kind=kind,
            event_key=f"{kind}-{n}",
            occurred_at=when + timedelta(minutes=5),
        )
    return delivery


def series(chart: Chart) -> dict[str, list[int]]:
    return {s.key: s.values for s in chart.series}


def one_query(produce):
    with CaptureQueriesContext(connection) as queries:
        result = produce()
    assert len(queries) == 1, [q["sql"] for q in queries]
    return result


def test_runs_per_hour_by_outcome_in_one_query(onboarding, other, tenant_a, tenant_b):
    hour = timedelta(hours=1)
    run_at(onboarding, "a", NOW - 5 * hour)
    run_at(onboarding, "b", NOW - 5 * hour)
    run_at(onboarding, "c", NOW - 5 * hour, status=Run.Status.FAILED)
    run_at(onboarding, "d", NOW, status=Run.Status.RUNNING)
    run_at(onboarding, "e", NOW, status=Run.Status.PENDING)
    run_at(other, "f", NOW - 2 * hour, status=Run.Status.PARTIAL)
    run_at(onboarding, "test", NOW, is_test=True)  # test runs are not counted
    run_at(onboarding, "old", NOW - 24 * hour)  # just outside the window
    run_at(onboarding, "future", NOW + hour)  # after "now" (a clock skew): not in any bucket
    foreign = build_workflow(tenant_b, webhook(), name="Theirs")
    run_at(foreign, "theirs", NOW)

    chart = one_query(lambda: runs_per_hour(tenant_a, NOW))
    values = series(chart)
    assert [b.label for b in chart.buckets][-1] == "14:00" and len(chart.buckets) == 24
    assert values["succeeded"][-6] == 2 and values["failed"][-6] == 1
    assert values["running"][-1] == 2  # pending and running: one "in progress" series
    assert values["partial"][-3] == 1
    assert chart.total == 6

    scoped = one_query(lambda: runs_per_hour(tenant_a, NOW, onboarding))
    assert scoped.total == 5 and series(scoped)["partial"] == [0] * 24
    # The stacked bar of 5 hours ago: its segments add up to the hour's runs.
    bar = chart.bars[-6]
    assert bar["total"] == 3 and [s["value"] for s in bar["segments"]] == [2, 1]


def test_messages_per_day_count_each_message_once_per_kind(onboarding, other, tenant_a):
    day = timedelta(days=1)
    # A run that started long ago (a long wait) and sends today: the lowest run id of the window's messages.
    waited = run_at(onboarding, "waited", NOW - 30 * day)
    message_at(onboarding, "m1", NOW - 3 * day, events=["delivered", "opened", "opened"])
    message_at(onboarding, "m2", NOW - 3 * day, events=["delivered", "bounced"])
    message_at(onboarding, "m3", NOW - 3 * day, status=Delivery.Status.SKIPPED)
    message_at(onboarding, "m4", NOW, events=["delivered", "complained"])
    message_at(other, "m5", NOW, events=["delivered"])
    message_at(onboarding, "m6", NOW, status=Delivery.Status.CAPTURED, is_test=True)
    message_at(onboarding, "m7", NOW - MESSAGE_DAYS * day, events=["delivered"])  # before the window
    late = add_delivery(add_execution(waited, steps_of(onboarding)["Welcome"], "0"), "late@example.com")
    Delivery.objects.filter(pk=late.pk).update(created_at=NOW)

    chart = one_query(lambda: messages_per_day(tenant_a, NOW))
    values = series(chart)
    assert len(chart.buckets) == MESSAGE_DAYS and chart.buckets[-1].label == "Dec 7"
    assert [values[k][-4] for k in ("sent", "delivered", "opened", "bounced", "complained", "skipped")] == [
        2,
        2,
        1,  # opened twice, one message
        1,
        0,
        1,
    ]
    assert values["sent"][-1] == 3 and values["delivered"][-1] == 2 and values["complained"][-1] == 1
    assert sum(values["sent"]) == 5

    scoped = one_query(lambda: messages_per_day(tenant_a, NOW, onboarding))
    assert series(scoped)["sent"][-1] == 2 and series(scoped)["delivered"][-1] == 1


def test_node_counts_follow_the_step_across_versions_in_one_query(onboarding, tenant_a):
    welcome = steps_of(onboarding)["Welcome"]
    for n in range(3):
        run = run_at(onboarding, f"r{n}", NOW - timedelta(hours=n))
        add_execution(run, welcome, "0", status=StepExecution.Status.FAILED if n == 2 else "succeeded")
    old = run_at(onboarding, "old", NOW - timedelta(days=8))
    add_execution(old, welcome, "0")
    test = run_at(onboarding, "test", NOW, is_test=True)
    add_execution(test, welcome, "0")

    counts = one_query(lambda: node_counts(tenant_a, onboarding, NOW))
    assert counts == {str(welcome.key): {"succeeded": 2, "failed": 1}}


def test_node_counts_read_only_the_latest_runs(onboarding, tenant_a, monkeypatch):
    welcome = steps_of(onboarding)["Welcome"]
    for n in range(3):  # the oldest (n = 2) failed
        run = run_at(onboarding, f"r{n}", NOW - timedelta(hours=n))
        add_execution(run, welcome, "0", status=StepExecution.Status.FAILED if n == 2 else "succeeded")
    monkeypatch.setattr("runs.charts.queries.NODE_RUNS", 2)
    assert node_counts(tenant_a, onboarding, NOW) == {str(welcome.key): {"succeeded": 2}}


def test_axis_tops_are_round_numbers():
    assert [nice_ceiling(v) for v in (0, 1, 3, 7, 10, 11, 180, 4321)] == [0, 1, 5, 10, 10, 20, 200, 5000]


@pytest.mark.parametrize("url", ["/", "/activity/", "/activity/messages/", "/activity/messages/chart/"])
def test_pages_with_charts_cost_the_same_queries_for_few_or_many_rows(
    owner_client, onboarding, url, fixed_now
):
    def seed(n, start):
        for i in range(start, start + n):
            message_at(onboarding, f"q{i}", NOW - timedelta(hours=i % 30), events=["delivered"])

    seed(2, 0)
    with CaptureQueriesContext(connection) as few:
        assert owner_client.get(url).status_code == 200
    seed(30, 2)
    with CaptureQueriesContext(connection) as many:
        page = owner_client.get(url)
    assert page.status_code == 200 and len(many) == len(few)


def test_the_dashboard_counts_each_workflows_live_runs_of_the_last_day(owner_client, onboarding, other):
    from django.utils import timezone

    now = timezone.now()
    run_at(onboarding, "new", now - timedelta(hours=1))
    run_at(onboarding, "newer", now - timedelta(minutes=5))
    run_at(onboarding, "old", now - timedelta(hours=30))
    run_at(onboarding, "test", now, is_test=True)  # newest, but a test run
    run_at(other, "other", now - timedelta(hours=40))
    page = owner_client.get("/")
    rows = {w.name: (w.runs_24h, w.last_run) for w in page.context["workflows"]}
    assert rows["Onboarding"] == (2, now - timedelta(minutes=5))
    assert rows["Digest"] == (0, now - timedelta(hours=40))
    assert page.context["runs_24h"] == 2


def test_the_messages_chart_is_fetched_by_the_page_and_scoped_to_the_tenant(
    owner_client, outsider_client, onboarding, fixed_now
):
    message_at(onboarding, "m1", NOW, events=["delivered"])
    page = owner_client.get(f"/activity/workflows/{onboarding.pk}/messages/").content.decode()
    assert f'hx-get="/activity/workflows/{onboarding.pk}/messages/chart/"' in page
    chart = owner_client.get(f"/activity/workflows/{onboarding.pk}/messages/chart/")
    assert chart.status_code == 200 and chart.context["chart"].total == 2  # one sent, one delivered
    assert outsider_client.get(f"/activity/workflows/{onboarding.pk}/messages/chart/").status_code == 404
    assert outsider_client.get("/activity/messages/chart/").context["chart"].total == 0
