"""Committee noise shares: the honest shares' sum is exactly the target Skellam.

Statistical tests as in tests/test_dp_sampling.py (chi-square and Kolmogorov-Smirnov at
p = 1e-6 against the exact pmf, fixed seeds), each paired with a power check that the
same tests reject a sum whose scale is off by 30%.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest
from scipy import stats

from psc.dp import distributed
from psc.dp.accounting import PureDP
from psc.dp.mechanisms import DiscreteGaussian, DiscreteLaplace, Skellam, skellam_renyi
from psc.dp.random import SeededRandomSource

getcontext().prec = 60
ALPHA = 1e-6
N = 20_000


def skellam_pmf(variance: Fraction) -> dict[int, Decimal]:
    """Exact Sk(variance) = Poisson(variance/2) - Poisson(variance/2), by convolution."""
    lam = Decimal(variance.numerator) / Decimal(2 * variance.denominator)
    top = int(lam + 20 * lam.sqrt() + 40)
    p, pk = [], (-lam).exp()
    for k in range(top + 1):
        p.append(pk)
        pk = pk * lam / (k + 1)
    out: dict[int, Decimal] = {}
    for i, pi in enumerate(p):
        for j, pj in enumerate(p):
            out[i - j] = out.get(i - j, Decimal(0)) + pi * pj
    return out


def discrete_laplace_pmf(scale: Fraction) -> dict[int, Decimal]:
    """Exact L_Z(scale): (1 - q)/(1 + q) q^|x| with q = e^{-1/scale}."""
    q = (-Decimal(scale.denominator) / Decimal(scale.numerator)).exp()
    c = (1 - q) / (1 + q)
    out: dict[int, Decimal] = {}
    x = 0
    while x < 5 or c * q**x > Decimal("1e-40"):
        out[x] = out[-x] = c * q**x
        x += 1
    return out


def chi_square_p(samples: Sequence[int], pmf: dict[int, Decimal]) -> float:
    n = len(samples)
    keys = sorted(pmf)
    total = sum(pmf.values())
    uppers: list[int] = []
    expected: list[float] = []
    acc = 0.0
    for k in keys:
        acc += float(pmf[k] / total)
        if acc * n >= 5:
            uppers.append(k)
            expected.append(acc)
            acc = 0.0
    if acc and expected:
        expected[-1] += acc
    uppers[-1] = keys[-1]
    observed = [0] * len(uppers)
    for x in samples:
        observed[min(bisect.bisect_left(uppers, x), len(uppers) - 1)] += 1
    scale = n / sum(expected)
    return float(stats.chisquare(observed, [e * scale for e in expected]).pvalue)


def ks_p(samples: Sequence[int], pmf: dict[int, Decimal]) -> float:
    n = len(samples)
    keys = sorted(pmf)
    total = sum(pmf.values())
    ordered = sorted(samples)
    d = bisect.bisect_left(ordered, keys[0]) / n
    cdf = 0.0
    for k in keys:
        cdf += float(pmf[k] / total)
        d = max(d, abs(bisect.bisect_right(ordered, k) / n - cdf))
    return float(stats.kstwo.sf(d, n))


def sums(params: distributed.ShareParameters, members: int, seed: str, n: int = N) -> list[int]:
    """n noised values, each the sum of ``members`` independent shares (one rng per member)."""
    rngs = [SeededRandomSource(f"{seed}/member{i}") for i in range(members)]
    per_member = [params.sample_shares(n, rng=r) for r in rngs]
    return [distributed.combine_shares(col) for col in zip(*per_member, strict=True)]


def assert_matches(samples: list[int], pmf: dict[int, Decimal]) -> None:
    assert chi_square_p(samples, pmf) > ALPHA
    assert ks_p(samples, pmf) > ALPHA


def assert_rejects(samples: list[int], pmf: dict[int, Decimal]) -> None:
    assert chi_square_p(samples, pmf) < ALPHA
    assert ks_p(samples, pmf) < ALPHA


# ----------------------------------------------------------------------------------
# Skellam shares

VARIANCE = Fraction(60)


def test_n_skellam_shares_sum_to_exactly_the_target() -> None:
    params = distributed.share_parameters(Skellam(VARIANCE), 5)
    assert params.share_variance == 12
    assert params.total_variance == VARIANCE
    assert_matches(sums(params, 5, "sk/all-honest"), skellam_pmf(VARIANCE))


def test_skellam_share_sum_test_rejects_a_target_off_by_30_percent() -> None:
    # shares calibrated for a standard deviation 30% too large (variance * 1.69)
    params = distributed.share_parameters(Skellam(VARIANCE * Fraction(169, 100)), 5)
    assert_rejects(sums(params, 5, "sk/off"), skellam_pmf(VARIANCE))


def test_share_sum_test_rejects_shares_not_scaled_for_the_committee() -> None:
    # the classic bug: every member draws the whole target, so the sum is n times too wide
    params = distributed.share_parameters(Skellam(VARIANCE), 1)
    assert_rejects(sums(params, 2, "sk/unscaled"), skellam_pmf(VARIANCE))


def test_any_h_honest_skellam_shares_alone_reach_the_target() -> None:
    params = distributed.share_parameters(Skellam(VARIANCE), 5, honest=3)
    assert params.share_variance == 20
    assert params.total_variance == 100  # n V / h
    assert_matches(sums(params, 3, "sk/three-honest"), skellam_pmf(VARIANCE))
    # all five shares: exactly Sk(nV/h), more noise than the target (the accuracy price)
    everyone = sums(params, 5, "sk/all-five")
    assert_matches(everyone, skellam_pmf(Fraction(100)))
    assert chi_square_p(everyone, skellam_pmf(VARIANCE)) < ALPHA


def test_skellam_guarantee_and_its_degradation_with_fewer_honest_members() -> None:
    params = distributed.share_parameters(Skellam(VARIANCE), 5, honest=3)
    assert params.guaranteed == Skellam(VARIANCE)
    assert params.guaranteed_loss(3, 50) == skellam_renyi(VARIANCE, 50)
    weaker = params.guaranteed_loss(2, 50)
    assert weaker == skellam_renyi(40, 50)
    assert not weaker.within(params.guaranteed.map(50))
    assert params.guaranteed_loss(5, 50).within(params.guaranteed.map(50))


# ----------------------------------------------------------------------------------
# Discrete Laplace as a sum of differences of Pólya (negative binomial) shares

SCALE = Fraction(4)


def test_n_polya_shares_sum_to_exactly_the_discrete_laplace() -> None:
    params = distributed.share_parameters(DiscreteLaplace(SCALE), 3)
    assert params.fraction == Fraction(1, 3)
    assert_matches(sums(params, 3, "lap/all-honest"), discrete_laplace_pmf(SCALE))


def test_polya_share_sum_test_rejects_a_scale_off_by_30_percent() -> None:
    params = distributed.share_parameters(DiscreteLaplace(SCALE * Fraction(13, 10)), 3)
    assert_rejects(sums(params, 3, "lap/off"), discrete_laplace_pmf(SCALE))


def test_any_h_honest_polya_shares_alone_reach_the_discrete_laplace() -> None:
    params = distributed.share_parameters(DiscreteLaplace(SCALE), 4, honest=2)
    assert_matches(sums(params, 2, "lap/two-honest"), discrete_laplace_pmf(SCALE))
    # one honest share alone is NB(1/2) - NB(1/2): visibly not the target
    assert_rejects(sums(params, 1, "lap/one-honest"), discrete_laplace_pmf(SCALE))


def test_discrete_laplace_guarantee_with_fewer_honest_members() -> None:
    params = distributed.share_parameters(DiscreteLaplace(50), 5, honest=3)
    assert params.guaranteed_loss(3, 50) == PureDP(1)
    assert params.guaranteed_loss(5, 50) == PureDP(1)  # more honest noise: post-processing
    weaker = params.guaranteed_loss(1, 50)
    assert isinstance(weaker, PureDP)
    assert float(weaker.epsilon) == pytest.approx(1 + 50 * math.log(3), rel=1e-9)
    assert weaker.epsilon >= 1 + Fraction(50 * math.log(3))
    with pytest.raises(ValueError, match="share_variance is defined for Skellam targets only"):
        _ = params.share_variance


# ----------------------------------------------------------------------------------
# Parameters and errors


def test_default_honest_is_everyone_and_shares_are_integers() -> None:
    params = distributed.share_parameters(Skellam(Fraction(7, 2)), 3)
    assert params.honest == 3
    assert params.share_variance == Fraction(7, 6)
    assert isinstance(params.sample_share(rng=SeededRandomSource(1)), int)
    assert params.sample_shares(0) == []


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((DiscreteGaussian(4), 3), {}, "target must be a Skellam or DiscreteLaplace"),
        ((60, 3), {}, "target must be a Skellam or DiscreteLaplace"),
        ((Skellam(10), 0), {}, "committee size"),
        ((Skellam(10), 3), {"honest": 4}, r"honest must be an int in \[1, n=3\]"),
        ((Skellam(10), 3), {"honest": 0}, "honest must be"),
    ],
)
def test_bad_share_parameters_are_refused(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        distributed.share_parameters(*args, **kwargs)  # type: ignore[arg-type]


def test_bad_counts_members_and_shares_are_refused() -> None:
    params = distributed.share_parameters(Skellam(10), 2)
    with pytest.raises(ValueError, match="count must be"):
        params.sample_shares(-1)
    with pytest.raises(ValueError, match=r"honest_members must be in \[1, 2\]"):
        params.guaranteed_loss(3, 1)
    with pytest.raises(ValueError, match="shares must be ints"):
        distributed.combine_shares([1, 2.0])  # type: ignore[list-item]
