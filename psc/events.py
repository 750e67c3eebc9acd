"""Events (an agency's evidence-backed records) and their dense per-period delta vectors.

An :class:`Event` says: subject slot ``subject`` triggered rule ``rule`` on ``date``, as
recorded in the official document whose SHA-256 is ``evidence``.  Subjects are addressed
by pseudonymous slot indices ``0 .. n_subjects - 1``; the mapping from identity to slot is
held by the registry (see ``protocols/setup.md``), never by the aggregator.

:class:`EventTable` is the columnar form the oracle and agencies work on.  Its
:meth:`EventTable.delta_vectors` builds the *dense* vectors an agency encrypts: one int64
entry per subject slot, zero where nothing happened, so a ciphertext does not reveal who
had an event.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from psc.catalog import Catalog, period_index
from psc.exceptions import EventError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, order=True)
class Event:
    """One record.  ``evidence`` is the lowercase hex SHA-256 of the official document."""

    subject: int
    rule: str
    date: dt.date
    evidence: str

    @property
    def period(self) -> int:
        return period_index(self.date)


@dataclass(frozen=True)
class EventTable:
    """Events in columns.  ``rule`` holds indices into ``catalog.rules``.

    Build with :meth:`from_events`, which validates against the catalog.
    """

    catalog: Catalog
    n_subjects: int
    subject: IntArray
    rule: IntArray
    period: IntArray

    def __len__(self) -> int:
        return int(self.subject.shape[0])

    @classmethod
    def from_events(cls, catalog: Catalog, events: Iterable[Event], n_subjects: int) -> EventTable:
        """Validate events against ``catalog`` and put them in columns.

        Raises :class:`EventError` for an unknown rule, a subject outside ``0..n_subjects-1``,
        a malformed evidence hash (P3: an event without evidence cannot count), or more
        events of one rule for one subject in one period than the rule's ``max_per_period``.
        """
        index = {r.id: i for i, r in enumerate(catalog.rules)}
        subj: list[int] = []
        rule: list[int] = []
        per: list[int] = []
        for e in events:
            if e.rule not in index:
                raise EventError(
                    f"event {e!r}: rule {e.rule!r} is not in catalog {catalog.scheme.name!r}"
                )
            if not 0 <= e.subject < n_subjects:
                raise EventError(f"event {e!r}: subject slot must be in 0..{n_subjects - 1}")
            if not _HEX64.match(e.evidence):
                raise EventError(
                    f"event {e!r}: evidence must be the lowercase hex SHA-256 of the official "
                    "document (PIPL Art. 8: no score change without evidence)"
                )
            subj.append(e.subject)
            rule.append(index[e.rule])
            per.append(e.period)
        return cls.from_arrays(catalog, n_subjects, subj, rule, per)

    @classmethod
    def from_arrays(
        cls,
        catalog: Catalog,
        n_subjects: int,
        subject: Sequence[int] | IntArray,
        rule: Sequence[int] | IntArray,
        period: Sequence[int] | IntArray,
    ) -> EventTable:
        """Columns straight from arrays (rule indices); checks ranges and per-period limits."""
        s = np.asarray(subject, dtype=np.int64)
        r = np.asarray(rule, dtype=np.int64)
        p = np.asarray(period, dtype=np.int64)
        if not s.shape == r.shape == p.shape or s.ndim != 1:
            raise EventError("subject, rule and period columns must be 1-d and of equal length")
        if s.size and (s.min() < 0 or s.max() >= n_subjects):
            raise EventError(f"subject slots must be in 0..{n_subjects - 1}")
        if r.size and (r.min() < 0 or r.max() >= len(catalog.rules)):
            raise EventError(f"rule indices must be in 0..{len(catalog.rules) - 1}")
        table = cls(catalog, n_subjects, s, r, p)
        table._check_limits()
        return table

    def _check_limits(self) -> None:
        if not len(self):
            return
        n_rules = len(self.catalog.rules)
        p0 = int(self.period.min())
        span = int(self.period.max()) - p0 + 1
        key = (self.subject * n_rules + self.rule) * span + (self.period - p0)
        uniq, counts = np.unique(key, return_counts=True)
        limits = np.array([r.max_per_period for r in self.catalog.rules], dtype=np.int64)
        rule_of = (uniq // span) % n_rules
        over = counts > limits[rule_of]
        if over.any():
            k = int(np.argmax(over))
            rid = self.catalog.rules[int(rule_of[k])].id
            subj = int(uniq[k] // span // n_rules)
            raise EventError(
                f"subject slot {subj} has {int(counts[k])} events of rule {rid!r} in one period; "
                f"the catalog allows at most {int(limits[rule_of[k]])} (max_per_period), which is "
                "what bounds the packed slots; split the record or raise max_per_period"
            )

    def select(self, mask: npt.NDArray[np.bool_]) -> EventTable:
        """The events where ``mask`` is true (no re-validation needed)."""
        return EventTable(
            self.catalog, self.n_subjects, self.subject[mask], self.rule[mask], self.period[mask]
        )

    def for_agency(self, agency: str) -> EventTable:
        ids = np.array([r.agency == agency for r in self.catalog.rules])
        return self.select(ids[self.rule]) if len(self) else self

    def for_period(self, period: int) -> EventTable:
        return self.select(self.period == period)

    @property
    def periods(self) -> tuple[int, ...]:
        return tuple(int(p) for p in np.unique(self.period))

    def delta_vectors(self, period: int) -> dict[str, IntArray]:
        """Dense delta vectors of ``period``, one per retention class (all classes present).

        ``v[c][i] = sum of deltas of subject i's events in period, of rules in class c``.
        """
        cat = self.catalog
        deltas = np.array([r.delta for r in cat.rules], dtype=np.int64)
        cls_of = np.array([cat.retention_classes.index(r.retention) for r in cat.rules])
        m = self.period == period
        out: dict[str, IntArray] = {}
        for ci, cname in enumerate(cat.retention_classes):
            sel = m & (cls_of[self.rule] == ci)
            out[cname] = np.bincount(
                self.subject[sel], weights=deltas[self.rule[sel]], minlength=self.n_subjects
            ).astype(np.int64)
        return out

    def cap_vectors(self, period: int) -> dict[tuple[str, str], IntArray]:
        """Dense cap counters of ``period``: ``(retention class, cap label) -> event counts``.

        A subject is capped at label L at evaluation time iff some live counter for L is > 0.
        Only (class, label) pairs some rule uses are present.
        """
        cat = self.catalog
        m = self.period == period
        out: dict[tuple[str, str], IntArray] = {}
        for ri, r in enumerate(cat.rules):
            if r.grade_cap is None:
                continue
            key = (r.retention, r.grade_cap)
            sel = m & (self.rule == ri)
            v = np.bincount(self.subject[sel], minlength=self.n_subjects).astype(np.int64)
            out[key] = out[key] + v if key in out else v
        return out
