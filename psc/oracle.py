"""The reference scorer (the oracle): plaintext, numpy-vectorised, and the definition of right.

Every encrypted path in psc must produce exactly these scores and grades.

Semantics, evaluated *at the close of period* ``P``:

* an event of period ``p`` under retention class ``c`` is **live** iff
  ``p <= P < p + months(c)``; expired events simply stop counting (credit repair);
* ``raw = base + sum of live deltas`` and ``score = clamp(raw, min_score, max_score)``;
* ``grade = #{thresholds t : score > t}`` (0 is the lowest band; thresholds are
  half-integers so no score sits on one), then ``grade = min(grade, cap)`` over the caps
  of live capping events.

Clamping never changes a grade because every threshold lies strictly inside the bounds,
so ``grade(raw) == grade(score)``: encrypted paths may grade the raw sum.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from psc.catalog import Catalog, period_index
from psc.events import EventTable, IntArray


@dataclass(frozen=True)
class Scores:
    """Per-subject results of :func:`score`."""

    raw: IntArray  # base + live deltas, unclamped
    score: IntArray  # clamped to the scheme's bounds
    grade: npt.NDArray[np.int8]  # grade index after caps (0 = lowest band)
    capped: npt.NDArray[np.bool_]  # whether a cap lowered the band grade

    def labels(self, catalog: Catalog) -> list[str]:
        lab = catalog.labels
        return [lab[int(g)] for g in self.grade]

    def histogram(self, catalog: Catalog) -> dict[str, int]:
        """Count of subjects per grade label, lowest band first."""
        counts = np.bincount(self.grade.astype(np.int64), minlength=len(catalog.labels))
        return {lab: int(c) for lab, c in zip(catalog.labels, counts, strict=True)}


def as_period(at: dt.date | int) -> int:
    """A period index from a date (the period it falls in) or an index."""
    return period_index(at) if isinstance(at, dt.date) else int(at)


def live_mask(table: EventTable, at: dt.date | int) -> npt.NDArray[np.bool_]:
    """Which events count at the close of period ``at``."""
    cat = table.catalog
    months = np.array([cat.retention[r.retention].months for r in cat.rules], dtype=np.int64)
    p = as_period(at)
    return (table.period <= p) & (p < table.period + months[table.rule])


def raw_sums(table: EventTable, at: dt.date | int) -> IntArray:
    """Sum of live deltas per subject (no base, no clamp): what encrypted paths aggregate."""
    cat = table.catalog
    deltas = np.array([r.delta for r in cat.rules], dtype=np.int64)
    m = live_mask(table, at)
    return np.bincount(
        table.subject[m], weights=deltas[table.rule[m]], minlength=table.n_subjects
    ).astype(np.int64)


def grades_of(
    catalog: Catalog, raw: IntArray, cap: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.int8]:
    """Grade indices of raw scores, with optional per-subject cap indices.

    ``cap[i]`` is the highest grade subject ``i`` may get (``len(labels) - 1`` for none).
    """
    thr = np.array([float(t) for t in catalog.thresholds])
    g = np.searchsorted(thr, raw.astype(np.float64), side="left").astype(np.int64)
    if cap is not None:
        g = np.minimum(g, cap)
    return g.astype(np.int8)


def cap_indices(table: EventTable, at: dt.date | int) -> npt.NDArray[np.int64]:
    """Per-subject grade cap from live capping events (top grade index when none)."""
    cat = table.catalog
    top = len(cat.labels) - 1
    cap_of = np.array(
        [cat.grade_index(r.grade_cap) if r.grade_cap else top for r in cat.rules], dtype=np.int64
    )
    caps = np.full(table.n_subjects, top, dtype=np.int64)
    m = live_mask(table, at)
    np.minimum.at(caps, table.subject[m], cap_of[table.rule[m]])
    return caps


def cap_counts(table: EventTable, at: dt.date | int) -> dict[str, IntArray]:
    """Per cap label, each subject's number of live events whose rule carries that cap
    (what the encrypted cap counters hold)."""
    cat = table.catalog
    m = live_mask(table, at)
    out: dict[str, IntArray] = {}
    for label in cat.cap_labels():
        rules = np.array([r.grade_cap == label for r in cat.rules], dtype=bool)
        hit = m & rules[table.rule]
        out[label] = np.bincount(table.subject[hit], minlength=table.n_subjects).astype(np.int64)
    return out


def caps_from_counts(catalog: Catalog, counts: Mapping[str, IntArray], n: int) -> IntArray:
    """Cap index of each of ``n`` subjects from (possibly noisy) counts: the lowest cap
    label whose count is at least 1; the top grade index when none."""
    top = len(catalog.labels) - 1
    caps = np.full(n, top, dtype=np.int64)
    for label, c in counts.items():
        caps = np.where(np.asarray(c) >= 1, np.minimum(caps, catalog.grade_index(label)), caps)
    return caps


def score(table: EventTable, at: dt.date | int) -> Scores:
    """Scores and grades of every subject slot at the close of period ``at``."""
    cat = table.catalog
    s = cat.scheme
    raw = s.base_score + raw_sums(table, at)
    clamped = np.clip(raw, s.min_score, s.max_score)
    band = grades_of(cat, clamped)
    caps = cap_indices(table, at)
    grade = np.minimum(band, caps).astype(np.int8)
    return Scores(raw=raw, score=clamped, grade=grade, capped=grade < band)


def raw_score_bounds(catalog: Catalog) -> tuple[int, int]:
    """Worst-case ``(min, max)`` of the *raw* (unclamped) score, over every event history.

    ``base + sum over rules of months(class) * max_per_period * min(delta, 0)`` (and the
    same with ``max``): every rule fires as often as it may in every live period.  This is
    the input domain an encrypted comparison must be correct on.
    """
    lo = hi = catalog.scheme.base_score
    for r in catalog.rules:
        n = catalog.retention[r.retention].months * r.max_per_period
        lo += n * min(r.delta, 0)
        hi += n * max(r.delta, 0)
    return lo, hi
