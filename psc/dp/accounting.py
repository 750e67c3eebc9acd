"""Privacy accounting: loss values, mechanisms that carry their privacy maps, combinators.

After OpenDP: every mechanism is an object with ``map(d_in)`` (the privacy loss it
incurs when neighbouring inputs differ by at most ``d_in``) and ``check(d_in, d_out)``
(does that loss fit inside ``d_out``?).  Mechanisms compose only through the
combinators here (:class:`BasicComposition`, :class:`SequentialComposition`,
:class:`ToZCDP`, :class:`ToApproxDP`, :class:`ToRenyiDP`); nothing adds epsilons by hand.

Loss values (the "distances" of OpenDP's privacy measures), all exact ``Fraction``\\s:

* :class:`PureDP` ``(epsilon)``                  -- epsilon-DP (max divergence).
* :class:`ZCDP` ``(rho)``                        -- rho-zCDP (Bun-Steinke 2016).
* :class:`RenyiDP` ``(epsilons)``                -- (alpha, eps(alpha))-RDP at every order
  alpha of :data:`RDP_ORDERS` (Mironov 2017); the Skellam bound lives here.
* :class:`ApproxDP` ``(epsilon, delta)``         -- (epsilon, delta)-DP.

Neighbouring inputs and ``d_in``: psc releases integer scores; two inputs are
neighbours when they differ in one event, so ``d_in`` is the absolute change of the
released integer, at most :func:`sensitivity` (the catalog's largest |delta|).

Accuracy, for reports and plots (floating point, never on a privacy path):
:func:`noise_tail` and :func:`misgrade_probability` of a noisy grade.

Where a conversion needs ``log``/``sqrt`` it is evaluated in floating point and the
result is rounded *up* by a relative 2^-40 (far above the few-ulp error of ``math.log``
and ``math.sqrt``), so a reported epsilon is never below the true bound.  Noise itself
never touches floating point (:mod:`psc.dp.sampling`).  Derivations:
``papers/dp-derivations.md``.
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from psc.dp import sampling
from psc.dp.random import RandomSource, resolve
from psc.dp.sampling import Rational, as_rational
from psc.exceptions import BudgetExhausted

if TYPE_CHECKING:
    from psc.catalog import Catalog

__all__ = [
    "RDP_ORDERS",
    "ZCDP",
    "ApproxDP",
    "BasicComposition",
    "DiscreteGaussian",
    "DiscreteLaplace",
    "Loss",
    "Mechanism",
    "PureDP",
    "RenyiDP",
    "SequentialComposition",
    "Skellam",
    "ToApproxDP",
    "ToRenyiDP",
    "ToZCDP",
    "approxdp_epsilon",
    "compose",
    "loss_from_json",
    "misgrade_probability",
    "noise_tail",
    "pure_to_zcdp",
    "renyi_to_approxdp",
    "rho_for_approxdp",
    "scale_for_epsilon",
    "sensitivity",
    "sigma2_for_rho",
    "skellam_renyi",
    "skellam_variance_for_approxdp",
    "to_renyi",
    "zcdp_to_approxdp",
    "zcdp_to_approxdp_bs16",
]

#: Rényi orders at which :class:`RenyiDP` curves are tracked: fine fractions below 8
#: (where the optimum falls for large rho), then integers, sparse up to 8192 (tiny rho).
RDP_ORDERS: tuple[Fraction, ...] = (
    *(1 + Fraction(k, 16) for k in range(1, 17)),
    *(2 + Fraction(k, 8) for k in range(1, 49)),
    *(Fraction(a) for a in range(9, 65)),
    *(Fraction(a) for a in range(72, 257, 8)),
    *(
        Fraction(a)
        for a in (320, 384, 448, 512, 640, 768, 896, 1024, 1536, 2048, 3072, 4096, 6144, 8192)
    ),
)

_MARGIN = 1 + Fraction(1, 2**40)


def _round_up(x: float) -> Fraction:
    """A Fraction >= x (x >= 0 evaluated in floating point with a few ulps of error)."""
    if math.isnan(x):
        raise ValueError("conversion produced NaN")
    if x == math.inf:
        raise ValueError("conversion produced an infinite epsilon")
    return max(Fraction(0), Fraction(x) * _MARGIN)


def _nonneg(name: str, value: object) -> Fraction:
    q = as_rational(name, value)
    if q < 0:
        raise ValueError(f"{name} must be >= 0, got {q}")
    return q


def _d_in(d_in: object) -> int:
    if isinstance(d_in, bool) or not isinstance(d_in, int) or d_in < 0:
        raise ValueError(f"d_in must be a non-negative int (an integer sensitivity), got {d_in!r}")
    return d_in


# ---------------------------------------------------------------------------------
# Loss values


class Loss(abc.ABC):
    """A privacy loss in one measure.  ``a.within(b)``: a is at most b (same measure)."""

    measure: ClassVar[str]

    @abc.abstractmethod
    def within(self, other: Loss) -> bool:
        """True when this loss is no larger than ``other`` (which must be the same measure)."""

    @abc.abstractmethod
    def _json_fields(self) -> dict[str, Any]: ...

    def to_json(self) -> str:
        """Canonical JSON: ``{"measure": ..., <fields as "p/q" strings>}``, sorted keys."""
        return json.dumps({"measure": self.measure, **self._json_fields()}, sort_keys=True)

    def _same(self, other: Loss) -> None:
        if type(other) is not type(self):
            raise ValueError(
                f"cannot compare a {self.measure} loss with a {other.measure} loss; "
                "convert first (ToZCDP, ToRenyiDP, ToApproxDP or compose(..., like=...))"
            )


def _frac_str(q: Fraction) -> str:
    return str(q)


@dataclass(frozen=True)
class PureDP(Loss):
    """epsilon-DP: P[M(x) in S] <= e^epsilon P[M(x') in S] for neighbours x, x'."""

    epsilon: Fraction
    measure: ClassVar[str] = "PureDP"

    def __init__(self, epsilon: Rational) -> None:
        object.__setattr__(self, "epsilon", _nonneg("epsilon", epsilon))

    def within(self, other: Loss) -> bool:
        self._same(other)
        assert isinstance(other, PureDP)
        return self.epsilon <= other.epsilon

    def _json_fields(self) -> dict[str, Any]:
        return {"epsilon": _frac_str(self.epsilon)}


@dataclass(frozen=True)
class ZCDP(Loss):
    """rho-zCDP: D_alpha(M(x) || M(x')) <= alpha * rho for every real alpha > 1."""

    rho: Fraction
    measure: ClassVar[str] = "zCDP"

    def __init__(self, rho: Rational) -> None:
        object.__setattr__(self, "rho", _nonneg("rho", rho))

    def within(self, other: Loss) -> bool:
        self._same(other)
        assert isinstance(other, ZCDP)
        return self.rho <= other.rho

    def _json_fields(self) -> dict[str, Any]:
        return {"rho": _frac_str(self.rho)}


@dataclass(frozen=True)
class ApproxDP(Loss):
    """(epsilon, delta)-DP: P[M(x) in S] <= e^epsilon P[M(x') in S] + delta."""

    epsilon: Fraction
    delta: Fraction
    measure: ClassVar[str] = "ApproxDP"

    def __init__(self, epsilon: Rational, delta: Rational) -> None:
        d = _nonneg("delta", delta)
        if d > 1:
            raise ValueError(f"delta must be <= 1, got {d}")
        object.__setattr__(self, "epsilon", _nonneg("epsilon", epsilon))
        object.__setattr__(self, "delta", d)

    def within(self, other: Loss) -> bool:
        self._same(other)
        assert isinstance(other, ApproxDP)
        return self.epsilon <= other.epsilon and self.delta <= other.delta

    def _json_fields(self) -> dict[str, Any]:
        return {"epsilon": _frac_str(self.epsilon), "delta": _frac_str(self.delta)}


@dataclass(frozen=True)
class RenyiDP(Loss):
    """(alpha, eps(alpha))-RDP at each order of :data:`RDP_ORDERS`.

    ``epsilons[i]`` bounds D_alpha(M(x) || M(x')) for alpha = RDP_ORDERS[i].  A finite
    grid loses nothing in soundness: the conversion to (epsilon, delta) holds order by
    order, so a grid only makes the minimum over orders slightly larger.
    """

    epsilons: tuple[Fraction, ...]
    measure: ClassVar[str] = "RenyiDP"

    def __init__(self, epsilons: Sequence[Rational]) -> None:
        if len(epsilons) != len(RDP_ORDERS):
            raise ValueError(
                f"RenyiDP needs one epsilon per order in RDP_ORDERS ({len(RDP_ORDERS)}), got {len(epsilons)}"
            )
        object.__setattr__(
            self,
            "epsilons",
            tuple(
                _nonneg(f"epsilon(alpha={a})", e) for a, e in zip(RDP_ORDERS, epsilons, strict=True)
            ),
        )

    @classmethod
    def from_curve(cls, curve: Callable[[Fraction], Fraction]) -> RenyiDP:
        """Tabulate ``curve(alpha)`` on :data:`RDP_ORDERS`."""
        return cls([curve(a) for a in RDP_ORDERS])

    def at(self, alpha: Rational) -> Fraction:
        """eps(alpha) for an order in :data:`RDP_ORDERS`."""
        try:
            return self.epsilons[RDP_ORDERS.index(Fraction(alpha))]
        except ValueError:
            raise ValueError(f"alpha={alpha} is not one of RDP_ORDERS") from None

    def within(self, other: Loss) -> bool:
        self._same(other)
        assert isinstance(other, RenyiDP)
        return all(a <= b for a, b in zip(self.epsilons, other.epsilons, strict=True))

    def _json_fields(self) -> dict[str, Any]:
        return {
            "orders": [_frac_str(a) for a in RDP_ORDERS],
            "epsilons": [_frac_str(e) for e in self.epsilons],
        }


def loss_from_json(text: str) -> Loss:
    """Inverse of :meth:`Loss.to_json`.

    Raises:
        ValueError: the text is not a loss this module wrote.
    """
    try:
        obj = json.loads(text)
        measure = obj["measure"]
        if measure == "PureDP":
            return PureDP(Fraction(obj["epsilon"]))
        if measure == "zCDP":
            return ZCDP(Fraction(obj["rho"]))
        if measure == "ApproxDP":
            return ApproxDP(Fraction(obj["epsilon"]), Fraction(obj["delta"]))
        if measure == "RenyiDP":
            if tuple(Fraction(a) for a in obj["orders"]) != RDP_ORDERS:
                raise ValueError("RenyiDP loss was written with different RDP_ORDERS")
            return RenyiDP([Fraction(e) for e in obj["epsilons"]])
    except (KeyError, TypeError, ZeroDivisionError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a psc privacy loss: {text!r} ({exc})") from None
    raise ValueError(f"unknown privacy measure {measure!r} in {text!r}")


# ---------------------------------------------------------------------------------
# Conversions between losses


def pure_to_zcdp(loss: PureDP) -> ZCDP:
    """epsilon-DP implies (epsilon^2/2)-zCDP (Bun-Steinke 2016, Proposition 1.4).  Exact."""
    return ZCDP(loss.epsilon * loss.epsilon / 2)


def to_renyi(loss: Loss) -> RenyiDP:
    """Express a loss as an RDP curve at :data:`RDP_ORDERS`.  Exact.

    * rho-zCDP: eps(alpha) = alpha rho (the definition).
    * epsilon-DP: eps(alpha) = min(epsilon, alpha epsilon^2/2) (D_alpha <= D_inf = epsilon,
      and the zCDP bound of :func:`pure_to_zcdp`).
    * RDP: itself.

    Raises:
        ValueError: ``loss`` is :class:`ApproxDP` (no Rényi bound follows from it).
    """
    if isinstance(loss, RenyiDP):
        return loss
    if isinstance(loss, ZCDP):
        return RenyiDP([a * loss.rho for a in RDP_ORDERS])
    if isinstance(loss, PureDP):
        e = loss.epsilon
        return RenyiDP([min(e, a * e * e / 2) for a in RDP_ORDERS])
    raise ValueError(
        f"an {loss.measure} loss has no Rényi-DP bound; compose it as (epsilon, delta)"
    )


def _cks_epsilon(tau: float, alpha: float, log_delta: float) -> float:
    """CKS20 Proposition 12 solved for epsilon: (alpha, tau)-RDP gives (eps, delta)-DP with
    eps = tau + log(1 - 1/alpha) - (log(alpha) + log(delta)) / (alpha - 1)."""
    return tau + math.log1p(-1.0 / alpha) - (math.log(alpha) + log_delta) / (alpha - 1.0)


def _check_delta(delta: object) -> Fraction:
    d = as_rational("delta", delta)
    if not 0 < d < 1:
        raise ValueError(f"delta must be in (0, 1), got {d}")
    return d


def zcdp_to_approxdp(loss: ZCDP, delta: Rational) -> ApproxDP:
    """rho-zCDP implies (epsilon, delta)-DP, the tight conversion (CKS20 Corollary 13).

    epsilon = inf_{alpha > 1} alpha rho + log(1 - 1/alpha) - (log alpha + log delta)/(alpha - 1).
    This is the conversion OpenDP's ``make_zCDP_to_approxDP`` uses.  The infimum is
    found by golden-section search on log(alpha - 1); any alpha gives a valid bound, so
    an imprecise search only makes epsilon (slightly) larger.  Rounded up.
    """
    d = _check_delta(delta)
    rho = float(loss.rho)
    if rho == 0:
        return ApproxDP(0, d)
    log_delta = math.log(d)

    def g(x: float) -> float:
        alpha = 1.0 + math.exp(x)
        return _cks_epsilon(alpha * rho, alpha, log_delta)

    lo, hi = -30.0, 30.0
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - inv_phi * (hi - lo), lo + inv_phi * (hi - lo)
    ga, gb = g(a), g(b)
    for _ in range(200):
        if ga < gb:
            hi, b, gb = b, a, ga
            a = hi - inv_phi * (hi - lo)
            ga = g(a)
        else:
            lo, a, ga = a, b, gb
            b = lo + inv_phi * (hi - lo)
            gb = g(b)
    eps = min(ga, gb, _zcdp_classic_float(rho, float(d)))
    return ApproxDP(_round_up(max(eps, 0.0)), d)


def _zcdp_classic_float(rho: float, delta: float) -> float:
    """rho + 2 sqrt(rho log(1/delta)) (Bun-Steinke 2016, Proposition 1.3), in floating point."""
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def zcdp_to_approxdp_bs16(loss: ZCDP, delta: Rational) -> ApproxDP:
    """rho-zCDP implies (rho + 2 sqrt(rho log(1/delta)), delta)-DP (Bun-Steinke 2016, Prop. 1.3).

    The standard, looser conversion; :func:`zcdp_to_approxdp` is never worse.  Rounded up.
    """
    d = _check_delta(delta)
    return ApproxDP(_round_up(_zcdp_classic_float(float(loss.rho), float(d))), d)


def renyi_to_approxdp(loss: RenyiDP, delta: Rational) -> ApproxDP:
    """(alpha, eps(alpha))-RDP at each order implies (epsilon, delta)-DP (CKS20 Proposition 12).

    epsilon = min over alpha in RDP_ORDERS of eps(alpha) + log(1 - 1/alpha) - (log alpha +
    log delta)/(alpha - 1).  Rounded up.
    """
    d = _check_delta(delta)
    log_delta = math.log(d)
    eps = min(
        _cks_epsilon(float(e), float(a), log_delta)
        for a, e in zip(RDP_ORDERS, loss.epsilons, strict=True)
    )
    return ApproxDP(_round_up(max(eps, 0.0)), d)


def approxdp_epsilon(loss: Loss, delta: Rational) -> ApproxDP:
    """The best (epsilon, delta)-DP statement this module can derive from ``loss`` at ``delta``.

    PureDP: (epsilon, delta) directly, or via RDP if tighter (never, for one release).
    zCDP: :func:`zcdp_to_approxdp`.  RDP: :func:`renyi_to_approxdp`.  ApproxDP: itself,
    provided its delta is at most ``delta``.
    """
    d = _check_delta(delta)
    if isinstance(loss, PureDP):
        return ApproxDP(loss.epsilon, d)
    if isinstance(loss, ZCDP):
        return zcdp_to_approxdp(loss, d)
    if isinstance(loss, RenyiDP):
        return renyi_to_approxdp(loss, d)
    assert isinstance(loss, ApproxDP)
    if loss.delta > d:
        raise ValueError(f"loss has delta {loss.delta} > requested delta {d}")
    return ApproxDP(loss.epsilon, d)


# ---------------------------------------------------------------------------------
# Composition of losses (used by the combinators and by the budget ledger)


def compose(costs: Sequence[Loss], *, like: Loss) -> Loss:
    """The total loss of running all ``costs`` (adaptively), in the measure of ``like``.

    Basic composition per measure: epsilons add (PureDP), rhos add (zCDP, Bun-Steinke
    2016), RDP curves add order by order (Mironov 2017 Prop. 1), (epsilon, delta) add
    componentwise.  Costs are first converted to the target measure:

    * like PureDP: only PureDP costs.
    * like zCDP: PureDP (epsilon^2/2) and zCDP costs.
    * like RenyiDP: PureDP, zCDP and RenyiDP costs (:func:`to_renyi`).
    * like ApproxDP(epsilon, delta): ApproxDP costs add up to (E_a, D_a); the PureDP costs
      add to E_p; everything else is composed as RDP and converted at delta - D_a.  The
      result is (E_a + min(E_p + eps_R, eps_{R+P}), delta) where R+P folds the pure costs into
      the RDP curve; both ways are valid, the smaller is reported.  When no cost is RDP
      the rest is composed as zCDP and converted exactly (CKS20 Corollary 13).  With only
      PureDP and ApproxDP costs nothing is converted and the result is (E_a + E_p, D_a).

    Raises:
        ValueError: a cost cannot be expressed in the target measure, or the ApproxDP
            costs alone already use all of ``like.delta``.
    """
    if isinstance(like, PureDP):
        eps = Fraction(0)
        for c in costs:
            if not isinstance(c, PureDP):
                raise ValueError(f"a PureDP total cannot include a {c.measure} cost")
            eps += c.epsilon
        return PureDP(eps)
    if isinstance(like, ZCDP):
        rho = Fraction(0)
        for c in costs:
            if isinstance(c, PureDP):
                c = pure_to_zcdp(c)
            if not isinstance(c, ZCDP):
                raise ValueError(f"a zCDP total cannot include a {c.measure} cost")
            rho += c.rho
        return ZCDP(rho)
    if isinstance(like, RenyiDP):
        total = [Fraction(0)] * len(RDP_ORDERS)
        for c in costs:
            for i, e in enumerate(to_renyi(c).epsilons):
                total[i] += e
        return RenyiDP(total)
    assert isinstance(like, ApproxDP)
    eps_a, delta_a, eps_p = Fraction(0), Fraction(0), Fraction(0)
    rest: list[Loss] = []
    pures: list[Loss] = []
    for c in costs:
        if isinstance(c, ApproxDP):
            eps_a += c.epsilon
            delta_a += c.delta
        elif isinstance(c, PureDP):
            eps_p += c.epsilon
            pures.append(c)
        else:
            rest.append(c)
    if delta_a > like.delta:
        raise ValueError(f"the (epsilon, delta) costs alone use delta {delta_a} > {like.delta}")
    if not rest:
        return ApproxDP(eps_a + eps_p, delta_a)  # no conversion: only the deltas spent
    delta_r = like.delta - delta_a
    if delta_r == 0:
        raise ValueError("no delta left for the Rényi/zCDP costs: raise the budget's delta")
    separate = eps_p + _epsilon_of(rest, delta_r)
    folded = _epsilon_of([*rest, *pures], delta_r)
    return ApproxDP(eps_a + min(separate, folded), like.delta)


def _epsilon_of(costs: Sequence[Loss], delta: Fraction) -> Fraction:
    """epsilon at ``delta`` of PureDP/zCDP/RDP costs: via zCDP and the exact CKS20 conversion
    when no cost is RDP (no grid loss), else via the RDP curve on the grid."""
    if all(isinstance(c, PureDP | ZCDP) for c in costs):
        return zcdp_to_approxdp(ZCDP(0) if not costs else _as_zcdp(costs), delta).epsilon
    return renyi_to_approxdp(_as_renyi(costs), delta).epsilon


def _as_zcdp(costs: Sequence[Loss]) -> ZCDP:
    total = compose(costs, like=ZCDP(0))
    assert isinstance(total, ZCDP)
    return total


def _as_renyi(costs: Sequence[Loss]) -> RenyiDP:
    total = compose(costs, like=RenyiDP([0] * len(RDP_ORDERS)))
    assert isinstance(total, RenyiDP)
    return total


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
