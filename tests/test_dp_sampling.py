"""Exact samplers against their exact pmfs (OpenDP/Tumult style).

Every sampler is checked with a chi-square and a Kolmogorov-Smirnov test at
p = 1e-6 against its pmf computed independently here with 60-digit decimals, from a
fixed seed (so the tests are deterministic, not flaky).  Each is paired with a power
check: the same two tests, same sample size, must reject (p < 1e-6) draws from the
same sampler with its scale off by 30%.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest
from scipy import stats

from psc.dp import random as dprandom
from psc.dp import sampling
from psc.dp.random import RandomSource, SeededRandomSource, SystemRandomSource

getcontext().prec = 60
ALPHA = 1e-6
N = 20_000

# ----------------------------------------------------------------------------------
# Exact pmfs (independent of the code under test)


def _d(q: Fraction) -> Decimal:
    return Decimal(q.numerator) / Decimal(q.denominator)


def bernoulli_pmf(p: Decimal) -> dict[int, Decimal]:
    return {0: 1 - p, 1: p}


def geometric_pmf(ratio: Decimal) -> dict[int, Decimal]:
    """P(k) = (1 - ratio) ratio^k, up to a tail below 1e-40."""
    out, k, pk = {}, 0, 1 - ratio
    while pk > Decimal("1e-40") or k < 5:
        out[k] = pk
        k, pk = k + 1, pk * ratio
    return out


def discrete_laplace_pmf(scale: Fraction) -> dict[int, Decimal]:
    q = (-1 / _d(scale)).exp()
    c = (1 - q) / (1 + q)
    out, x = {}, 0
    while True:
        px = c * q**x
        out[x] = px
        if x:
            out[-x] = px
        if px < Decimal("1e-40") and x > 3:
            return out
        x += 1


def discrete_gaussian_pmf(sigma2: Fraction) -> dict[int, Decimal]:
    s2 = _d(sigma2)
    bound = int((s2 * 200).sqrt()) + 10  # e^{-100} tail
    w = {x: (-Decimal(x * x) / (2 * s2)).exp() for x in range(-bound, bound + 1)}
    z = sum(w.values())
    return {x: v / z for x, v in w.items()}


def poisson_pmf(mean: Fraction) -> dict[int, Decimal]:
    lam = _d(mean)
    top = int(lam + 20 * lam.sqrt() + 40)
    out, pk = {}, (-lam).exp()
    for k in range(top + 1):
        out[k] = pk
        pk = pk * lam / (k + 1)
    return out


def negative_binomial_pmf(r: Fraction, scale: Fraction) -> dict[int, Decimal]:
    """P(k) = Gamma(k + r)/(k! Gamma(r)) (1 - q)^r q^k with q = e^{-1/scale}."""
    rr = _d(r)
    q = (-1 / _d(scale)).exp()
    out, k, pk = {}, 0, ((1 - q).ln() * rr).exp()
    while pk > Decimal("1e-40") or k < 5:
        out[k] = pk
        pk = pk * q * (k + rr) / (k + 1)
        k += 1
    return out


def skellam_pmf(variance: Fraction) -> dict[int, Decimal]:
    p = poisson_pmf(variance / 2)
    out: dict[int, Decimal] = {}
    for i, pi in p.items():
        for j, pj in p.items():
            out[i - j] = out.get(i - j, Decimal(0)) + pi * pj
    return out


# ----------------------------------------------------------------------------------
# The two tests


def _probabilities(pmf: dict[int, Decimal]) -> tuple[list[int], list[float]]:
    keys = sorted(pmf)
    total = sum(pmf.values())
    probs = [float(pmf[k] / total) for k in keys]
    return keys, probs


def chi_square_p(samples: Sequence[int], pmf: dict[int, Decimal]) -> float:
    """Chi-square goodness of fit; bins merged so every expected count is >= 5."""
    n = len(samples)
    keys, probs = _probabilities(pmf)
    uppers: list[int] = []  # bin i holds keys <= uppers[i] (and > uppers[i-1])
    expected: list[float] = []
    acc = 0.0
    for k, p in zip(keys, probs, strict=True):
        acc += p
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
    """Kolmogorov-Smirnov against the exact cdf at every integer of the support.

    For a discrete law the kstwo p-value is conservative (too large), so a rejection is
    still a rejection; the power checks show it has teeth at this sample size.
    """
    n = len(samples)
    keys, probs = _probabilities(pmf)
    ordered = sorted(samples)
    d, cdf = 0.0, 0.0
    for k, p in zip(keys, probs, strict=True):
        cdf += p
        emp = bisect.bisect_right(ordered, k) / n
        d = max(d, abs(emp - cdf))
    below = bisect.bisect_left(ordered, keys[0]) / n
    d = max(d, below)
    return float(stats.kstwo.sf(d, n))


def draw(fn: Callable[..., int], param: object, seed: str, n: int = N) -> list[int]:
    rng = SeededRandomSource(seed)
    return [fn(param, rng=rng) for _ in range(n)]


# (name, sampler, nominal parameter, parameter with the scale off by 30%, exact pmf)
CASES: list[
    tuple[str, Callable[..., int], Fraction, Fraction, Callable[[Fraction], dict[int, Decimal]]]
] = [
    (
        "bernoulli",
        sampling.sample_bernoulli,
        Fraction(1, 3),
        Fraction(13, 30),
        lambda p: bernoulli_pmf(_d(p)),
    ),
    (
        "bernoulli_exp<1",
        sampling.sample_bernoulli_exp,
        Fraction(3, 7),
        Fraction(39, 70),
        lambda g: bernoulli_pmf((-_d(g)).exp()),
    ),
    (
        "bernoulli_exp>1",
        sampling.sample_bernoulli_exp,
        Fraction(5, 2),
        Fraction(13, 4),
        lambda g: bernoulli_pmf((-_d(g)).exp()),
    ),
    (
        "geometric",
        sampling.sample_geometric,
        Fraction(1, 4),
        Fraction(13, 40),
        lambda p: geometric_pmf(1 - _d(p)),
    ),
    (
        "geometric_exp",
        sampling.sample_geometric_exp,
        Fraction(5, 2),
        Fraction(13, 4),
        lambda s: geometric_pmf((-1 / _d(s)).exp()),
    ),
    (
        "dlaplace_1.5",
        sampling.sample_discrete_laplace,
        Fraction(3, 2),
        Fraction(39, 20),
        discrete_laplace_pmf,
    ),
    (
        "dlaplace_1/3",
        sampling.sample_discrete_laplace,
        Fraction(1, 3),
        Fraction(13, 30),
        discrete_laplace_pmf,
    ),
    (
        "dlaplace_20",
        sampling.sample_discrete_laplace,
        Fraction(20),
        Fraction(26),
        discrete_laplace_pmf,
    ),
    # discrete Gaussian: the scale is sigma, so "30% off" is sigma^2 * 1.69
    (
        "dgauss_4.5",
        sampling.sample_discrete_gaussian,
        Fraction(9, 2),
        Fraction(9, 2) * Fraction(169, 100),
        discrete_gaussian_pmf,
    ),
    (
        "dgauss_1/3",
        sampling.sample_discrete_gaussian,
        Fraction(1, 3),
        Fraction(1, 3) * Fraction(169, 100),
        discrete_gaussian_pmf,
    ),
    (
        "dgauss_400",
        sampling.sample_discrete_gaussian,
        Fraction(400),
        Fraction(676),
        discrete_gaussian_pmf,
    ),
    ("poisson_0.3", sampling.sample_poisson, Fraction(3, 10), Fraction(39, 100), poisson_pmf),
    ("poisson_1", sampling.sample_poisson, Fraction(1), Fraction(13, 10), poisson_pmf),
    ("poisson_77/3", sampling.sample_poisson, Fraction(77, 3), Fraction(1001, 30), poisson_pmf),
    ("poisson_400", sampling.sample_poisson, Fraction(400), Fraction(520), poisson_pmf),
    # negative binomial NB(r, e^{-1/scale}) at a fixed shape r; the scale is off by 30%
    (
        "negbin_1/3_scale_5",
        lambda scale, rng: sampling.sample_negative_binomial(Fraction(1, 3), scale, rng=rng),
        Fraction(5),
        Fraction(13, 2),
        lambda sc: negative_binomial_pmf(Fraction(1, 3), sc),
    ),
    (
        "negbin_7/3_scale_3/2",
        lambda scale, rng: sampling.sample_negative_binomial(Fraction(7, 3), scale, rng=rng),
        Fraction(3, 2),
        Fraction(39, 20),
        lambda sc: negative_binomial_pmf(Fraction(7, 3), sc),
    ),
    # Skellam: the scale is the standard deviation, so variance * 1.69
    (
        "skellam_7/2",
        sampling.sample_skellam,
        Fraction(7, 2),
        Fraction(7, 2) * Fraction(169, 100),
        skellam_pmf,
    ),
    (
        "skellam_60",
        sampling.sample_skellam,
        Fraction(60),
        Fraction(60) * Fraction(169, 100),
        skellam_pmf,
    ),
]


@pytest.mark.parametrize(
    ("name", "sampler", "param", "off", "pmf"), CASES, ids=[c[0] for c in CASES]
)
def test_sampler_matches_exact_pmf(
    name: str,
    sampler: Callable[..., int],
    param: Fraction,
    off: Fraction,
    pmf: Callable[[Fraction], dict[int, Decimal]],
) -> None:
    exact = pmf(param)
    samples = draw(sampler, param, f"{name}/nominal")
    assert chi_square_p(samples, exact) > ALPHA
    assert ks_p(samples, exact) > ALPHA


@pytest.mark.parametrize(
    ("name", "sampler", "param", "off", "pmf"), CASES, ids=[c[0] for c in CASES]
)
def test_same_tests_reject_scale_off_by_30_percent(
    name: str,
    sampler: Callable[..., int],
    param: Fraction,
    off: Fraction,
    pmf: Callable[[Fraction], dict[int, Decimal]],
) -> None:
    exact = pmf(param)
    samples = draw(sampler, off, f"{name}/off")
    assert chi_square_p(samples, exact) < ALPHA
    assert ks_p(samples, exact) < ALPHA


def test_large_poisson_mean_and_variance_exact_moments() -> None:
    # lambda = 4000 exercises both geometric tails of the envelope; 4000 draws keep it fast.
    lam = Fraction(4000)
    xs = draw(sampling.sample_poisson, lam, "poisson-4000", n=4000)
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    # z-scores against the exact moments; |z| < 5 is p ~ 6e-7 two-sided.
    assert abs(mean - 4000) / (4000 / n) ** 0.5 < 5
    # Var of the sample variance of a Poisson: (mu4 - sigma^4 (n-3)/(n-1)) / n, mu4 = 3 lam^2 + lam.
    var_of_var = (3 * 4000**2 + 4000 - 4000**2 * (n - 3) / (n - 1)) / n
    assert abs(var - 4000) / var_of_var**0.5 < 5


# ----------------------------------------------------------------------------------
# Degenerate and deterministic cases


def test_degenerate_parameters() -> None:
    rng = SeededRandomSource(7)
    assert {sampling.sample_bernoulli(0, rng=rng) for _ in range(200)} == {0}
    assert {sampling.sample_bernoulli(1, rng=rng) for _ in range(200)} == {1}
    assert {sampling.sample_bernoulli_exp(0, rng=rng) for _ in range(200)} == {1}
    assert {sampling.sample_geometric(1, rng=rng) for _ in range(200)} == {0}
    assert {sampling.sample_poisson(0, rng=rng) for _ in range(200)} == {0}
    assert {sampling.sample_skellam(0, rng=rng) for _ in range(200)} == {0}


def test_seeded_source_is_deterministic_and_seed_sensitive() -> None:
    ra, rb, rc = SeededRandomSource("s"), SeededRandomSource("s"), SeededRandomSource("t")
    xa = [sampling.sample_discrete_laplace(5, rng=ra) for _ in range(50)]
    xb = [sampling.sample_discrete_laplace(5, rng=rb) for _ in range(50)]
    xc = [sampling.sample_discrete_laplace(5, rng=rc) for _ in range(50)]
    assert xa == xb
    assert xa != xc
    # the seed's type is part of it: 1 and "1" are different seeds
    r1, r2 = SeededRandomSource(1), SeededRandomSource("1")
    assert [r1.uniform(10**9) for _ in range(3)] != [r2.uniform(10**9) for _ in range(3)]


def test_seeded_draws_are_pinned() -> None:
    # Regression vectors: a change in any sampler's algorithm or in the seeded source
    # changes these, and test vectors built on them would silently move.
    r = SeededRandomSource("psc-dp-vector")
    assert [sampling.sample_discrete_laplace(5, rng=r) for _ in range(12)] == [
        -22, 11, -1, 16, 4, -1, 1, 4, 8, -3, 11, -2,
    ]  # fmt: skip
    r = SeededRandomSource("psc-dp-vector")
    assert [sampling.sample_skellam(60, rng=r) for _ in range(12)] == [
        0, -3, 2, 13, -3, -12, 7, -8, 1, 4, 15, 9,
    ]  # fmt: skip


def test_sources_declare_whether_they_are_secure() -> None:
    assert SystemRandomSource().secure is True
    assert SeededRandomSource(1).secure is False
    assert dprandom.resolve(None) is dprandom.SYSTEM_RANDOM
    assert "Seeded" in repr(SeededRandomSource(1))


def test_system_source_draws_in_range() -> None:
    src = SystemRandomSource()
    draws = {src.uniform(3) for _ in range(300)}
    assert draws == {0, 1, 2}
    assert {src.bit() for _ in range(100)} == {0, 1}
    # the default path (no rng) works and stays integral
    assert isinstance(sampling.sample_discrete_laplace(Fraction(3, 2)), int)


class _Scripted(RandomSource):
    """Returns scripted values; checks the bound each time (white-box seam test)."""

    def __init__(self, values: list[int]) -> None:
        self.values = values
        self.bounds: list[int] = []

    def _below(self, n: int) -> int:
        self.bounds.append(n)
        return self.values.pop(0)


def test_bernoulli_uses_one_uniform_draw_over_the_denominator() -> None:
    src = _Scripted([1])
    assert sampling.sample_bernoulli(Fraction(2, 7), rng=src) == 1
    assert src.bounds == [7]
    src = _Scripted([2])
    assert sampling.sample_bernoulli(Fraction(2, 7), rng=src) == 0


def test_bernoulli_exp_follows_cks_algorithm_1() -> None:
    # gamma = 1/2: A_1 ~ Bern(1/2) via uniform(2), A_2 ~ Bern(1/4) via uniform(4), ...
    src = _Scripted([0, 3])  # A_1 = 1 (0 < 1), A_2 = 0 (3 >= 1): K = 2, even -> 0
    assert sampling.sample_bernoulli_exp(Fraction(1, 2), rng=src) == 0
    assert src.bounds == [2, 4]
    src = _Scripted([1])  # A_1 = 0: K = 1, odd -> 1
    assert sampling.sample_bernoulli_exp(Fraction(1, 2), rng=src) == 1


@pytest.mark.parametrize(
    ("fn", "bad", "message"),
    [
        (sampling.sample_bernoulli, 0.5, "floats are refused"),
        (sampling.sample_bernoulli, Fraction(3, 2), "p must be in"),
        (sampling.sample_bernoulli, True, "int or fractions.Fraction"),
        (sampling.sample_bernoulli_exp, -1, "gamma must be >= 0"),
        (sampling.sample_geometric, 0, "p must be in"),
        (sampling.sample_geometric_exp, 0, "scale must be > 0"),
        (sampling.sample_discrete_laplace, Fraction(-1, 2), "scale must be > 0"),
        (sampling.sample_discrete_gaussian, 0, "sigma2 must be > 0"),
        (sampling.sample_discrete_gaussian, 2.0, "floats are refused"),
        (sampling.sample_poisson, -1, "mean must be >= 0"),
        (sampling.sample_skellam, Fraction(-1), "variance must be >= 0"),
        (sampling.sample_skellam, "3", "int or fractions.Fraction"),
        (lambda r, rng: sampling.sample_negative_binomial(r, 2, rng=rng), 0, "r must be > 0"),
        (
            lambda sc, rng: sampling.sample_negative_binomial(1, sc, rng=rng),
            -2,
            "scale must be > 0",
        ),
    ],
)
def test_bad_parameters_are_refused(fn: Callable[..., int], bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fn(bad, rng=SeededRandomSource(0))


def test_bad_sources_and_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="RandomSource"):
        sampling.sample_bernoulli(Fraction(1, 2), rng=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n >= 1"):
        SeededRandomSource(0).uniform(0)
    with pytest.raises(ValueError, match="needs an int"):
        SeededRandomSource(0).uniform(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be"):
        SeededRandomSource(1.5)  # type: ignore[arg-type]


SLOW_CASES: list[
    tuple[str, Callable[..., int], Fraction, Callable[[Fraction], dict[int, Decimal]]]
] = [
    ("poisson_1250", sampling.sample_poisson, Fraction(1250), poisson_pmf),
    ("dgauss_4.5", sampling.sample_discrete_gaussian, Fraction(9, 2), discrete_gaussian_pmf),
    ("dlaplace_50", sampling.sample_discrete_laplace, Fraction(50), discrete_laplace_pmf),
    (
        "negbin_1/3_scale_50",
        lambda scale, rng: sampling.sample_negative_binomial(Fraction(1, 3), scale, rng=rng),
        Fraction(50),
        lambda sc: negative_binomial_pmf(Fraction(1, 3), sc),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "sampler", "param", "pmf"), SLOW_CASES, ids=[c[0] for c in SLOW_CASES]
)
def test_sampler_matches_exact_pmf_at_200k_draws(
    name: str,
    sampler: Callable[..., int],
    param: Fraction,
    pmf: Callable[[Fraction], dict[int, Decimal]],
) -> None:
    # Ten times the sample size of the fast tests: sensitive to biases ~3x smaller,
    # at the parameters the grade reveal uses (sensitivity 50).
    exact = pmf(param)
    samples = draw(sampler, param, f"{name}/slow", n=200_000)
    assert chi_square_p(samples, exact) > ALPHA
    assert ks_p(samples, exact) > ALPHA


# -- Poisson: streamed acceptance factors, a bound on the mean (issue 16) --------------------


def test_poisson_streams_its_acceptance_factors() -> None:
    """A draw at a large mean holds O(1) factors in memory, not O(sqrt(mean)) of them."""
    import tracemalloc

    lam = 10**10  # w = 10^5 + 1: the list version held ~10^5 big-integer pairs per attempt
    rng = SeededRandomSource(b"poisson-stream")
    tracemalloc.start()
    try:
        x = sampling.sample_poisson(lam, rng=rng)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(x - lam) < 10 * 10**5  # ten standard deviations
    assert peak < 2_000_000, f"peak {peak} bytes: factors are not streamed"


@pytest.mark.parametrize("sample", [sampling.sample_poisson, sampling.sample_skellam])
def test_poisson_mean_is_bounded(sample: Callable[..., int]) -> None:
    too_big = 2 * sampling.MAX_POISSON_MEAN + 2
    with pytest.raises(ValueError, match="at most"):
        sample(too_big, rng=SeededRandomSource(b"bound"))
    with pytest.raises(ValueError, match="at most"):
        sample(Fraction(10**14), rng=SeededRandomSource(b"bound"))
