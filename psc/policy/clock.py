"""Time for the policy engine: an injectable clock and a working-day calendar.

Nothing in :mod:`psc.policy` reads the system time directly; it asks a :class:`Clock`.
Production code passes :class:`SystemClock`; tests pass :class:`SimulatedClock` and move
it forward, which is how the rights workflows' deadlines are tested.

Deadlines are counted in *working days* in the deployment's local time zone (UTC+8 by
default): Monday to Friday, minus configured public holidays, plus configured make-up
working days (China moves weekend days to bridge holidays, so a Saturday can be a working
day).  The day a request is received is not counted; the deadline is the end of the n-th
working day after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

#: China Standard Time; the default zone in which deadlines are counted
CST = dt.timezone(dt.timedelta(hours=8), "CST")


class Clock(Protocol):
    """Anything that tells the current time as an aware datetime."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real clock (UTC)."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware, in UTC."""
        return dt.datetime.now(dt.UTC)


@dataclass
class SimulatedClock:
    """A clock that only moves when told to: ``advance(days=3)``.  For tests and demos."""

    current: dt.datetime

    def __post_init__(self) -> None:
        if self.current.tzinfo is None:
            raise ValueError(
                "SimulatedClock needs an aware datetime, e.g. datetime(..., tzinfo=UTC)"
            )

    def now(self) -> dt.datetime:
        return self.current

    def advance(self, *, days: float = 0, hours: float = 0, seconds: float = 0) -> dt.datetime:
        """Move forward (never back) and return the new time."""
        step = dt.timedelta(days=days, hours=hours, seconds=seconds)
        if step < dt.timedelta(0):
            raise ValueError("a simulated clock cannot go backwards")
        self.current += step
        return self.current


def today(clock: Clock, tz: dt.tzinfo = CST) -> dt.date:
    """The clock's current date in ``tz``."""
    return clock.now().astimezone(tz).date()


@dataclass(frozen=True)
class WorkingCalendar:
    """Which dates are working days: weekdays, minus holidays, plus make-up working days."""

    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    extra_workdays: frozenset[dt.date] = field(default_factory=frozenset)
    tz: dt.tzinfo = CST

    @classmethod
    def of(
        cls, holidays: Iterable[dt.date] = (), extra_workdays: Iterable[dt.date] = ()
    ) -> WorkingCalendar:
        """Build from any iterables of dates."""
        return cls(frozenset(holidays), frozenset(extra_workdays))

    def is_working_day(self, day: dt.date) -> bool:
        """Monday-Friday and not a holiday, or a declared make-up working day."""
        if day in self.extra_workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: dt.date, n: int) -> dt.date:
        """The n-th working day after ``start`` (``start`` itself is not counted); n >= 1."""
        if n < 1:
            raise ValueError(f"a deadline needs at least one working day, got {n}")
        day = start
        left = n
        while left:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in ``(start, end]`` (0 if ``end <= start``)."""
        n = 0
        day = start
        while day < end:
            day += dt.timedelta(days=1)
            n += self.is_working_day(day)
        return n
