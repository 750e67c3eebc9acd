"""Reporting only: the noise a revealed score carries and the misgrade rate it predicts."""

from __future__ import annotations

import math

import numpy as np

from psc.oracle import grades_of
from psc.protocol.committee.params import CommitteeParameters

# ----------------------------------------------------------------------------------------
# the Revealer seam


def total_noise_pmf(params: CommitteeParameters) -> tuple[np.ndarray, np.ndarray]:
    """Reporting only (floating point): support and pmf of the noise one revealed score
    carries when all ``n`` members follow the protocol, ``NB(n/h, q) - NB(n/h, q)`` with
    ``q = e^(-1/t)`` (the members' shares add up exactly; the tail cut at ``B`` per share
    moves less than ``n 2^-63`` of mass and is ignored).  Support ``|x| <= 45 t``."""
    t = float(params.mechanism.scale)
    r = params.n / params.policy.honest
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
    params: CommitteeParameters, raw: np.ndarray, cap: np.ndarray, oracle: np.ndarray
) -> float:
    """Reporting only: the misgrade rate the noise predicts for subjects with raw scores
    ``raw`` (base included), cap indices ``cap`` and oracle grades ``oracle``: the mean over
    subjects of ``P(min(band(raw + N), cap) != oracle)``."""
    xs, pmf = total_noise_pmf(params)
    keep = pmf > 1e-18
    xs, pmf = xs[keep], pmf[keep]
    pairs, counts = np.unique(np.stack([raw, cap, oracle]), axis=1, return_counts=True)
    total = 0.0
    for (r_, c_, o_), cnt in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        g = grades_of(params.catalog, r_ + xs, np.full(xs.shape, c_, dtype=np.int64))
        total += cnt * float(pmf[g != o_].sum())
    return total / len(raw)
