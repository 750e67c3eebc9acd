"""Privacy accounting: loss values, their conversions, and composition of losses.

After OpenDP: every mechanism (:mod:`psc.dp.mechanisms`) is an object with ``map(d_in)``
and ``check(d_in, d_out)``, and mechanisms compose only through combinators; this module
holds the loss values those maps return, the conversions between them and
:func:`compose`.  Calibration and accuracy: :mod:`psc.dp.calibration`.

Loss values (the "distances" of OpenDP's privacy measures), all exact ``Fraction``\\s:

* :class:`PureDP` ``(epsilon)``                  -- epsilon-DP (max divergence).
* :class:`ZCDP` ``(rho)``                        -- rho-zCDP (Bun-Steinke 2016).
* :class:`RenyiDP` ``(epsilons)``                -- (alpha, eps(alpha))-RDP at every order
  alpha of :data:`RDP_ORDERS` (Mironov 2017); the Skellam bound lives here.
* :class:`ApproxDP` ``(epsilon, delta)``         -- (epsilon, delta)-DP.

Neighbouring inputs and ``d_in``: psc releases integer scores; two inputs are
neighbours when they differ in one event, so ``d_in`` is the absolute change of the
released integer, at most :func:`~psc.dp.calibration.sensitivity` (the catalog's largest
|delta|).

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
from typing import Any, ClassVar

from psc.dp.sampling import Rational, as_rational

__all__ = [
    "RDP_ORDERS",
    "ZCDP",
    "ApproxDP",
    "Loss",
    "PureDP",
    "RenyiDP",
    "approxdp_epsilon",
    "compose",
    "loss_from_json",
    "pure_to_zcdp",
    "renyi_to_approxdp",
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
