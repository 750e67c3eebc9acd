"""Data-subject requests as records: kinds, statuses, deadline and repair policies.

The workflows that open, decide and time them: :class:`~psc.policy.rights.RightsDesk`.
Deadlines (:class:`DeadlinePolicy`): 15 working days by default, 3 for repair (Shenzhen
Art. 82), corrections and appeals also within 20 calendar days (CRI Art. 25), whichever
comes first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psc.policy.clock import WorkingCalendar
from psc.policy.deployment import RightsConfig

KINDS = (
    "access",
    "explanation",
    "correction",
    "appeal",
    "deletion",
    "repair",
    "consent-withdrawal",
)
STATUSES = ("open", "granted", "refused")


@dataclass(frozen=True)
class DeadlinePolicy:
    """How long each kind of request may take.

    ``working_days`` applies unless ``per_kind`` overrides it; ``calendar_cap`` adds a
    calendar-day limit for some kinds, and the earlier of the two is the deadline.
    """

    working_days: int = 15
    per_kind: Mapping[str, int] = field(default_factory=lambda: {"repair": 3})
    calendar_cap: Mapping[str, int] = field(
        default_factory=lambda: {"correction": 20, "appeal": 20}
    )

    @classmethod
    def from_config(cls, cfg: RightsConfig) -> DeadlinePolicy:
        """The deadlines a deployment's ``[rights]`` table sets."""
        return cls(
            working_days=cfg.deadline_working_days,
            per_kind={"repair": cfg.repair_deadline_working_days},
            calendar_cap={
                "correction": cfg.correction_deadline_days,
                "appeal": cfg.correction_deadline_days,
            },
        )

    def due(self, kind: str, received: dt.date, calendar: WorkingCalendar) -> dt.date:
        """The last day to answer a request of ``kind`` received on ``received``."""
        day = calendar.add_working_days(received, self.per_kind.get(kind, self.working_days))
        cap = self.calendar_cap.get(kind)
        if cap is not None:
            day = min(day, received + dt.timedelta(days=cap))
        return day


@dataclass(frozen=True)
class RepairPolicy:
    """Credit-repair conditions: the minimum publication period by severity, in months.

    Shenzhen Art. 79-82 allow repair after a minimum publication period; the figures here
    (none for minor, 3 months moderate, 6 months serious) are configurable project
    defaults, not figures from the regulation.
    """

    min_publication_months: Mapping[str, int] = field(
        default_factory=lambda: {"positive": 0, "minor": 0, "moderate": 3, "serious": 6}
    )


@dataclass(frozen=True)
class RightsRequest:
    """One request as stored."""

    id: int
    kind: str
    subject: str
    ref: str | None
    rule: str | None
    details: Mapping[str, Any]
    opened_at: dt.datetime
    due: dt.date
    status: str
    outcome: str | None
    reason: str | None
    decided_at: dt.datetime | None
    decided_by: str | None
    late: bool | None


@dataclass(frozen=True)
class Correction:
    """A compensating delta an agency records to correct a disputed record."""

    request_id: int
    subject: str
    agency: str
    rule: str | None
    original_ref: str
    compensating_delta: int
    period: str


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _row(r: tuple[Any, ...]) -> RightsRequest:
    return RightsRequest(
        id=r[0],
        kind=r[1],
        subject=r[2],
        ref=r[3],
        rule=r[4],
        details=json.loads(r[5]),
        opened_at=dt.datetime.fromisoformat(r[6]),
        due=dt.date.fromisoformat(r[7]),
        status=r[8],
        outcome=r[9],
        reason=r[10],
        decided_at=dt.datetime.fromisoformat(r[11]) if r[11] else None,
        decided_by=r[12],
        late=None if r[13] is None else bool(r[13]),
    )
