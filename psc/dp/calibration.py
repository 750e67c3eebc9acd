"""Calibration and accuracy: the catalog's sensitivity, noise scales for a target loss, tails.

Calibration functions return exact ``Fraction``\\s (or integers) and round towards more
noise.  :func:`noise_tail` and :func:`misgrade_probability` are floating point, for
reports and plots, never on a privacy path.  Derivations: ``papers/dp-derivations.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from psc.dp.sampling import Rational, as_rational

if TYPE_CHECKING:
    from psc.catalog import Catalog
from psc.dp.accounting import ZCDP, _check_delta, _d_in, renyi_to_approxdp, zcdp_to_approxdp
from psc.dp.mechanisms import DiscreteGaussian, DiscreteLaplace, Mechanism, Skellam, skellam_renyi

__all__ = [
    "misgrade_probability",
    "noise_tail",
    "rho_for_approxdp",
    "scale_for_epsilon",
    "sensitivity",
    "sigma2_for_rho",
    "skellam_variance_for_approxdp",
]


# ---------------------------------------------------------------------------------
# Sensitivity and calibration


def sensitivity(catalog: Catalog) -> int:
    """The sensitivity of a subject's score: ``catalog.max_abs_delta``.

    Neighbouring inputs differ in one event (event-level privacy), and one event
    changes exactly one subject's score by its rule's delta, so by at most the largest
    |delta| in the catalog.  (Protecting a subject's whole record instead would need
    the sum of |delta| * max_per_period over all rules and periods in retention.)
    """
    delta = catalog.max_abs_delta
    if delta <= 0:
        raise ValueError("catalog has no rule with a nonzero delta: sensitivity is 0")
    return delta


def scale_for_epsilon(epsilon: Rational, sensitivity: int) -> Fraction:
    """Discrete Laplace scale for epsilon-DP: Delta / epsilon (exact)."""
    e = as_rational("epsilon", epsilon)
    if e <= 0:
        raise ValueError(f"epsilon must be > 0, got {e}")
    return Fraction(_d_in(sensitivity)) / e


def sigma2_for_rho(rho: Rational, sensitivity: int) -> Fraction:
    """Discrete Gaussian sigma^2 for rho-zCDP: Delta^2 / (2 rho) (exact).

    sigma^2 (not sigma) because the sampler takes the exact rational sigma^2; sigma
    itself is usually irrational.
    """
    r = as_rational("rho", rho)
    if r <= 0:
        raise ValueError(f"rho must be > 0, got {r}")
    d = _d_in(sensitivity)
    return Fraction(d * d) / (2 * r)


def rho_for_approxdp(epsilon: Rational, delta: Rational) -> Fraction:
    """The largest rho (to 2^-40 relative, rounded down) with rho-zCDP => (epsilon, delta)-DP.

    Bisection on :func:`zcdp_to_approxdp`, whose epsilon is increasing in rho.
    """
    e = as_rational("epsilon", epsilon)
    if e <= 0:
        raise ValueError(f"epsilon must be > 0, got {e}")
    d = _check_delta(delta)
    lo, hi = Fraction(0), e  # rho <= epsilon always (epsilon >= rho in every conversion)
    while hi - lo > hi * Fraction(1, 2**40):
        mid = Fraction(float((lo + hi) / 2))
        if zcdp_to_approxdp(ZCDP(mid), d).epsilon <= e:
            lo = mid
        else:
            hi = mid
    return lo


def skellam_variance_for_approxdp(epsilon: Rational, delta: Rational, sensitivity: int) -> int:
    """The smallest integer variance V such that Skellam(V) at ``sensitivity`` is (epsilon, delta)-DP.

    Uses the AKL21 RDP curve and the CKS20 conversion (:func:`renyi_to_approxdp`), which
    is monotone in V; binary search over integers.
    """
    e = as_rational("epsilon", epsilon)
    if e <= 0:
        raise ValueError(f"epsilon must be > 0, got {e}")
    d = _check_delta(delta)
    s = _d_in(sensitivity)
    if s == 0:
        raise ValueError("sensitivity 0 needs no noise")

    def ok(v: int) -> bool:
        return renyi_to_approxdp(skellam_renyi(v, s), d).epsilon <= e

    hi = 1
    while not ok(hi):
        hi *= 2
    lo = hi // 2  # not ok (or 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# ---------------------------------------------------------------------------------
# Accuracy: the misgrade probability of a noisy grade (reporting only, floating point)


def noise_tail(mechanism: Mechanism, k: int) -> float:
    """P(N >= k) for the mechanism's noise N, in floating point (for reports and plots).

    Discrete Laplace, scale t, q = e^{-1/t}: P(N >= k) = q^k / (1 + q) for k >= 1 (exact
    closed form).  Discrete Gaussian: the pmf summed over |x| <= 40 sigma + 10 (the rest
    is below e^{-800}).  Skellam Sk(V): sum_j P(X2 = j) P(X1 >= j + k) with X1, X2 ~
    Poisson(V/2) on a +-40 sd window.  For k <= 0, 1 - P(N >= 1 - k) by symmetry.
    """
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"k must be an int, got {k!r}")
    if k <= 0:
        return 1.0 - noise_tail(mechanism, 1 - k)
    if isinstance(mechanism, DiscreteLaplace):
        q = math.exp(-1.0 / float(mechanism.scale))
        return q**k / (1.0 + q)
    if isinstance(mechanism, DiscreteGaussian):
        s2 = float(mechanism.sigma2)
        bound = math.ceil(40.0 * math.sqrt(s2) + 10.0)
        weights = [math.exp(-(x * x) / (2.0 * s2)) for x in range(bound + 1)]
        norm = weights[0] + 2.0 * sum(weights[1:])
        return sum(weights[k:]) / norm if k <= bound else 0.0
    if isinstance(mechanism, Skellam):
        lam = float(mechanism.variance) / 2.0
        width = 40.0 * math.sqrt(lam) + 40.0
        lo, hi = max(0, math.floor(lam - width)), math.ceil(lam + width)
        log_lam = math.log(lam)
        pmf = [math.exp(j * log_lam - lam - math.lgamma(j + 1)) for j in range(lo, hi + 1)]
        survival = [0.0] * (len(pmf) + 1)
        for i in range(len(pmf) - 1, -1, -1):
            survival[i] = survival[i + 1] + pmf[i]
        total = 0.0
        for i, p in enumerate(pmf):  # X2 = lo + i, need X1 >= lo + i + k
            idx = i + k
            if idx >= len(pmf):
                break
            total += p * survival[idx]
        return total
    raise ValueError(f"no tail formula for {type(mechanism).__name__}")


def misgrade_probability(mechanism: Mechanism, score: int, thresholds: Sequence[Rational]) -> float:
    """P(the noisy score score + N falls in another grade band than ``score``).

    ``thresholds`` are the half-integer band boundaries (``Catalog.thresholds``).  With
    the nearest boundaries above and below at distances d_hi and d_lo (half-integers), the
    band changes iff N >= d_hi + 1/2 or N <= -(d_lo + 1/2), so (N symmetric)
    P = P(N >= d_hi + 1/2) + P(N >= d_lo + 1/2); a missing side contributes 0.  Grade caps
    are a separate counter and not included.  Derivation: papers/dp-derivations.md section 6.
    """
    if isinstance(score, bool) or not isinstance(score, int):
        raise ValueError(f"score must be an int, got {score!r}")
    ths = [as_rational("threshold", t) for t in thresholds]
    for t in ths:
        if t.denominator != 2:
            raise ValueError(f"thresholds must be half-integers, got {t}")
    above = [t for t in ths if t > score]
    below = [t for t in ths if t < score]
    p = 0.0
    if above:
        p += noise_tail(mechanism, int(min(above) - score + Fraction(1, 2)))
    if below:
        p += noise_tail(mechanism, int(score - max(below) + Fraction(1, 2)))
    return min(p, 1.0)
