"""Composite sign approximations and the CKKS profiles that have the depth for them.

Hazmat: raw circuit constants.  ``P = p_k o ... o p_1`` with odd degree-7 stages ``p_i``,
greedy per-stage minimax (Lee, Lee, Kim, No, "Minimax approximation of sign function by
composite polynomial", 2021; compare Cheon, Kim, Kim, ASIACRYPT 2020), so that
``|P(x) - sign(x)| <= max_error`` on ``1/max_ratio <= |x| <= 1`` in exact arithmetic.
``protocols/he-grading.md`` section 4 lists every coefficient; ``python -m protocols.gen_he
--design`` recomputes them.  Nothing here holds a key or leaks anything: these are public
constants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from psc.exceptions import ParameterError
from psc.hazmat.he.params import CkksParams

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SignComposite:
    """``P = p_k o ... o p_1``, odd polynomials; ``|P(x) - sign(x)| <= max_error`` on
    ``1/max_ratio <= |x| <= 1``.

    ``stages[i]`` holds the coefficients of ``x, x^3, x^5, x^7`` of ``p_{i+1}``.  Each stage
    was obtained by linear-programming minimax on ``[a_i, 1 + 2^-12]`` (``a_1 = 1/max_ratio``,
    ``a_{i+1}`` the stage's lower image minus ``2^-16`` of noise margin) and normalised so its
    maximum there is 1 (``protocols/gen_he.py --design`` recomputes them).
    """

    name: str
    max_ratio: int
    max_error: float
    stages: tuple[tuple[float, ...], ...]

    @property
    def depth(self) -> int:
        return sum(_stage_depth(c) for c in self.stages)

    def __call__(self, x: FloatArray) -> FloatArray:
        """Plaintext evaluation in float64 (the reference for the encrypted circuit)."""
        y = np.asarray(x, dtype=np.float64)
        for c in self.stages:
            y = sum((ck * y ** (2 * k + 1) for k, ck in enumerate(c)), np.zeros_like(y))
        return y


def _stage_depth(coeffs: Sequence[float]) -> int:
    return math.ceil(math.log2(2 * len(coeffs)))


#: band thresholds: 7 stages, depth 21, for |x| >= 1/8400 (H <= 4200)
BAND_8400 = SignComposite(
    "minimax-7x7-r8400",
    8400,
    1.8e-8,
    (
        (5.927885182312805, -35.06369503823909, 64.94331132553887, -35.800642971569374),
        (5.9233171516427605, -34.98822102903442, 64.77743521720102, -35.70230957994657),
        (5.896231307527876, -34.542757702624364, 63.79903514319789, -35.12247654976213),
        (5.735484065186273, -31.97747755981527, 58.18915839798596, -31.804599302039573),
        (4.851717515013123, -20.118418462565188, 32.973567980792986, -17.08908422836387),
        (2.791737396842308, -4.426604698706964, 4.0502496045386405, -1.4189364791488503),
        (1.7528704620852094, -0.8793096593993484, 0.0, 0.12643918337257046),
    ),
)
#: cap counters: 5 stages, depth 15, for |x| >= 1/256 (counters up to 128)
CAP_256 = SignComposite(
    "minimax-7x5-r256",
    256,
    3.3e-8,
    (
        (5.8975722226556515, -34.56471527435272, 63.84723208482934, -35.15103140523127),
        (5.7434255381826915, -32.101069041443296, 58.45842645436559, -31.963575277506532),
        (4.890916497290679, -20.568881638843568, 33.90270396611631, -17.62323534816765),
        (2.82943122244771, -4.5956739472055785, 4.288547493869266, -1.5266883528484154),
        (1.753589423902023, -0.8803905895201088, 0.0, 0.12680114173690007),
    ),
)
#: small test domains: 3 stages, depth 9, for |x| >= 1/12
SMALL_12 = SignComposite(
    "minimax-7x3-r12",
    12,
    1.1e-7,
    (
        (5.259203368369692, -25.1328993774689, 43.46338678800523, -23.162134989774692),
        (3.338501793938968, -7.251677919666246, 8.407843820123936, -3.525189018501867),
        (2.220721525285916, -2.28834195835333, 1.4145291524319517, -0.346908743023897),
    ),
)
#: small test cap counters: 2 stages, depth 6, for |x| >= 1/4 (counters up to 2)
SMALL_CAP_4 = SignComposite(
    "minimax-7x2-r4",
    4,
    5.2e-5,
    (
        (4.126030789633663, -12.91236156888089, 18.60888308445393, -8.974102160614558),
        (2.3768267599193935, -2.7965319021546247, 1.965183220916961, -0.5455281237106903),
    ),
)


@dataclass(frozen=True)
class GradingProfile:
    """CKKS parameters plus the composites they have the depth for."""

    name: str
    params: CkksParams
    band: SignComposite
    cap: SignComposite

    def check_depth(self, cap_labels: int) -> None:
        """Levels needed: the band composite then one product per cap (or the mask), and
        the cap composite then the mask and its products."""
        m = cap_labels
        need = self.band.depth + 1 if m == 0 else max(self.band.depth + m, self.cap.depth + m + 1)
        if self.params.levels < need:
            raise ParameterError(
                f"profile {self.name} has {self.params.levels} levels; the circuit needs {need}"
            )


#: N=32768, 50 + 22*35 + 50 = 870 bits (HE standard bound 881): 22 levels = 21 + 1
CITY_PROFILE = GradingProfile(
    "n32768-l22", CkksParams(32768, (50, *(35,) * 22, 50), 35), BAND_8400, CAP_256
)
#: N=16384, 45 + 10*34 + 45 = 430 bits (bound 438): 10 levels = 9 + 1; small test catalogs
SMALL_PROFILE = GradingProfile(
    "n16384-l10", CkksParams(16384, (45, *(34,) * 10, 45), 34), SMALL_12, SMALL_CAP_4
)
PROFILES = (SMALL_PROFILE, CITY_PROFILE)
