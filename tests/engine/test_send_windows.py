"""Messages held for their send window, with the engine's clock patched: held until the window opens in
the recipient's zone (from the data, else the tenant's), sent then, re-checked for consent at that
moment; urgent ones go at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consent.models import Suppression, Unsubscribe
from runs.engine import start_run
from runs.engine.sweeper import sweep
from runs.models import Delivery, StepExecution
from tests.engine.conftest import build_workflow, email, webhook, work
from workflows.steps.send_window import hold_for

SPREAD = timedelta(seconds=600)


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.fixture
def berlin(tenant_a):
    tenant_a.time_zone = "Europe/Berlin"
    tenant_a.save()
    return tenant_a


def held_email(run) -> StepExecution:
    return StepExecution.objects.get(run=run, step__kind="send_email")


def advance_to(clock, when: datetime) -> None:
    """Move the clock and let the installation do what it does at that time: sweep, then work."""
    clock.now = when
    sweep()
    work(clock)


def test_a_weekend_message_waits_for_monday_across_the_spring_change(clock, smtp, berlin):
    clock.now = utc(2026, 3, 28, 12)  # Saturday; clocks go forward on Sunday
    workflow = build_workflow(berlin, webhook([email(send_window="mon-fri 09:00-17:00")]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)

    execution = held_email(run)
    assert execution.status == "pending"
    monday_nine = utc(2026, 3, 30, 7)  # 09:00 CEST
    assert monday_nine <= execution.next_attempt_at < monday_nine + SPREAD
    assert execution.output["held_for_window"]["zone"] == "Europe/Berlin"
    assert smtp.recipients() == []

    advance_to(clock, monday_nine - timedelta(minutes=1))
    assert smtp.recipients() == []
    advance_to(clock, monday_nine + SPREAD + timedelta(seconds=30))
    assert smtp.recipients() == ["ann@example.com"]
    assert held_email(run).status == "succeeded"


def test_a_weekend_message_waits_for_monday_across_the_autumn_change(clock, smtp, berlin):
    clock.now = utc(2026, 10, 24, 12)  # Saturday; clocks go back on Sunday
    workflow = build_workflow(berlin, webhook([email(send_window="mon-fri 09:00-17:00")]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    monday_nine = utc(2026, 10, 26, 8)  # 09:00 CET
    assert monday_nine <= held_email(run).next_attempt_at < monday_nine + SPREAD

    advance_to(clock, utc(2026, 10, 26, 7, 30))  # 08:30 CET, would be 09:30 had the clocks not changed
    assert smtp.recipients() == []
    advance_to(clock, monday_nine + SPREAD + timedelta(seconds=30))
    assert smtp.recipients() == ["ann@example.com"]


def test_quiet_hours_across_midnight_hold_until_six(clock, smtp, berlin):
    clock.now = utc(2026, 3, 2, 22, 30)  # 23:30 in Berlin
    workflow = build_workflow(berlin, webhook([email(send_window="not daily 22:00-06:00")]))
    late = start_run(workflow, {"email": "late@example.com", "name": "L"}, "late")
    work(clock)
    six = utc(2026, 3, 3, 5)
    assert six <= held_email(late).next_attempt_at < six + SPREAD

    advance_to(clock, utc(2026, 3, 3, 3, 30))  # 04:30 local, past midnight, still quiet
    early = start_run(workflow, {"email": "early@example.com", "name": "E"}, "early")
    work(clock)
    assert six <= held_email(early).next_attempt_at < six + SPREAD
    assert smtp.recipients() == []

    advance_to(clock, six + SPREAD + timedelta(seconds=30))
    assert sorted(smtp.recipients()) == ["early@example.com", "late@example.com"]


def test_a_held_message_whose_recipient_unsubscribes_meanwhile_is_skipped(clock, smtp, berlin):
    clock.now = utc(2026, 3, 28, 12)
    workflow = build_workflow(
        berlin, webhook([email(send_window="mon-fri 09:00-17:00", allow_unsubscribe=True)])
    )
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    other = start_run(workflow, {"email": "bob@example.com", "name": "Bob"}, "evt-2")
    work(clock)
    assert held_email(run).status == "pending"

    clock.travel(hours=20)  # Sunday: Ann unsubscribes, Bob's address starts bouncing
    Unsubscribe.objects.create(tenant=berlin, address="ann@example.com")
    Suppression.objects.create(
        tenant=berlin, address="bob@example.com", channel="email", reason=Suppression.Reason.MANUAL
    )

    advance_to(clock, utc(2026, 3, 30, 7) + SPREAD + timedelta(seconds=30))
    assert smtp.recipients() == []
    for held_run in (run, other):
        assert held_email(held_run).status == "skipped"
        assert Delivery.objects.get(run=held_run).status == Delivery.Status.SKIPPED


def test_the_zone_comes_from_the_data_and_an_invalid_one_uses_the_tenants(clock, smtp, berlin):
    clock.now = utc(2026, 3, 2, 6)  # Monday 07:00 in Berlin, 01:00 in New York
    step = email(send_window="daily 09:00-17:00", send_window_zone="{{ item.timezone }}")
    workflow = build_workflow(berlin, webhook([step]))
    payloads = {
        "ny": {"email": "ny@example.com", "name": "N", "timezone": "America/New_York"},
        "mars": {"email": "mars@example.com", "name": "M", "timezone": "Mars/Olympus_Mons"},
        "none": {"email": "none@example.com", "name": "X"},
        "odd": {"email": "odd@example.com", "name": "O", "timezone": {"name": "Europe/Paris"}},
    }
    runs = {key: start_run(workflow, payload, key) for key, payload in payloads.items()}
    work(clock)
    held = {key: held_email(run).output["held_for_window"] for key, run in runs.items()}

    assert held["ny"]["zone"] == "America/New_York" and held["ny"]["zone_note"] == ""
    assert utc(2026, 3, 2, 14) <= datetime.fromisoformat(held["ny"]["until"]) < utc(2026, 3, 2, 14) + SPREAD
    assert held["mars"]["zone"] == "Europe/Berlin"
    assert held["mars"]["zone_note"] == "zone “Mars/Olympus_Mons” is not a time zone, used Europe/Berlin"
    assert held["none"]["zone_note"] == "zone unknown, used Europe/Berlin"
    assert held["odd"]["zone"] == "Europe/Berlin"
    for key in ("mars", "none", "odd"):
        until = datetime.fromisoformat(held[key]["until"])
        assert utc(2026, 3, 2, 8) <= until < utc(2026, 3, 2, 8) + SPREAD, key

    advance_to(clock, utc(2026, 3, 2, 8) + SPREAD + timedelta(seconds=30))
    assert sorted(smtp.recipients()) == ["mars@example.com", "none@example.com", "odd@example.com"]
    advance_to(clock, utc(2026, 3, 2, 14) + SPREAD + timedelta(seconds=30))
    assert sorted(smtp.recipients()) == [
        "mars@example.com",
        "none@example.com",
        "ny@example.com",
        "odd@example.com",
    ]


def test_an_urgent_message_ignores_the_window(clock, smtp, berlin):
    clock.now = utc(2026, 3, 28, 12)
    workflow = build_workflow(berlin, webhook([email(send_window="mon-fri 09:00-17:00", urgent=True)]))
    start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    assert smtp.recipients() == ["ann@example.com"]


def test_the_tenants_default_window_applies_and_always_overrides_it(clock, smtp, berlin):
    berlin.send_window = "mon-fri 09:00-17:00"
    berlin.save()
    clock.now = utc(2026, 3, 28, 12)
    default = build_workflow(berlin, webhook([email(to="default@example.com")]), name="Default")
    anytime = build_workflow(berlin, webhook([email(to="any@example.com", send_window="always")]), name="Any")
    held = start_run(default, {"name": "D"}, "d")
    start_run(anytime, {"name": "A"}, "a")
    work(clock)
    assert smtp.recipients() == ["any@example.com"]
    assert held_email(held).status == "pending"


def test_a_claim_that_finds_the_window_closed_holds_the_message_again(clock, smtp, berlin):
    """A message due inside its window but claimed after it closed (a backlog, a retry) is not sent late
    at night: it is held until the next opening, and the attempt log says why."""
    clock.now = utc(2026, 3, 2, 15, 59)  # Monday 16:59 in Berlin, inside 09:00-17:00
    workflow = build_workflow(berlin, webhook([email(send_window="mon-fri 09:00-17:00")]))
    smtp.script = ["451 4.3.0 try again later"]  # the first try fails for a while: a retry is due
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1")
    work(clock)
    assert held_email(run).status == "pending" and held_email(run).attempts == 1
    advance_to(clock, utc(2026, 3, 2, 16, 5))  # the retry is claimed at 17:05
    execution = held_email(run)
    assert execution.status == "pending" and smtp.recipients() == []
    tuesday = utc(2026, 3, 3, 8)
    assert tuesday <= execution.next_attempt_at < tuesday + SPREAD
    assert execution.attempt_log[-1]["outcome"] == "held for send window"
    assert Delivery.objects.get(run=run).status == Delivery.Status.FAILED  # the first try's row, not sent
    advance_to(clock, tuesday + SPREAD + timedelta(seconds=30))
    assert smtp.recipients() == ["ann@example.com"]


def test_a_test_run_is_not_held(clock, smtp, berlin):
    clock.now = utc(2026, 3, 28, 12)
    workflow = build_workflow(berlin, webhook([email(send_window="mon-fri 09:00-17:00")]))
    run = start_run(workflow, {"email": "ann@example.com", "name": "Ann"}, "evt-1", is_test=True)
    work(clock)
    assert held_email(run).status == "succeeded"
    assert Delivery.objects.get(run=run).status == Delivery.Status.CAPTURED


def test_a_stored_window_that_no_longer_reads_does_not_hold_forever(berlin):
    config = {"send_window": "whenever you like"}
    assert hold_for(config, {}, berlin, utc(2026, 3, 28, 12), "x") is None
