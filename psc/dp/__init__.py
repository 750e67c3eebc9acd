"""Differential privacy for psc: exact noise, distributed shares, accounting, budget ledger.

Modules:

* :mod:`psc.dp.random` -- the randomness seam (OS CSPRNG by default; a seeded,
  insecure source for tests and vectors).
* :mod:`psc.dp.sampling` -- hazmat: exact samplers (Bernoulli, geometric, discrete
  Laplace, discrete Gaussian after Canonne-Kamath-Steinke 2020, Poisson, Skellam,
  negative binomial) with integer and rational arithmetic only.
* :mod:`psc.dp.distributed` -- committee noise shares, exactly sum-closed (Skellam, or
  differences of Pólya variables summing to a discrete Laplace), and the accounting when
  only ``h`` of ``n`` members are honest.
* :mod:`psc.dp.accounting` -- losses (PureDP, ZCDP, RenyiDP, ApproxDP), mechanisms that
  carry their privacy maps (``map``/``check``), combinators, conversions, calibration,
  and the sensitivity of a catalog.
* :mod:`psc.dp.budget` -- the persistent per-key, per-release budget ledger in SQLite.

Derivations: ``papers/dp-derivations.md``.
"""

from psc.dp.accounting import ZCDP, ApproxDP, Loss, PureDP, RenyiDP, compose
from psc.dp.budget import BudgetLedger, Spend
from psc.dp.calibration import (
    scale_for_epsilon,
    sensitivity,
    sigma2_for_rho,
    skellam_variance_for_approxdp,
)
from psc.dp.distributed import ShareParameters, combine_shares, share_parameters
from psc.dp.mechanisms import (
    BasicComposition,
    DiscreteGaussian,
    DiscreteLaplace,
    Mechanism,
    SequentialComposition,
    Skellam,
    ToApproxDP,
    ToRenyiDP,
    ToZCDP,
)
from psc.dp.random import RandomSource, SeededRandomSource, SystemRandomSource

__all__ = [
    "ZCDP",
    "ApproxDP",
    "BasicComposition",
    "BudgetLedger",
    "DiscreteGaussian",
    "DiscreteLaplace",
    "Loss",
    "Mechanism",
    "PureDP",
    "RandomSource",
    "RenyiDP",
    "SeededRandomSource",
    "SequentialComposition",
    "ShareParameters",
    "Skellam",
    "Spend",
    "SystemRandomSource",
    "ToApproxDP",
    "ToRenyiDP",
    "ToZCDP",
    "combine_shares",
    "compose",
    "scale_for_epsilon",
    "sensitivity",
    "share_parameters",
    "sigma2_for_rho",
    "skellam_variance_for_approxdp",
]
