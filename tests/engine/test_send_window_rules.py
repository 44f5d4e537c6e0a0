"""Send window specs: reading them, refusing nonsense with a message, and the opening times across both
daylight-saving changes in Europe/Berlin and across midnight (pure functions, no clock to patch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integrations.send_windows import WindowError, is_open, next_opening, parse, spread, zone

BERLIN = zone("Europe/Berlin")


def utc(*parts) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("mon-fri 9-17", "write days and a span"),
        ("mon-fri 25:00-26:00", "is not a time of day"),
        ("moonday 09:00-17:00", "is not a day"),
        ("daily 09:00-09:00", "the span is empty"),
        ("mon-fri 09:00-17:00; whenever", "“whenever”"),
        ("daily 24:00-06:00", "starts before 24:00"),
    ],
)
def test_a_spec_that_cannot_be_read_says_what_is_wrong(spec, message):
    with pytest.raises(WindowError, match=message):
        parse(spec)


def test_an_empty_spec_is_any_time_and_odd_shapes_are_refused_not_crashed():
    assert parse("").always and parse("  ;  ").always
    for odd in (None, 9, ["mon"], {"days": "mon"}):
        with pytest.raises(WindowError):
            parse(odd)  # type: ignore[arg-type]


def test_weekday_window_across_the_spring_change():
    window = parse("mon-fri 09:00-17:00")
    # Saturday 28 March 2026, noon UTC; the clocks go forward on Sunday 29 March at 02:00.
    opening = next_opening(window, BERLIN, utc(2026, 3, 28, 12))
    assert opening.at == utc(2026, 3, 30, 7)  # Monday 09:00 CEST (UTC+2)
    assert opening.closes == utc(2026, 3, 30, 15)
    # Friday 27 March 16:59 CET is open, 17:00 CET (16:00 UTC) is not.
    assert is_open(window, BERLIN, utc(2026, 3, 27, 15, 59))
    assert not is_open(window, BERLIN, utc(2026, 3, 27, 16))


def test_weekday_window_across_the_autumn_change():
    window = parse("mon-fri 09:00-17:00")
    # Saturday 24 October 2026; the clocks go back on Sunday 25 October at 03:00.
    opening = next_opening(window, BERLIN, utc(2026, 10, 24, 12))
    assert opening.at == utc(2026, 10, 26, 8)  # Monday 09:00 CET (UTC+1)
    assert next_opening(window, BERLIN, utc(2026, 10, 23, 6, 59)).at == utc(
        2026, 10, 23, 7
    )  # Fri, still CEST


def test_a_window_inside_the_skipped_hour_opens_after_the_gap():
    window = parse("sun 02:30-04:00")
    opening = next_opening(window, BERLIN, utc(2026, 3, 28, 12))
    assert opening.at == utc(2026, 3, 29, 1, 30)  # 02:30 does not exist: 03:30 CEST, the moment after the gap
    assert opening.closes == utc(2026, 3, 29, 2)  # 04:00 CEST


def test_the_repeated_hour_in_autumn_is_inside_a_window_that_spans_it():
    window = parse("sun 02:00-04:00")
    # 02:30 happens twice on 25 October: at 00:30 UTC (CEST) and at 01:30 UTC (CET); both are open.
    assert is_open(window, BERLIN, utc(2026, 10, 25, 0, 30))
    assert is_open(window, BERLIN, utc(2026, 10, 25, 1, 30))
    assert not is_open(window, BERLIN, utc(2026, 10, 25, 3))  # 04:00 CET


def test_quiet_hours_across_midnight():
    window = parse("not daily 22:00-06:00")
    # Monday 2 March 2026 (CET, UTC+1): 21:59 is open, 22:00 to 05:59 next morning is not.
    assert is_open(window, BERLIN, utc(2026, 3, 2, 20, 59))
    assert not is_open(window, BERLIN, utc(2026, 3, 2, 21))
    assert not is_open(window, BERLIN, utc(2026, 3, 2, 23, 30))  # past midnight local
    assert next_opening(window, BERLIN, utc(2026, 3, 2, 23, 30)).at == utc(2026, 3, 3, 5)
    assert next_opening(window, BERLIN, utc(2026, 3, 2, 21)).closes == utc(2026, 3, 3, 21)


def test_a_window_that_crosses_midnight_belongs_to_the_day_it_starts():
    window = parse("fri 22:00-06:00")
    assert is_open(window, BERLIN, utc(2026, 3, 7, 4))  # Saturday 05:00 local: Friday's night
    assert not is_open(window, BERLIN, utc(2026, 3, 8, 4))  # Sunday 05:00 local: Saturday has no night
    assert next_opening(window, BERLIN, utc(2026, 3, 7, 5)).at == utc(2026, 3, 13, 21)


def test_quiet_hours_across_midnight_over_the_spring_change():
    window = parse("not daily 22:00-06:00")
    # The night of 28 to 29 March: 22:00 CET (21:00 UTC) to 06:00 CEST (04:00 UTC): one hour shorter.
    assert next_opening(window, BERLIN, utc(2026, 3, 28, 21, 30)).at == utc(2026, 3, 29, 4)
    # And in autumn one hour longer: 22:00 CEST (20:00 UTC) to 06:00 CET (05:00 UTC).
    assert next_opening(window, BERLIN, utc(2026, 10, 24, 20, 30)).at == utc(2026, 10, 25, 5)


def test_allowed_spans_minus_quiet_ones():
    window = parse("mon-fri 09:00-17:00; not fri 12:00-13:00")
    assert not is_open(window, BERLIN, utc(2026, 3, 6, 11, 30))  # Friday 12:30
    assert next_opening(window, BERLIN, utc(2026, 3, 6, 11, 30)).at == utc(2026, 3, 6, 12)


def test_a_spec_that_never_opens_sends_rather_than_holding_forever():
    window = parse("not daily 00:00-24:00")
    now = utc(2026, 3, 2, 9)
    assert next_opening(window, BERLIN, now).at == now


def test_the_spread_is_fixed_per_message_and_stays_in_the_first_minutes():
    opening = next_opening(parse("mon-fri 09:00-17:00"), BERLIN, utc(2026, 3, 28, 12))
    times = [spread(opening, f"7:3:{n}", 600) for n in range(1000)]
    assert times == [spread(opening, f"7:3:{n}", 600) for n in range(1000)]  # deterministic
    assert all(opening.at <= t < opening.at + timedelta(seconds=600) for t in times)
    per_minute = [sum(1 for t in times if (t - opening.at).total_seconds() // 60 == m) for m in range(10)]
    assert min(per_minute) > 60 and max(per_minute) < 140, per_minute  # about 100 a minute, not 1000 at once


def test_the_spread_never_runs_past_a_short_window():
    window = parse("daily 09:00-09:04")
    opening = next_opening(window, BERLIN, utc(2026, 3, 2, 12))
    assert all(spread(opening, str(n), 600) < opening.at + timedelta(minutes=2) for n in range(200))
