"""Mechanisms that carry their privacy maps, and the combinators that compose them (after OpenDP).

Every mechanism has ``map(d_in)`` (the loss it incurs when neighbouring inputs differ by
at most ``d_in``) and ``check(d_in, d_out)``; mechanisms compose only through the
combinators here.  Loss values and conversions: :mod:`psc.dp.accounting`.  Derivations:
``papers/dp-derivations.md``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

from psc.dp import sampling
from psc.dp.accounting import (
    RDP_ORDERS,
    ZCDP,
    ApproxDP,
    Loss,
    PureDP,
    RenyiDP,
    _check_delta,
    _d_in,
    approxdp_epsilon,
    compose,
    pure_to_zcdp,
    to_renyi,
)
from psc.dp.random import RandomSource, resolve
from psc.dp.sampling import Rational, as_rational
from psc.exceptions import BudgetExhausted

__all__ = [
    "BasicComposition",
    "DiscreteGaussian",
    "DiscreteLaplace",
    "Mechanism",
    "SequentialComposition",
    "Skellam",
    "ToApproxDP",
    "ToRenyiDP",
    "ToZCDP",
    "skellam_renyi",
]


# ---------------------------------------------------------------------------------
# Mechanisms


class Mechanism(abc.ABC):
    """An additive-noise mechanism on integers that carries its privacy map.

    ``map(d_in)``: the loss when neighbouring inputs differ by at most ``d_in``.
    ``check(d_in, d_out)``: whether ``map(d_in)`` fits in ``d_out`` (same measure).
    ``release(value, rng=...)``: ``value`` plus one noise draw.
    """

    output_measure: ClassVar[type[Loss]]

    @abc.abstractmethod
    def map(self, d_in: int) -> Loss:
        """The privacy loss for inputs at distance at most ``d_in``."""

    def check(self, d_in: int, d_out: Loss) -> bool:
        """True iff ``map(d_in)`` is within ``d_out``.

        Raises:
            ValueError: ``d_out`` is in another measure (convert with a combinator).
        """
        return self.map(d_in).within(d_out)

    @abc.abstractmethod
    def sample_noise(self, *, rng: RandomSource | None = None) -> int:
        """One draw of the mechanism's noise."""

    def release(self, value: int, *, rng: RandomSource | None = None) -> int:
        """``value`` plus noise: the private release of an integer query."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"release() needs an int value, got {type(value).__name__}")
        return value + self.sample_noise(rng=rng)


@dataclass(frozen=True)
class DiscreteLaplace(Mechanism):
    """value + L_Z(scale).  Privacy map: d_in / scale, pure DP (CKS20 Section 5.2; GRS12).

    For |f(x) - f(x')| <= Delta the output pmfs differ pointwise by at most
    exp(Delta/scale), since | |y - f(x)| - |y - f(x')| | <= Delta.
    """

    scale: Fraction
    output_measure: ClassVar[type[Loss]] = PureDP

    def __init__(self, scale: Rational) -> None:
        s = as_rational("scale", scale)
        if s <= 0:
            raise ValueError(f"scale must be > 0, got {s}")
        object.__setattr__(self, "scale", s)

    def map(self, d_in: int) -> PureDP:
        return PureDP(_d_in(d_in) / self.scale)

    def sample_noise(self, *, rng: RandomSource | None = None) -> int:
        return sampling.sample_discrete_laplace(self.scale, rng=rng)


@dataclass(frozen=True)
class DiscreteGaussian(Mechanism):
    """value + N_Z(0, sigma2).  Privacy map: d_in^2 / (2 sigma2), zCDP (CKS20 Section 2).

    The Rényi divergence of two discrete Gaussians shifted by an integer Delta is at most
    that of the continuous ones, alpha Delta^2 / (2 sigma^2).
    """

    sigma2: Fraction
    output_measure: ClassVar[type[Loss]] = ZCDP

    def __init__(self, sigma2: Rational) -> None:
        s = as_rational("sigma2", sigma2)
        if s <= 0:
            raise ValueError(f"sigma2 must be > 0, got {s}")
        object.__setattr__(self, "sigma2", s)

    def map(self, d_in: int) -> ZCDP:
        d = _d_in(d_in)
        return ZCDP(Fraction(d * d) / (2 * self.sigma2))

    def sample_noise(self, *, rng: RandomSource | None = None) -> int:
        return sampling.sample_discrete_gaussian(self.sigma2, rng=rng)


def skellam_renyi(variance: Rational, d_in: int) -> RenyiDP:
    """The Skellam RDP curve of AKL21 (Theorem 3.5 with Delta_1 = Delta_2 = Delta), exact.

    For noise Sk with variance V (each Poisson of mean V/2) and integer sensitivity
    Delta, for every integer alpha > 1:

        eps(alpha) = alpha Delta^2 / (2V) + min( ((2 alpha - 1) Delta^2 + 6 Delta) / (4 V^2),
                                                 3 Delta / (2V) ).

    In AKL21's notation Sk_{mu,mu} (variance 2 mu) this reads
    alpha Delta^2/(4 mu) + min(((2 alpha - 1) Delta^2 + 6 Delta)/(16 mu^2), 3 Delta/(4 mu)).
    The first term is the Gaussian's; the min is the price of discreteness.  At a
    fractional order of :data:`RDP_ORDERS` the bound for ceil(alpha) is used, which is
    valid because D_alpha is nondecreasing in alpha (van Erven-Harremoës 2014, Thm 3).
    """
    v = as_rational("variance", variance)
    if v <= 0:
        raise ValueError(f"variance must be > 0, got {v}")
    d = _d_in(d_in)
    if d == 0:
        return RenyiDP([0] * len(RDP_ORDERS))
    d2 = Fraction(d * d)

    def curve(order: Fraction) -> Fraction:
        alpha = math.ceil(order)
        return alpha * d2 / (2 * v) + min(
            ((2 * alpha - 1) * d2 + 6 * d) / (4 * v * v), 3 * Fraction(d) / (2 * v)
        )

    return RenyiDP.from_curve(curve)


@dataclass(frozen=True)
class Skellam(Mechanism):
    """value + Sk(variance) (a difference of two Poisson(variance/2)).  RDP map of AKL21.

    This is the mechanism the committee's distributed noise realises
    (:mod:`psc.dp.distributed`): the honest members' shares sum to exactly Sk(variance).
    ``map(d_in)`` is :func:`skellam_renyi`; convert with :class:`ToApproxDP`.
    """

    variance: Fraction
    output_measure: ClassVar[type[Loss]] = RenyiDP

    def __init__(self, variance: Rational) -> None:
        v = as_rational("variance", variance)
        if v <= 0:
            raise ValueError(f"variance must be > 0, got {v}")
        object.__setattr__(self, "variance", v)

    def map(self, d_in: int) -> RenyiDP:
        return skellam_renyi(self.variance, d_in)

    def sample_noise(self, *, rng: RandomSource | None = None) -> int:
        return sampling.sample_skellam(self.variance, rng=rng)


# ---------------------------------------------------------------------------------
# Combinators


@dataclass(frozen=True)
class ToZCDP(Mechanism):
    """A pure-DP mechanism seen as zCDP: map(d_in) = pure_to_zcdp(inner.map(d_in))."""

    inner: Mechanism
    output_measure: ClassVar[type[Loss]] = ZCDP

    def __post_init__(self) -> None:
        if self.inner.output_measure is not PureDP:
            raise ValueError(
                f"ToZCDP needs a PureDP mechanism, got {self.inner.output_measure.measure}"
            )

    def map(self, d_in: int) -> ZCDP:
        loss = self.inner.map(d_in)
        assert isinstance(loss, PureDP)
        return pure_to_zcdp(loss)

    def sample_noise(self, *, rng: RandomSource | None = None) -> int:
        return self.inner.sample_noise(rng=rng)


@dataclass(frozen=True)
class ToRenyiDP(Mechanism):
    """A PureDP, zCDP or RDP mechanism seen as RDP (:func:`to_renyi`)."""

    inner: Mechanism
    output_measure: ClassVar[type[Loss]] = RenyiDP

    def __post_init__(self) -> None:
        if self.inner.output_measure is ApproxDP:
            raise ValueError("ToRenyiDP cannot take an ApproxDP mechanism")

    def map(self, d_in: int) -> RenyiDP:
        return to_renyi(self.inner.map(d_in))

    def sample_noise(self, *, rng: RandomSource | None = None) -> int:
        return self.inner.sample_noise(rng=rng)


@dataclass(frozen=True)
class ToApproxDP(Mechanism):
    """Any mechanism seen as (epsilon, delta)-DP at a fixed ``delta`` (:func:`approxdp_epsilon`).

    For a zCDP mechanism this is OpenDP's ``make_fix_delta(make_zCDP_to_approxDP(m), delta)``.
    """

    inner: Mechanism
    delta: Fraction
    output_measure: ClassVar[type[Loss]] = ApproxDP

    def __init__(self, inner: Mechanism, delta: Rational) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "delta", _check_delta(delta))

    def map(self, d_in: int) -> ApproxDP:
        return approxdp_epsilon(self.inner.map(d_in), self.delta)

    def sample_noise(self, *, rng: RandomSource | None = None) -> int:
        return self.inner.sample_noise(rng=rng)


class BasicComposition:
    """Non-adaptive composition: run every mechanism on the same input, release the tuple.

    ``map(d_in)`` is :func:`compose` of the parts' losses; all parts must share one
    output measure (wrap them in ToZCDP / ToRenyiDP / ToApproxDP first), as in OpenDP's
    ``make_composition``.
    """

    def __init__(self, mechanisms: Sequence[Mechanism]) -> None:
        if not mechanisms:
            raise ValueError("BasicComposition needs at least one mechanism")
        measures = {m.output_measure for m in mechanisms}
        if len(measures) != 1:
            names = sorted(m.measure for m in measures)
            raise ValueError(
                f"BasicComposition needs one output measure, got {names}; convert first"
            )
        self.mechanisms = tuple(mechanisms)
        self.output_measure: type[Loss] = measures.pop()

    def map(self, d_in: int) -> Loss:
        losses = [m.map(d_in) for m in self.mechanisms]
        return compose(losses, like=losses[0])

    def check(self, d_in: int, d_out: Loss) -> bool:
        return self.map(d_in).within(d_out)

    def release(self, value: int, *, rng: RandomSource | None = None) -> tuple[int, ...]:
        source = resolve(rng)
        return tuple(m.release(value, rng=source) for m in self.mechanisms)


class SequentialComposition:
    """Adaptive composition with pre-declared per-query losses (OpenDP's sequential composition).

    Declared up front: ``d_in`` (the input distance it is valid for) and ``d_mids`` (the
    loss each successive query may use).  Queries arrive one at a time and may depend on
    earlier answers; query i is admitted only if ``mechanism.check(d_in, d_mids[i])``.
    ``map(d_in)`` is the composition of all ``d_mids``, whatever the queries turn out to be.

    ``release`` raises :class:`~psc.exceptions.BudgetExhausted` once every declared query
    has been used (nothing is released then) and ``ValueError`` for a query that does
    not fit its declared loss.
    """

    def __init__(self, d_in: int, d_mids: Sequence[Loss]) -> None:
        self.d_in = _d_in(d_in)
        if not d_mids:
            raise ValueError("SequentialComposition needs at least one d_mid")
        measures = {type(d) for d in d_mids}
        if len(measures) != 1:
            raise ValueError("all d_mids must be in one measure")
        self.d_mids = tuple(d_mids)
        self.output_measure: type[Loss] = measures.pop()
        self._used = 0

    def map(self, d_in: int) -> Loss:
        if _d_in(d_in) > self.d_in:
            raise ValueError(f"this composition was declared for d_in <= {self.d_in}, got {d_in}")
        return compose(list(self.d_mids), like=self.d_mids[0])

    def check(self, d_in: int, d_out: Loss) -> bool:
        return self.map(d_in).within(d_out)

    @property
    def remaining(self) -> int:
        """How many declared queries are still available."""
        return len(self.d_mids) - self._used

    def release(self, mechanism: Mechanism, value: int, *, rng: RandomSource | None = None) -> int:
        """Admit and run the next query."""
        if self._used >= len(self.d_mids):
            raise BudgetExhausted(
                f"all {len(self.d_mids)} declared queries of this sequential composition are used"
            )
        d_mid = self.d_mids[self._used]
        if not mechanism.check(self.d_in, d_mid):
            raise ValueError(
                f"query {self._used} costs {mechanism.map(self.d_in).to_json()} "
                f"at d_in={self.d_in}, more than its declared {d_mid.to_json()}"
            )
        self._used += 1
        return mechanism.release(value, rng=rng)
