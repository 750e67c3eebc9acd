"""Working-day calendar and the simulated clock."""

from __future__ import annotations

import datetime as dt

import pytest

from psc.policy.clock import CST, SimulatedClock, WorkingCalendar, today

WED = dt.date(2026, 11, 25)


def test_weekends_are_skipped() -> None:
    cal = WorkingCalendar()
    assert cal.add_working_days(WED, 1) == dt.date(2026, 11, 26)
    assert cal.add_working_days(WED, 3) == dt.date(2026, 11, 30)  # Thu, Fri, Mon
    assert cal.add_working_days(WED, 15) == dt.date(2026, 12, 16)
    assert cal.add_working_days(dt.date(2026, 11, 28), 1) == dt.date(
        2026, 11, 30
    )  # from a Saturday


def test_holidays_and_make_up_days() -> None:
    cal = WorkingCalendar.of(
        holidays=[dt.date(2026, 11, 26), dt.date(2026, 11, 27)],
        extra_workdays=[dt.date(2026, 11, 29)],
    )
    assert not cal.is_working_day(dt.date(2026, 11, 26))
    assert cal.is_working_day(dt.date(2026, 11, 29))  # a make-up Sunday
    assert cal.add_working_days(WED, 1) == dt.date(2026, 11, 29)
    assert cal.working_days_between(WED, dt.date(2026, 12, 2)) == 4  # Sun 29, Mon, Tue, Wed


def test_working_days_between_matches_add() -> None:
    cal = WorkingCalendar.of(holidays=[dt.date(2026, 10, 1)])
    for n in range(1, 40):
        assert (
            cal.working_days_between(
                dt.date(2026, 9, 20), cal.add_working_days(dt.date(2026, 9, 20), n)
            )
            == n
        )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one working day"):
        WorkingCalendar().add_working_days(WED, 0)
    with pytest.raises(ValueError, match="aware"):
        SimulatedClock(dt.datetime(2026, 1, 1))
    clock = SimulatedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(days=-1)


def test_simulated_clock_and_local_date() -> None:
    clock = SimulatedClock(dt.datetime(2026, 11, 25, 17, 0, tzinfo=dt.UTC))
    assert today(clock) == dt.date(2026, 11, 26)  # 01:00 the next day in UTC+8
    assert today(clock, dt.UTC) == WED
    clock.advance(days=2, hours=1)
    assert clock.now() == dt.datetime(2026, 11, 27, 18, 0, tzinfo=dt.UTC)
    assert clock.now().astimezone(CST).date() == dt.date(2026, 11, 28)
