"""The grading circuit's public parameters for one catalog (hazmat).

``x_j = (s - t_j) / H`` for each half-integer threshold ``t_j``; ``ind_j = (1 + P(x_j))/2``
with ``P`` the band composite; cap counters ``c_L`` give ``keep_L = (1 - Q(c_L/Hc -
1/(2Hc)))/2``; ``grade = S_0 + keep_1 (S_1 + keep_2 (...))`` over the segment sums ``S_k``
of the indicators between cap levels (``protocols/he-grading.md`` section 4).  Everything
here is public: the circuit is published with the grading authority's context, and the
authority evaluates exactly this circuit and nothing else (:mod:`psc.parties.grading_authority`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from psc.catalog import Catalog
from psc.exceptions import ParameterError
from psc.hazmat.backends.base import IntArray
from psc.hazmat.he.composites import PROFILES, FloatArray, GradingProfile
from psc.hazmat.he.flooding import FLOOD_SIGMA
from psc.hazmat.he.params import CkksParams
from psc.oracle import raw_score_bounds


@dataclass(frozen=True)
class GradingCircuit:
    """Public parameters of the grading circuit for one catalog.

    ``score_unit`` (``H``) is the largest ``|s - t_j|`` over the raw-score domain
    (:func:`psc.oracle.raw_score_bounds`); ``cap_unit`` (``Hc``) is ``max(C - 1/2, 1/2)`` for
    the largest cap counter ``C`` a subject can accumulate while capping events are live.
    """

    profile: GradingProfile
    base: int
    thresholds: tuple[Fraction, ...]
    labels: tuple[str, ...]
    cap_levels: tuple[tuple[str, int], ...]  # (label, grade index), ascending
    score_unit: float
    cap_unit: float
    raw_bounds: tuple[int, int]

    @classmethod
    def for_catalog(
        cls, catalog: Catalog, *, profile: GradingProfile | None = None
    ) -> GradingCircuit:
        """The circuit for ``catalog``: the smallest profile with the depth it needs.

        Raises :class:`ParameterError` if no profile's composite covers the catalog's
        ratio ``2H`` (domain half-width over the 1/2 gap) or cap counters.
        """
        lo, hi = raw_score_bounds(catalog)
        H = max(max(abs(lo - t), abs(hi - t)) for t in catalog.thresholds)
        caps = tuple((lab, catalog.grade_index(lab)) for lab in catalog.cap_labels())
        cmax = 0
        for lab, _ in caps:
            cmax = max(
                cmax,
                sum(
                    catalog.retention[r.retention].months * r.max_per_period
                    for r in catalog.rules
                    if r.grade_cap == lab
                ),
            )
        hc = max(cmax - 0.5, 0.5)
        ratio, cap_ratio = float(2 * H), 2 * hc
        candidates = (profile,) if profile is not None else PROFILES
        for p in candidates:
            if p.band.max_ratio >= ratio and p.cap.max_ratio >= cap_ratio:
                p.check_depth(len(caps))
                return cls(
                    p,
                    catalog.scheme.base_score,
                    catalog.thresholds,
                    catalog.labels,
                    caps,
                    float(H),
                    hc,
                    (lo, hi),
                )
        raise ParameterError(
            f"the raw-score domain [{lo}, {hi}] needs a sign test resolving 1 part in {ratio:g} "
            f"(and cap counters up to {cmax}); the deepest profile covers "
            f"{max(p.band.max_ratio for p in candidates)}: narrow the domain (fewer periods, "
            "smaller max_per_period) or add a deeper profile"
        )

    @property
    def params(self) -> CkksParams:
        return self.profile.params

    @property
    def slots(self) -> int:
        return self.params.slots

    def segments(self) -> list[list[int]]:
        """Threshold indices between consecutive cap levels: ``S_0, S_1, ...``."""
        cuts = [0, *[lvl for _, lvl in self.cap_levels], len(self.thresholds)]
        return [list(range(cuts[i], cuts[i + 1])) for i in range(len(cuts) - 1)]

    def simulate(self, raw: IntArray, caps: Mapping[str, IntArray] | None = None) -> FloatArray:
        """The circuit in float64 (no encryption, no noise): what decryption approximates."""
        s = np.asarray(raw, dtype=np.float64)
        ind = [
            (1 + self.profile.band((s - float(t)) / self.score_unit)) / 2 for t in self.thresholds
        ]
        segs = self.segments()
        acc = sum((ind[j] for j in segs[-1]), np.zeros_like(s))
        for k in range(len(self.cap_levels), 0, -1):
            lab = self.cap_levels[k - 1][0]
            c = np.zeros_like(s) if caps is None else np.asarray(caps[lab], dtype=np.float64)
            keep = (1 - self.profile.cap((c - 0.5) / self.cap_unit)) / 2
            acc = sum((ind[j] for j in segs[k - 1]), np.zeros_like(s)) + keep * acc
        return np.asarray(acc, dtype=np.float64)

    def as_json(self) -> dict[str, Any]:
        p = self.profile
        return {
            "profile": p.name,
            "params": p.params.as_json(),
            "levels": p.params.levels,
            "base": self.base,
            "thresholds": [str(t) for t in self.thresholds],
            "labels": list(self.labels),
            "cap_levels": [[lab, i] for lab, i in self.cap_levels],
            "score_unit": self.score_unit,
            "cap_unit": self.cap_unit,
            "raw_bounds": list(self.raw_bounds),
            "flood_sigma": float(FLOOD_SIGMA),
            "band": {
                "name": p.band.name,
                "max_ratio": p.band.max_ratio,
                "depth": p.band.depth,
                "max_error": p.band.max_error,
                "stages": [list(c) for c in p.band.stages],
            },
            "cap": {
                "name": p.cap.name,
                "max_ratio": p.cap.max_ratio,
                "depth": p.cap.depth,
                "max_error": p.cap.max_error,
                "stages": [list(c) for c in p.cap.stages],
            },
        }
