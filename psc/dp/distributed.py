"""Distributed noise: each committee member draws a share; the honest shares sum to the target.

Role: every key-committee member runs :meth:`ShareParameters.sample_share` once per
noised value (per subject slot for a grade reveal, per cell for a statistic), encrypts
the share under the committee key and submits it; the aggregator adds the encrypted
shares to the encrypted score.  No one, aggregator included, ever sees the total noise;
the committee decrypts only score + noise.

Two exactly sum-closed share distributions, chosen by the target mechanism:

* ``Skellam(V)`` (zCDP-like, RDP accounting; AKL21): a share is Sk(V/h) =
  Poisson(V/(2h)) - Poisson(V/(2h)); independent Skellams add their variances.
* ``DiscreteLaplace(t)`` (pure DP; Goryczka-Xiong 2017, Balle et al. 2020): a share is
  P - Q with P, Q ~ NB(1/h, e^{-1/t}) (Pólya); independent NB with one ratio add their
  shapes, and NB(1) - NB(1) is Geometric - Geometric = L_Z(t).

Which to use.  For one release per subject and period (the DP grade reveal) the
distributed discrete Laplace is far more accurate at the same epsilon: at epsilon = 1
and sensitivity 50 its noise has standard deviation about 71 against about 227 for the
Skellam calibrated to (1, 1e-6)-DP, and it needs no delta.  Skellam wins when many
releases compose (statistics over many cells and periods), where its Gaussian-like RDP
composes as sqrt(k) rather than k, and its sampler (exact Poisson) is cheaper.  Both
are exact with integer arithmetic only (:mod:`psc.dp.sampling`).

Dishonest members.  A member who colludes with the party learning the result can
reveal (or choose) its own share, so only the honest members' shares are guaranteed
noise.  With ``honest=h`` (at least h of the n members are honest), every member draws
one h-th of the target: any h honest shares alone sum to exactly the target, and the
other n - h shares are independent of the data, so the release is post-processing of
score + target noise and keeps the target's guarantee (papers/dp-derivations.md
section 3).  The price is accuracy: with everyone honest the total noise is n/h
"targets" (Sk(nV/h), or the generalized discrete Laplace NB(n/h) - NB(n/h)).  A
dishonest member cannot remove honest noise (it never sees it), only add more, which
hurts accuracy but not privacy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from psc.dp.accounting import Loss, PureDP
from psc.dp.mechanisms import DiscreteLaplace, Skellam
from psc.dp.random import RandomSource, resolve
from psc.dp.sampling import sample_negative_binomial, sample_skellam

__all__ = ["ShareParameters", "combine_shares", "share_parameters"]

Target = DiscreteLaplace | Skellam

_MARGIN = 1 + Fraction(1, 2**40)


@dataclass(frozen=True)
class ShareParameters:
    """How much noise each of ``members`` draws so that any ``honest`` of them reach ``target``.

    Fields:
        target: the mechanism the honest shares realise exactly (account with it).
        members: n, the committee size (shares per noised value).
        honest: h, the number of members assumed honest (1 <= h <= n).
    """

    target: Target
    members: int
    honest: int

    def __post_init__(self) -> None:
        if not isinstance(self.target, DiscreteLaplace | Skellam):
            raise ValueError(
                "target must be a Skellam or DiscreteLaplace mechanism (sum-closed shares), "
                f"got {self.target!r}"
            )
        n, h = self.members, self.honest
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n (committee size) must be an int >= 1, got {n!r}")
        if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= n:
            raise ValueError(f"honest must be an int in [1, n={n}], got {h!r}")

    @property
    def fraction(self) -> Fraction:
        """The part of the target each share carries: 1/h."""
        return Fraction(1, self.honest)

    @property
    def share_variance(self) -> Fraction:
        """Skellam targets only: the variance V/h of one share.

        Raises:
            ValueError: the target is a discrete Laplace (its shares have no rational variance).
        """
        if not isinstance(self.target, Skellam):
            raise ValueError("share_variance is defined for Skellam targets only")
        return self.target.variance / self.honest

    @property
    def total_variance(self) -> Fraction:
        """Skellam targets only: variance of the total noise when all n follow the protocol, nV/h."""
        return self.members * self.share_variance

    @property
    def guaranteed(self) -> Target:
        """The mechanism any ``honest`` honest shares alone realise exactly: the target."""
        return self.target

    def guaranteed_loss(self, honest_members: int, d_in: int) -> Loss:
        """The privacy loss at ``d_in`` if only ``honest_members`` (1..n) are in fact honest.

        * k >= h honest: the target's loss (k shares = the target plus independent noise).
        * Skellam, any k: Skellam(kV/h).map(d_in) (exact sum-closure).
        * Discrete Laplace, k < h: the honest sum is NB(k/h, q) - NB(k/h, q) with
          q = e^{-1/t}; its consecutive pmf ratios lie in [q k/h, 1/(q k/h)], so it is
          d_in (1/t + ln(h/k))-DP (derivation section 3.3; rounded up).

        Raises:
            ValueError: ``honest_members`` is not in [1, n].
        """
        k = honest_members
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.members:
            raise ValueError(
                f"honest_members must be in [1, {self.members}], got {honest_members!r}"
            )
        if isinstance(self.target, Skellam):
            return Skellam(k * self.target.variance / self.honest).map(d_in)
        if k >= self.honest:
            return self.target.map(d_in)
        base = self.target.map(d_in).epsilon
        extra = Fraction(d_in * math.log(self.honest / k)) * _MARGIN
        return PureDP(base + extra)

    def sample_share(self, *, rng: RandomSource | None = None) -> int:
        """One member's share for one value.

        Role: each committee member, once per noised value.  The share must be encrypted
        before it leaves the member and never be reused for another value.
        Skellam target: Sk(V/h).  Discrete Laplace target: NB(1/h, e^{-1/t}) - NB(1/h, e^{-1/t}).
        """
        source = resolve(rng)
        if isinstance(self.target, Skellam):
            return sample_skellam(self.target.variance / self.honest, rng=source)
        r, scale = self.fraction, self.target.scale
        return sample_negative_binomial(r, scale, rng=source) - sample_negative_binomial(
            r, scale, rng=source
        )

    def sample_shares(self, count: int, *, rng: RandomSource | None = None) -> list[int]:
        """``count`` independent shares (one member, ``count`` values, e.g. every subject slot)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be an int >= 0, got {count!r}")
        source = resolve(rng)
        return [self.sample_share(rng=source) for _ in range(count)]


def share_parameters(target: Target, n: int, *, honest: int | None = None) -> ShareParameters:
    """Share parameters so that any ``honest`` of ``n`` members' shares realise ``target`` exactly.

    ``target`` is the mechanism to guarantee: :class:`~psc.dp.mechanisms.Skellam` or
    :class:`~psc.dp.mechanisms.DiscreteLaplace` (calibrate it with
    :func:`~psc.dp.calibration.skellam_variance_for_approxdp` or
    :func:`~psc.dp.calibration.scale_for_epsilon`).  ``honest`` defaults to ``n`` (every
    share needed; the n shares then sum to exactly the target).

    Raises:
        ValueError: ``target`` is another mechanism, n < 1, or honest not in [1, n].
    """
    return ShareParameters(target=target, members=n, honest=n if honest is None else honest)


def combine_shares(shares: Sequence[int]) -> int:
    """The total noise of one value: the plain sum of the members' shares (what the
    homomorphic addition computes under encryption).  Exposed for tests and simulation."""
    if any(isinstance(s, bool) or not isinstance(s, int) for s in shares):
        raise ValueError("shares must be ints")
    return sum(shares)
