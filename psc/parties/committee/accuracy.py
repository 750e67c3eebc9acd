"""Reporting only: the noise a revealed score carries and the misgrade rate it predicts.

Floating point throughout: these numbers are for reports and for the driver's sanity
check of the measured misgrade rate, never for accounting.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np

from psc.oracle import grades_of
from psc.parties.committee.params import CommitteeParameters


def total_noise_pmf(
    params: CommitteeParameters, *, cap: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Support and pmf of the noise one revealed value carries when all ``n`` members
    follow the protocol: ``NB(n/h', q) - NB(n/h', q)`` with ``q = e^(-1/t)`` and ``h'`` the
    calibrated honest count (the members' shares add up exactly; the tail cut at ``B``
    per share moves less than ``n 2^-63`` of mass and is ignored).  ``cap=True``: the
    cap counters' mechanism instead of the score's.  Support ``|x| <= 45 t``."""
    mech = params.cap_mechanism if cap else params.mechanism
    t = float(mech.scale)
    r = params.n / params.calibrated_honest
    q = math.exp(-1.0 / t)
    top = math.ceil(45 * t)
    x = np.arange(top + 1, dtype=np.float64)
    log_nb = (
        np.array([math.lgamma(v + r) for v in x])
        - np.array([math.lgamma(v + 1) for v in x])
        - math.lgamma(r)
        + r * math.log1p(-q)
        + x * math.log(q)
    )
    nb = np.exp(log_nb)
    diff = np.convolve(nb, nb[::-1])  # P - Q: index i <-> value i - top
    return np.arange(-top, top + 1, dtype=np.int64), diff / diff.sum()


def expected_misgrade_rate(
    params: CommitteeParameters,
    raw: np.ndarray,
    counts: Mapping[str, np.ndarray],
    oracle: np.ndarray,
) -> float:
    """The misgrade rate the noise predicts for subjects with raw scores ``raw`` (base
    included), live cap counts ``counts[label]`` and oracle grades ``oracle``: the mean over
    subjects of ``P(min(band(raw + N), cap(counts + N')) != oracle)``, a cap applying when
    its noisy count is at least 1 (counters are noised independently)."""
    xs, pmf = total_noise_pmf(params)
    keep = pmf > 1e-18
    xs, pmf = xs[keep], pmf[keep]
    cx, cpmf = total_noise_pmf(params, cap=True)
    cat = params.catalog
    labels = sorted(counts, key=cat.grade_index)
    top = len(cat.labels) - 1

    def p_capped(count: int) -> float:  # P(count + N' >= 1)
        return float(cpmf[count + cx >= 1].sum())

    rows = np.stack([raw, oracle, *(counts[label] for label in labels)])
    pairs, mult = np.unique(rows, axis=1, return_counts=True)
    total = 0.0
    for col, cnt in zip(pairs.T.tolist(), mult.tolist(), strict=True):
        r_, o_, cs = col[0], col[1], col[2:]
        probs = [p_capped(c) for c in cs]
        for applied in itertools.product((False, True), repeat=len(labels)):
            w = math.prod(p if a else 1 - p for p, a in zip(probs, applied, strict=True))
            if w == 0.0:
                continue
            cap = min(
                [cat.grade_index(lab) for lab, a in zip(labels, applied, strict=True) if a],
                default=top,
            )
            g = grades_of(cat, r_ + xs, np.full(xs.shape, cap, dtype=np.int64))
            total += cnt * w * float(pmf[g != o_].sum())
    return total / len(raw)
