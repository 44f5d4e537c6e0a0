"""Schedule trigger: next firings across DST, publishing the Schedule row, and the periodic job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.schedule_rules import next_firing, previous_firing
from runs.models import Run
from runs.schedules import fire_due_schedules
from tests.triggers.conftest import make_workflow, set_root_config
from workflows.models import Schedule
from workflows.publishing import publish, unpublish
from workflows.steps import ConfigError, get_kind


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def firings(rule: dict, after: datetime, count: int) -> list[datetime]:
    result = []
    for _ in range(count):
        after = next_firing(rule, after)
        result.append(after)
    return result


def test_daily_in_berlin_keeps_local_time_across_both_dst_changes():
    rule = {"frequency": "daily", "time": "09:00", "timezone": "Europe/Berlin"}
    # Clocks go forward on 2026-03-29 and back on 2026-10-25.
    assert firings(rule, utc(2026, 3, 27, 12), 3) == [
        utc(2026, 3, 28, 8),
        utc(2026, 3, 29, 7),
        utc(2026, 3, 30, 7),
    ]
    assert firings(rule, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]


def test_daily_in_new_york_keeps_local_time_across_both_dst_changes():
    rule = {"frequency": "daily", "time": "09:00", "timezone": "America/New_York"}
    # Clocks go forward on 2026-03-08 and back on 2026-11-01.
    assert firings(rule, utc(2026, 3, 7, 12), 2) == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)]
    assert firings(rule, utc(2026, 10, 31, 14), 2) == [utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)]


def test_skipped_and_repeated_local_times_fire_exactly_once():
    rule = {"frequency": "daily", "time": "02:30", "timezone": "Europe/Berlin"}
    # 02:30 does not exist on 2026-03-29: it fires at 03:30 CEST (01:30 UTC), as it would have in winter.
    assert firings(rule, utc(2026, 3, 28, 12), 2) == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    # 02:30 happens twice on 2026-10-25: it fires once, at the first one (CEST, 00:30 UTC).
    assert firings(rule, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_cron_expression_runs_on_the_local_wall_clock_across_dst():
    rule = {"frequency": "cron", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    assert firings(rule, utc(2026, 10, 24, 12), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    weekdays = {"frequency": "cron", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}
    # Friday 6 March (EST), then Monday 9 March (EDT).
    assert firings(weekdays, utc(2026, 3, 6, 0), 2) == [utc(2026, 3, 6, 14), utc(2026, 3, 9, 13)]


def test_weekly_and_monthly_rules():
    weekly = {"frequency": "weekly", "time": "18:00", "timezone": "UTC", "weekdays": ["mon", "thu"]}
    # 2026-11-24 is a Tuesday.
    assert firings(weekly, utc(2026, 11, 24), 3) == [
        utc(2026, 11, 26, 18),
        utc(2026, 11, 30, 18),
        utc(2026, 12, 3, 18),
    ]
    last_day = {"frequency": "monthly", "time": "00:00", "timezone": "UTC", "day_of_month": -1}
    assert firings(last_day, utc(2027, 1, 15), 3) == [utc(2027, 1, 31), utc(2027, 2, 28), utc(2027, 3, 31)]
    second_last = {"frequency": "monthly", "time": "00:00", "timezone": "UTC", "day_of_month": -2}
    assert next_firing(second_last, utc(2027, 2, 1)) == utc(2027, 2, 27)
    the_31st = {"frequency": "monthly", "time": "12:00", "timezone": "UTC", "day_of_month": 31}
    assert firings(the_31st, utc(2027, 3, 31, 13), 2) == [utc(2027, 5, 31, 12), utc(2027, 7, 31, 12)]


def test_previous_firing_is_the_latest_at_or_before():
    rule = {"frequency": "daily", "time": "09:00", "timezone": "Europe/Berlin"}
    assert previous_firing(rule, utc(2026, 3, 30, 7)) == utc(2026, 3, 30, 7)
    assert previous_firing(rule, utc(2026, 3, 30, 6, 59)) == utc(2026, 3, 29, 7)


@pytest.mark.parametrize(
    "config, field, message",
    [
        ({"frequency": "daily", "time": "9am", "timezone": "UTC"}, "time", "like 09:00"),
        ({"frequency": "daily", "time": "09:00", "timezone": "Mars/Olympus"}, "timezone", "not a time zone"),
        (
            {"frequency": "weekly", "time": "09:00", "timezone": "UTC", "weekdays": []},
            "weekdays",
            "at least one",
        ),
        (
            {"frequency": "monthly", "time": "09:00", "timezone": "UTC", "day_of_month": 32},
            "day_of_month",
            "1 to 31",
        ),
        ({"frequency": "cron", "cron": "every day", "timezone": "UTC"}, "cron", "five cron fields"),
        ({"frequency": "hourly", "timezone": "UTC"}, "frequency", "daily, weekly, monthly or cron"),
    ],
)
def test_bad_schedule_configs_name_the_field(config, field, message):
    with pytest.raises(ConfigError) as raised:
        get_kind("schedule_trigger").validate(config)
    assert message in raised.value.errors[field]


DAILY_NINE_BERLIN = {"frequency": "daily", "time": "09:00", "timezone": "Europe/Berlin"}


@pytest.fixture
def scheduled(tenant_a, monkeypatch):
    """A published daily 09:00 Berlin workflow, published 'at' 2026-03-27 12:00 UTC."""
    monkeypatch.setattr("integrations.clock.now", lambda: utc(2026, 3, 27, 12))
    workflow = make_workflow(tenant_a, "schedule_trigger", DAILY_NINE_BERLIN, name="Daily digest")
    publish(workflow)
    workflow.refresh_from_db()
    return workflow


@pytest.mark.django_db
def test_publish_stores_the_next_firing_and_unpublish_clears_it(scheduled):
    schedule = Schedule.objects.get(workflow=scheduled)
    assert schedule.next_fire_at == utc(2026, 3, 28, 8)
    assert schedule.tenant_id == scheduled.tenant_id

    unpublish(scheduled)
    assert not Schedule.objects.filter(workflow=scheduled).exists()


@pytest.mark.django_db
def test_republishing_a_changed_rule_moves_the_next_firing(scheduled):
    set_root_config(scheduled, {**DAILY_NINE_BERLIN, "time": "10:15"})
    publish(scheduled)

    schedule = Schedule.objects.get(workflow=scheduled)
    assert schedule.next_fire_at == utc(2026, 3, 28, 9, 15)
    assert schedule.step_id == scheduled.published_version.root_step().pk


@pytest.mark.django_db
def test_a_due_schedule_starts_one_run_keyed_by_its_instant(scheduled):
    assert fire_due_schedules(now=utc(2026, 3, 28, 7, 59)) == 0

    assert fire_due_schedules(now=utc(2026, 3, 28, 8, 0, 5)) == 1

    run = Run.objects.get(workflow=scheduled)
    assert run.event_key == "schedule:2026-03-28T08:00:00Z"
    assert run.payload == {
        "scheduled_at": "2026-03-28T08:00:00Z",
        "local_time": "2026-03-28T09:00:00+01:00",
        "timezone": "Europe/Berlin",
    }
    schedule = Schedule.objects.get(workflow=scheduled)
    assert schedule.last_fired_at == utc(2026, 3, 28, 8)
    assert schedule.next_fire_at == utc(2026, 3, 29, 7)  # summer time from 29 March


@pytest.mark.django_db
def test_a_firing_delivered_twice_starts_one_run(scheduled):
    fire_due_schedules(now=utc(2026, 3, 28, 8, 0, 5))
    # A second cron process, or a retried job, that still saw the old next_fire_at:
    Schedule.objects.filter(workflow=scheduled).update(next_fire_at=utc(2026, 3, 28, 8))
    fire_due_schedules(now=utc(2026, 3, 28, 8, 0, 9))

    assert Run.objects.filter(workflow=scheduled).count() == 1


@pytest.mark.django_db
def test_after_downtime_only_the_latest_missed_firing_runs(scheduled):
    # Down from before the 28 March firing until 31 March 10:00 UTC: 28, 29, 30, 31 March were missed.
    assert fire_due_schedules(now=utc(2026, 3, 31, 10)) == 1

    [run] = Run.objects.filter(workflow=scheduled)
    assert run.payload["local_time"] == "2026-03-31T09:00:00+02:00"
    assert Schedule.objects.get(workflow=scheduled).next_fire_at == utc(2026, 4, 1, 7)
    assert fire_due_schedules(now=utc(2026, 3, 31, 10, 0, 10)) == 0


@pytest.mark.django_db
def test_the_periodic_job_is_on_rq_cron_and_runs_on_a_worker(scheduled, redis_conn, monkeypatch):
    from django_rq.cron import DjangoCronScheduler
    from rq import Queue, SimpleWorker

    scheduler = DjangoCronScheduler()
    scheduler.load_config_from_file("config/cron.py")
    assert "runs.schedules.fire_due_schedules" in [job.func_name for job in scheduler.get_jobs()]

    monkeypatch.undo()  # the worker runs the job at the real time
    Schedule.objects.filter(workflow=scheduled).update(next_fire_at=datetime.now(UTC) - timedelta(minutes=1))
    # A plain rq Queue: django-rq's queue would hold the job until this test's transaction commits.
    queue = Queue("default", connection=redis_conn)
    queue.enqueue(fire_due_schedules)
    SimpleWorker([queue], connection=redis_conn).work(burst=True)

    assert Run.objects.filter(workflow=scheduled, event_key__startswith="schedule:").count() == 1


@pytest.mark.django_db
def test_a_broken_schedule_does_not_hold_back_the_others(scheduled, tenant_a):
    broken = make_workflow(tenant_a, "schedule_trigger", DAILY_NINE_BERLIN, name="Broken")
    publish(broken)
    # A rule that no longer computes (say, a zone removed from tzdata after it was saved).
    Schedule.objects.filter(workflow=broken).update(rule={**DAILY_NINE_BERLIN, "timezone": "Gone/Away"})

    assert fire_due_schedules(now=utc(2026, 3, 28, 8, 0, 5)) == 1

    assert Run.objects.filter(workflow=scheduled).count() == 1
    assert not Run.objects.filter(workflow=broken).exists()
    assert Schedule.objects.get(workflow=broken).next_fire_at == utc(2026, 3, 28, 8)  # still due, retried
