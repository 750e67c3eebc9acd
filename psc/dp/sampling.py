"""Exact samplers for differential-privacy noise: integers and rationals only.

Hazmat: these are raw primitives.  Protocol code calls them through
:mod:`psc.dp.distributed` and the mechanisms of :mod:`psc.dp.accounting`; the
privacy guarantee of a release is stated there, not here.

Every sampler here returns a value whose distribution is *exactly* the stated pmf,
given a source of exactly uniform integers (:mod:`psc.dp.random`).  Parameters are
``int`` or :class:`fractions.Fraction`; a ``float`` parameter is refused, because a
float that "means" 0.1 is a different number and the caller should say which one.
There is no floating-point arithmetic on any path: Mironov (2012) showed that
floating-point Laplace noise leaks the input through which doubles can occur.  The
derivations (why each output has exactly its pmf) are in ``papers/dp-derivations.md``.

References:
    CKS20: C. Canonne, G. Kamath, T. Steinke, "The Discrete Gaussian for
    Differential Privacy", NeurIPS 2020 (arXiv:2004.00010), Algorithms 1-3.
    AKL21: N. Agarwal, P. Kairouz, Z. Liu, "The Skellam Mechanism for
    Differentially Private Federated Learning", NeurIPS 2021.
    GX17: S. Goryczka, L. Xiong, "A Comprehensive Comparison of Multiparty Secure
    Additions with Differential Privacy", IEEE TDSC 2017 (Pólya shares).

Samplers: Bernoulli(p) and Bernoulli(exp(-gamma)) for rational p, gamma; geometric
(rational p, or ratio exp(-1/scale)); discrete Laplace and discrete Gaussian (CKS20);
Poisson with rational mean (psc's rejection sampler, no exp); Skellam; negative binomial
NB(r, exp(-1/scale)) with rational shape r (psc's rejection sampler).

Every function takes its randomness at the keyword-only seam ``rng`` (default: the
OS CSPRNG).  All raise ``ValueError`` with the offending parameter on bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from itertools import chain
from math import isqrt

from psc.dp.random import RandomSource, resolve

__all__ = [
    "MAX_POISSON_MEAN",
    "Rational",
    "as_rational",
    "sample_bernoulli",
    "sample_bernoulli_exp",
    "sample_discrete_gaussian",
    "sample_discrete_laplace",
    "sample_geometric",
    "sample_geometric_exp",
    "sample_negative_binomial",
    "sample_poisson",
    "sample_skellam",
]

Rational = int | Fraction

# Products of acceptance factors are multiplied out until the denominator passes this
# many bits, then settled with one uniform draw: fewer draws than one per factor, and
# an early exit on the first failed chunk keeps big-lambda Poisson draws cheap.
_CHUNK_BITS = 256


def as_rational(name: str, value: object) -> Fraction:
    """``value`` as an exact :class:`Fraction`; refuse floats, bools and non-numbers.

    Raises:
        ValueError: ``value`` is not an ``int`` or ``Fraction``.
    """
    if isinstance(value, bool) or not isinstance(value, int | Fraction):
        hint = ""
        if isinstance(value, float):
            hint = (
                f" (floats are refused; say which number you mean, e.g. Fraction({str(value)!r}))"
            )
        raise ValueError(f"{name} must be an int or fractions.Fraction, got {value!r}{hint}")
    return Fraction(value)


def _positive(name: str, value: object) -> Fraction:
    q = as_rational(name, value)
    if q <= 0:
        raise ValueError(f"{name} must be > 0, got {q}")
    return q


# ---------------------------------------------------------------------------------
# Bernoulli


def _bern(num: int, den: int, rng: RandomSource) -> bool:
    """Bernoulli(num/den) for 0 <= num <= den: one uniform draw in [0, den)."""
    return rng.uniform(den) < num


def sample_bernoulli(p: Rational, *, rng: RandomSource | None = None) -> int:
    """Bernoulli(p) for rational ``p`` in [0, 1]: 1 with probability p, else 0.

    pmf: P(1) = p, P(0) = 1 - p.  Algorithm: draw U uniform in [0, den(p)) and return
    ``U < num(p)``; exactly num/den of the den equally likely values are below num.
    """
    q = as_rational("p", p)
    if not 0 <= q <= 1:
        raise ValueError(f"p must be in [0, 1], got {q}")
    return int(_bern(q.numerator, q.denominator, resolve(rng)))


def _bern_exp_unit(num: int, den: int, rng: RandomSource) -> bool:
    """Bernoulli(exp(-num/den)) for 0 <= num/den <= 1 (CKS20 Algorithm 1, gamma <= 1).

    K is the first k >= 1 with A_k = 0, A_k ~ Bernoulli(gamma/k), so P(K > k) = gamma^k/k!
    and P(K odd) = sum_j (-gamma)^j / j! = exp(-gamma).
    """
    k = 1
    while rng.uniform(den * k) < num:
        k += 1
    return k % 2 == 1


def _bern_exp(num: int, den: int, rng: RandomSource) -> bool:
    """Bernoulli(exp(-num/den)) for num/den >= 0 (CKS20 Algorithm 1).

    exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma))): an AND of
    independent Bernoullis, stopping at the first 0.
    """
    while num > den:
        if not _bern_exp_unit(1, 1, rng):
            return False
        num -= den
    return _bern_exp_unit(num, den, rng)


def sample_bernoulli_exp(gamma: Rational, *, rng: RandomSource | None = None) -> int:
    """Bernoulli(exp(-gamma)) for rational ``gamma >= 0`` (CKS20 Algorithm 1).

    pmf: P(1) = exp(-gamma), P(0) = 1 - exp(-gamma).  For gamma in [0, 1]: draw
    A_k ~ Bernoulli(gamma/k) for k = 1, 2, ... until the first A_K = 0 and return 1 iff K
    is odd.  For gamma > 1: floor(gamma) independent Bernoulli(exp(-1)) and one
    Bernoulli(exp(-(gamma - floor(gamma)))), all 1.  Expected cost O(1 + gamma) draws.
    """
    g = as_rational("gamma", gamma)
    if g < 0:
        raise ValueError(f"gamma must be >= 0, got {g}")
    return int(_bern_exp(g.numerator, g.denominator, resolve(rng)))


def _bern_product(factors: Iterable[tuple[int, int]], rng: RandomSource) -> bool:
    """Bernoulli(prod num_i/den_i), each factor in [0, 1], settled chunk by chunk.

    ``factors`` is consumed lazily, in order, and abandoned at the first failed chunk: a
    generator keeps memory at one chunk however many factors there are.
    """
    num, den = 1, 1
    for fnum, fden in factors:
        num *= fnum
        den *= fden
        if den.bit_length() > _CHUNK_BITS:
            if not _bern(num, den, rng):
                return False
            num, den = 1, 1
    return _bern(num, den, rng)


# ---------------------------------------------------------------------------------
# Geometric


def _count_successes(num: int, den: int, rng: RandomSource) -> int:
    """Successes of Bernoulli(num/den) before the first failure (num < den)."""
    g = 0
    while _bern(num, den, rng):
        g += 1
    return g


def sample_geometric(p: Rational, *, rng: RandomSource | None = None) -> int:
    """Geometric(p) on {0, 1, 2, ...}: failures before the first success, rational p in (0, 1].

    pmf: P(k) = (1 - p)^k p.  Algorithm: count Bernoulli(1 - p) outcomes equal to 1
    before the first 0.  Expected cost 1/p draws: for a small p use
    :func:`sample_geometric_exp` with the matching scale instead.
    """
    q = as_rational("p", p)
    if not 0 < q <= 1:
        raise ValueError(f"p must be in (0, 1], got {q}")
    return _count_successes(q.denominator - q.numerator, q.denominator, resolve(rng))


def _geometric_exp(t: int, s: int, rng: RandomSource) -> int:
    """P(Y = y) = (1 - e^{-s/t}) e^{-y s/t}, y >= 0, for positive ints s, t (CKS20 Alg. 2).

    U uniform in [0, t) kept with probability exp(-U/t), V ~ Geometric(1 - e^{-1}),
    X = U + tV has P(X = x) proportional to exp(-x/t) and Y = floor(X/s) is geometric with
    ratio exp(-s/t).
    """
    while True:
        u = rng.uniform(t)
        if not _bern_exp(u, t, rng):
            continue
        v = 0
        while _bern_exp_unit(1, 1, rng):
            v += 1
        return (u + t * v) // s


def sample_geometric_exp(scale: Rational, *, rng: RandomSource | None = None) -> int:
    """Geometric with ratio exp(-1/scale) on {0, 1, ...}, rational ``scale > 0`` (CKS20 Alg. 2).

    pmf: P(k) = (1 - exp(-1/scale)) exp(-k/scale).  Expected cost O(1) draws for any
    scale (the uniform part absorbs the scale), unlike :func:`sample_geometric`.
    """
    sc = _positive("scale", scale)
    return _geometric_exp(sc.numerator, sc.denominator, resolve(rng))


# ---------------------------------------------------------------------------------
# Discrete Laplace and discrete Gaussian


def _discrete_laplace(t: int, s: int, rng: RandomSource) -> int:
    """Discrete Laplace with scale t/s (CKS20 Algorithm 2)."""
    while True:
        y = _geometric_exp(t, s, rng)
        negative = rng.bit()
        if negative and y == 0:
            continue  # so that 0 is not counted twice
        return -y if negative else y


def sample_discrete_laplace(scale: Rational, *, rng: RandomSource | None = None) -> int:
    """Discrete Laplace L_Z(scale) for rational ``scale > 0`` (CKS20 Algorithm 2).

    pmf on the integers: P(x) = (e^{1/scale} - 1)/(e^{1/scale} + 1) * e^{-|x|/scale}.
    Algorithm: Y geometric with ratio e^{-1/scale} (:func:`sample_geometric_exp`), a fair
    sign bit B, reject (B = 1, Y = 0), return (-1)^B Y.

    Privacy (in :class:`psc.dp.mechanisms.DiscreteLaplace`): adding this to an integer
    query of sensitivity Delta is (Delta/scale)-DP (pure).
    """
    sc = _positive("scale", scale)
    return _discrete_laplace(sc.numerator, sc.denominator, resolve(rng))


def _discrete_gaussian(a: int, b: int, rng: RandomSource) -> int:
    """Discrete Gaussian with sigma^2 = a/b (CKS20 Algorithm 3)."""
    t = isqrt(a // b) + 1  # floor(sigma) + 1; floor(sqrt(x)) == isqrt(floor(x))
    # Reject Y ~ L_Z(t) with probability 1 - exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)).
    # With sigma^2 = a/b that exponent is (|Y| b t - a)^2 / (2 a b t^2), a rational.
    den = 2 * a * b * t * t
    while True:
        y = _discrete_laplace(t, 1, rng)
        if _bern_exp((abs(y) * b * t - a) ** 2, den, rng):
            return y


def sample_discrete_gaussian(sigma2: Rational, *, rng: RandomSource | None = None) -> int:
    """Discrete Gaussian N_Z(0, sigma2) for rational ``sigma2 > 0`` (CKS20 Algorithm 3).

    pmf on the integers: P(x) = e^{-x^2/(2 sigma2)} / sum_{y in Z} e^{-y^2/(2 sigma2)}.
    ``sigma2`` is the parameter sigma^2 (the variance is slightly below it).  Algorithm:
    t = floor(sigma) + 1, Y ~ L_Z(t), accept with probability
    exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)), else repeat.  Expected < 2 rounds.

    Privacy (in :class:`psc.dp.mechanisms.DiscreteGaussian`): adding this to an integer
    query of sensitivity Delta is (Delta^2 / (2 sigma2))-zCDP (CKS20 Section 2).
    """
    s2 = _positive("sigma2", sigma2)
    return _discrete_gaussian(s2.numerator, s2.denominator, resolve(rng))


# ---------------------------------------------------------------------------------
# Poisson and Skellam


#: Largest Poisson mean sampled (Skellam: half the variance).  A draw costs O(sqrt(mean))
#: factor multiplications: about 10^6 here, seconds in Python; noise of a larger mean has a
#: standard deviation above 10^6 and no use for grades or counts of people.
MAX_POISSON_MEAN = 10**12


def _check_poisson_mean(name: str, mu: Fraction) -> None:
    if mu > MAX_POISSON_MEAN:
        raise ValueError(
            f"{name} must be at most {MAX_POISSON_MEAN:.0e} (a draw costs O(sqrt(mean)) steps), "
            f"got {float(mu):.3e}; use a larger epsilon or split the release"
        )


def _poisson(a: int, b: int, rng: RandomSource) -> int:
    """Poisson(a/b) by rejection from a flat-top, geometric-tailed envelope.

    With lambda = a/b, m = floor(lambda) (a mode) and f(k) = p(k)/p(m) <= 1:
      f(m + j) = prod_{i=1..j} lambda/(m + i),   f(m - j) = prod_{i=0..j-1} (m - i)/lambda,
    every factor in [0, 1].  Envelope h: 1 on the body [L, R] = [max(0, m - w), m + w],
    rho_R^t at R + t with rho_R = lambda/(R + 1), rho_L^t at L - t with rho_L = L/lambda.
    Then f/h is again a product of rational factors in [0, 1]; see
    papers/dp-derivations.md section 1.7 for the proof and the O(sqrt(lambda)) cost.
    """
    if a == 0:
        return 0
    m = a // b
    w = isqrt(m) + 1
    low, high = max(0, m - w), m + w
    # Masses of the three proposal regions over the common denominator
    # (b(R+1) - a)(a - Lb): body R - L + 1, right tail lambda/(R + 1 - lambda),
    # left tail L/(lambda - L) (only when L > 0).
    right_den = b * (high + 1) - a  # > 0 since R + 1 > lambda
    left_den = a - low * b if low > 0 else 1  # > 0 since L < lambda
    body_mass = (high - low + 1) * right_den * left_den
    right_mass = a * left_den
    left_mass = low * b * right_den if low > 0 else 0
    total = body_mass + right_mass + left_mass
    while True:
        u = rng.uniform(total)
        tail: Iterable[tuple[int, int]]
        if u < body_mass:
            k = low + rng.uniform(high - low + 1)
            anchor, tail = k, ()  # the envelope is 1 here: accept with f(k)
        elif u < body_mass + right_mass:
            # t >= 1 with P(t) proportional to rho_R^t; accept with f(R) prod (R+1)/(R+i).
            t = 1 + _count_successes(a, b * (high + 1), rng)
            k, anchor = high + t, high
            tail = ((high + 1, high + i) for i in range(2, t + 1))
        else:
            # t >= 1 with P(t) proportional to rho_L^t; accept with f(L) prod (L-i)/L.
            t = 1 + _count_successes(low * b, a, rng)
            k, anchor = low - t, low
            if k < 0:
                continue
            tail = ((low - i, low) for i in range(1, t))
        if anchor >= m:
            body = ((a, b * (m + i)) for i in range(1, anchor - m + 1))
        else:
            body = ((b * (m - i), a) for i in range(m - anchor))
        # streamed in the order the list held them: same draws, O(1) memory
        if _bern_product(chain(tail, body), rng):
            return k


def sample_poisson(mean: Rational, *, rng: RandomSource | None = None) -> int:
    """Poisson(mean) for rational ``mean >= 0``, sampled exactly.

    pmf: P(k) = e^{-mean} mean^k / k!, k >= 0.  Algorithm: rejection sampling against
    an envelope that is flat on [m - w, m + w] (m = floor(mean), w = isqrt(m) + 1) with
    geometric tails; the acceptance probability p(k)/(C h(k)) is a product of rational
    factors in [0, 1], so it is settled with uniform integer draws and no exp() at all.
    Expected cost O(1 + sqrt(mean)) draws; acceptance rate 0.50-0.65 (tabulated in the derivations).
    The acceptance factors are streamed (O(1) memory).  Raises ``ValueError`` for a mean
    above :data:`MAX_POISSON_MEAN`.
    """
    mu = as_rational("mean", mean)
    if mu < 0:
        raise ValueError(f"mean must be >= 0, got {mu}")
    _check_poisson_mean("mean", mu)
    return _poisson(mu.numerator, mu.denominator, resolve(rng))


def sample_skellam(variance: Rational, *, rng: RandomSource | None = None) -> int:
    """Symmetric Skellam Sk(variance): X1 - X2 with X1, X2 ~ Poisson(variance/2) independent.

    pmf: P(k) = e^{-variance} I_{|k|}(variance), I the modified Bessel function of the
    first kind; mean 0, variance ``variance``.  Sum-closed: independent Sk(v1) + Sk(v2) is
    exactly Sk(v1 + v2) (AKL21), which is what :mod:`psc.dp.distributed` relies on.
    ``variance = 0`` gives the constant 0.
    """
    v = as_rational("variance", variance)
    if v < 0:
        raise ValueError(f"variance must be >= 0, got {v}")
    half = v / 2
    _check_poisson_mean("variance / 2", half)
    source = resolve(rng)
    return _poisson(half.numerator, half.denominator, source) - _poisson(
        half.numerator, half.denominator, source
    )


# ---------------------------------------------------------------------------------
# Negative binomial (Pólya) with ratio e^{-1/scale}: shares of a distributed discrete Laplace


def _negative_binomial(rn: int, rd: int, t: int, s: int, rng: RandomSource) -> int:
    """NB(r = rn/rd, q = e^{-s/t}) for any rational r > 0.

    NB(r) = NB(floor(r)) + NB(r - floor(r)) (sum-closure), NB(1) is geometric, and NB(r)
    for 0 < r < 1 is geometric-proposal rejection: propose K with P(K = k) = (1 - q) q^k,
    accept with prod_{i<k} (i + r)/(i + 1) in [0, 1].  Accepted K has pmf proportional to
    q^k prod_{i<k} (i + r)/(i + 1), which is NB(r, q).  Acceptance rate (1 - q)^{1 - r}.
    """
    whole, frac_num = divmod(rn, rd)
    total = sum(_geometric_exp(t, s, rng) for _ in range(whole))
    if frac_num == 0:
        return total
    while True:
        k = _geometric_exp(t, s, rng)
        # (i + r)/(i + 1) with r = frac_num/rd, as (i rd + frac_num) / ((i + 1) rd)
        if _bern_product([(i * rd + frac_num, (i + 1) * rd) for i in range(k)], rng):
            return total + k


def sample_negative_binomial(
    r: Rational, scale: Rational, *, rng: RandomSource | None = None
) -> int:
    """Negative binomial (Pólya) NB(r, q) with q = exp(-1/scale), rational ``r > 0``, ``scale > 0``.

    pmf: P(k) = Gamma(k + r) / (k! Gamma(r)) * (1 - q)^r * q^k, k >= 0.  NB(1, q) is the
    geometric of :func:`sample_geometric_exp`; NB(r1, q) + NB(r2, q) = NB(r1 + r2, q); so
    the difference of two NB(1/h, q) is one h-th of a discrete Laplace L_Z(scale):
    sum over h members of (P_i - Q_i) is exactly L_Z(scale) (Goryczka-Xiong 2017).

    Algorithm: integer part as a sum of geometrics; fractional part r' by rejection from
    the geometric proposal with the rational acceptance prod_{i<k} (i + r')/(i + 1)
    (papers/dp-derivations.md section 1.9).  Expected cost O(scale^{1 - r'}) proposals.
    """
    rr = _positive("r", r)
    sc = _positive("scale", scale)
    return _negative_binomial(
        rr.numerator, rr.denominator, sc.numerator, sc.denominator, resolve(rng)
    )
