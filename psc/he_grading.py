"""Homomorphic grading (CKKS): the grade is computed under encryption and is all that is decrypted.

Hazmat: raw circuit code.  The normative description, with every coefficient and bound,
is ``protocols/he-grading.md``; the reference driver is :func:`grade_with_he`.

**Roles and threat model.**  Agencies encrypt dense delta vectors (in units of ``H``) and
cap counters (in units of ``Hc``) under the grading authority's public CKKS context.  The
aggregator (evaluator) sums the live ciphertexts, runs this circuit with the public
context (relinearization keys included) and never holds a secret key.  One **grading
authority** holds the secret key in this version: it decrypts only *flooded, masked* grade
ciphertexts and releases only rounded integers.  It is trusted not to decrypt anything
else (it could decrypt a raw accumulator if it obtained one: the aggregator never sends
one).  Decryption sits behind the :class:`GradeDecryptor` protocol so a k-of-n threshold
CKKS decryption with per-share smudging noise can replace it without touching the circuit.

**Circuit** (per ciphertext part of ``n/2`` subject slots; ``t_j`` the half-integer
thresholds, ``base`` the base score):

1. ``x_j = S/H + (base - t_j)/H`` for each threshold (one plaintext addition): since
   ``|s - t_j| >= 1/2`` and ``|s - t_j| <= H``, ``|x_j|`` lies in ``[1/(2H), 1]``.
2. ``ind_j = (1 + P(x_j)) / 2`` with ``P`` a composite of odd minimax polynomials
   (Lee-Lee-Kim-No 2021 style, degree 7 each, greedy per-stage minimax) that
   **saturates**: ``|P(x) - sign(x)| <= 1.8e-8`` on ``1/8400 <= |x| <= 1`` in exact
   arithmetic (``1/(2H) >= 1/8400`` is required: :class:`~psc.exceptions.ParameterError`
   otherwise).  Seven stages, depth 21.
3. Caps: ``keep_L = (1 - Q(c_L/Hc - 1/(2Hc))) / 2`` is 1 when the cap counter ``c_L`` is
   0 and 0 when it is >= 1 (``Q`` a shorter composite, valid for ratios up to 256).  With
   caps ``l_1 < l_2 < ...`` (grade indices) and segment sums ``S_k`` of the indicators of
   thresholds ``l_k <= j < l_{k+1}``, ``grade = S_0 + keep_1 (S_1 + keep_2 (S_2 + ...))``,
   which equals ``min(#{j: s > t_j}, caps)`` because the indicators are a thermometer code.
4. Multiply by the plaintext mask of the requested slots (folded into ``S_0`` and
   ``keep_1``), so every other slot is 0.
5. **Flood**: add fresh Gaussian noise of standard deviation ``sigma = 1/16`` to every slot
   (the evaluator's private randomness), then send for decryption; the decryptor rounds.

**Exact scale management.**  TenSEAL resets a ciphertext's scale to ``Delta`` after every
rescale by a prime ``q``, which multiplies the value by ``Delta/q`` (up to 5e-4 away from 1
at N=32768).  The evaluator tracks that factor for every intermediate ciphertext from the
prime chain (:func:`psc.he_params.seal_primes`) and folds its inverse into the next scalar
or mask constant, so every polynomial is evaluated with exactly its coefficients.

**Flooding bound** (Li-Micciancio, EUROCRYPT 2021: a raw CKKS decryption leaks the
secret key, and here the residual ``delta(s)`` of the approximation would reveal the score
near a threshold).  The decryptor sees ``g + delta(s) + e_ckks + N(0, sigma^2)``.  For two
scores of one band, the total variation distance between what it sees is at most
``|delta(s1) - delta(s2)| / (sigma * sqrt(2 pi))``; with the measured residual (recorded by
``benchmarks grade``: below 1e-5 at N=32768) that is about 1.2e-4, i.e. 2^-13, per
decryption (not negligible in the cryptographic sense; it is what CKKS precision allows and the
reason the authority releases only the rounded grade).  Rounding is wrong only if
``|delta + e + noise| >= 1/2``: with ``|delta + e| < 0.01``, below ``P(|N(0,1)| > 7.8) <
1e-14`` per reveal.

What leaks: to the aggregator, nothing (ciphertexts only); to the authority, the grade of
the requested subject (and the statistical residue above); to the relying party, the grade.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import tenseal as ts

from psc.backends.base import IntArray
from psc.backends.bfv import TensealCiphertext
from psc.backends.ckks import CkksBackend
from psc.catalog import Catalog
from psc.events import EventTable
from psc.exceptions import InvalidMessage, KeyMismatch, ParameterError, PolicyViolation
from psc.he_params import (
    CkksParams,
    PublicContext,
    SecretContext,
    ckks_vector_with_size,
    generate,
)
from psc.oracle import live_mask, raw_score_bounds
from psc.packing import worst_case_sum

FloatArray = npt.NDArray[np.float64]

#: standard deviation of the flooding noise added to every decrypted slot
FLOOD_SIGMA = 1.0 / 16.0


# ----------------------------------------------------------------------------------------
# sign composites


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


# ----------------------------------------------------------------------------------------
# the circuit's public parameters


@dataclass(frozen=True)
class GradingCircuit:
    """Public parameters of the grading circuit for one catalog.

    ``score_unit`` (``H``) is the largest ``|s - t_j|`` over the raw-score domain
    (:func:`psc.oracle.raw_score_bounds`); ``cap_unit`` (``Hc``) is ``max(C - 1/2, 1/2)`` for
    the largest cap counter ``C`` a subject can accumulate while capping events are live.
    """

    profile: GradingProfile
    base: int
    thresholds: tuple[Fraction, ...]
    labels: tuple[str, ...]
    cap_levels: tuple[tuple[str, int], ...]  # (label, grade index), ascending
    score_unit: float
    cap_unit: float
    raw_bounds: tuple[int, int]

    @classmethod
    def for_catalog(
        cls, catalog: Catalog, *, profile: GradingProfile | None = None
    ) -> GradingCircuit:
        """The circuit for ``catalog``: the smallest profile with the depth it needs.

        Raises :class:`ParameterError` if no profile's composite covers the catalog's
        ratio ``2H`` (domain half-width over the 1/2 gap) or cap counters.
        """
        lo, hi = raw_score_bounds(catalog)
        H = max(max(abs(lo - t), abs(hi - t)) for t in catalog.thresholds)
        caps = tuple((lab, catalog.grade_index(lab)) for lab in catalog.cap_labels())
        cmax = 0
        for lab, _ in caps:
            cmax = max(
                cmax,
                sum(
                    catalog.retention[r.retention].months * r.max_per_period
                    for r in catalog.rules
                    if r.grade_cap == lab
                ),
            )
        hc = max(cmax - 0.5, 0.5)
        ratio, cap_ratio = float(2 * H), 2 * hc
        candidates = (profile,) if profile is not None else PROFILES
        for p in candidates:
            if p.band.max_ratio >= ratio and p.cap.max_ratio >= cap_ratio:
                p.check_depth(len(caps))
                return cls(
                    p,
                    catalog.scheme.base_score,
                    catalog.thresholds,
                    catalog.labels,
                    caps,
                    float(H),
                    hc,
                    (lo, hi),
                )
        raise ParameterError(
            f"the raw-score domain [{lo}, {hi}] needs a sign test resolving 1 part in {ratio:g} "
            f"(and cap counters up to {cmax}); the deepest profile covers "
            f"{max(p.band.max_ratio for p in candidates)}: narrow the domain (fewer periods, "
            "smaller max_per_period) or add a deeper profile"
        )

    @property
    def params(self) -> CkksParams:
        return self.profile.params

    @property
    def slots(self) -> int:
        return self.params.slots

    def segments(self) -> list[list[int]]:
        """Threshold indices between consecutive cap levels: ``S_0, S_1, ...``."""
        cuts = [0, *[lvl for _, lvl in self.cap_levels], len(self.thresholds)]
        return [list(range(cuts[i], cuts[i + 1])) for i in range(len(cuts) - 1)]

    def simulate(self, raw: IntArray, caps: Mapping[str, IntArray] | None = None) -> FloatArray:
        """The circuit in float64 (no encryption, no noise): what decryption approximates."""
        s = np.asarray(raw, dtype=np.float64)
        ind = [
            (1 + self.profile.band((s - float(t)) / self.score_unit)) / 2 for t in self.thresholds
        ]
        segs = self.segments()
        acc = sum((ind[j] for j in segs[-1]), np.zeros_like(s))
        for k in range(len(self.cap_levels), 0, -1):
            lab = self.cap_levels[k - 1][0]
            c = np.zeros_like(s) if caps is None else np.asarray(caps[lab], dtype=np.float64)
            keep = (1 - self.profile.cap((c - 0.5) / self.cap_unit)) / 2
            acc = sum((ind[j] for j in segs[k - 1]), np.zeros_like(s)) + keep * acc
        return np.asarray(acc, dtype=np.float64)

    def as_json(self) -> dict[str, Any]:
        p = self.profile
        return {
            "profile": p.name,
            "params": p.params.as_json(),
            "levels": p.params.levels,
            "base": self.base,
            "thresholds": [str(t) for t in self.thresholds],
            "labels": list(self.labels),
            "cap_levels": [[lab, i] for lab, i in self.cap_levels],
            "score_unit": self.score_unit,
            "cap_unit": self.cap_unit,
            "raw_bounds": list(self.raw_bounds),
            "flood_sigma": FLOOD_SIGMA,
            "band": {
                "name": p.band.name,
                "max_ratio": p.band.max_ratio,
                "depth": p.band.depth,
                "max_error": p.band.max_error,
                "stages": [list(c) for c in p.band.stages],
            },
            "cap": {
                "name": p.cap.name,
                "max_ratio": p.cap.max_ratio,
                "depth": p.cap.depth,
                "max_error": p.cap.max_error,
                "stages": [list(c) for c in p.cap.stages],
            },
        }


# ----------------------------------------------------------------------------------------
# evaluation with exact scale tracking


@dataclass
class _Ct:
    """A CKKS ciphertext, its level (rescaling primes left) and the known factor by which
    its value differs from the intended one."""

    ct: Any
    level: int
    factor: float = 1.0


class _Evaluator:
    def __init__(self, params: CkksParams) -> None:
        self.primes = params.primes()
        self.delta = params.scale
        self.top = params.levels

    def r(self, level: int) -> float:
        """Value factor of a rescale at ``level`` (dropping prime ``q_level``)."""
        if level < 1:
            raise ParameterError("the circuit ran out of levels")
        return self.delta / self.primes[level]

    def mul(self, a: _Ct, b: _Ct) -> _Ct:
        lvl = min(a.level, b.level)
        return _Ct(a.ct * b.ct, lvl - 1, a.factor * b.factor * self.r(lvl))

    def scalar(self, a: _Ct, want: float, extra: float = 1.0) -> Any:
        """``a * k`` with ``k`` chosen so the product is ``want * x`` once it has been
        multiplied by something of factor ``extra``."""
        return a.ct * (want / (a.factor * self.r(a.level) * extra))

    def stage(self, a: _Ct, c: Sequence[float], out_scale: float, offset: float) -> _Ct:
        """``out_scale * p(x) + offset`` for odd ``p`` of degree ``2 len(c) - 1`` (3 or 7),
        depth ``ceil(log2(deg + 1))``, 2 or 5 ciphertext multiplications."""
        lam = [ck * out_scale for ck in c]
        lvl = a.level
        x2 = self.mul(a, a)
        terms: list[_Ct] = []
        if lam[0] != 0.0:
            terms.append(_Ct(self.scalar(a, lam[0]), lvl - 1))
        if len(lam) > 1 and lam[1] != 0.0:
            a1 = _Ct(self.scalar(a, lam[1], x2.factor * self.r(lvl - 1)), lvl - 1)
            terms.append(_Ct(a1.ct * x2.ct, lvl - 2))
        if len(lam) == 4:
            x4 = self.mul(x2, x2)
            g = 1.0 / (x4.factor * self.r(lvl - 2))
            u: Any = None
            if lam[3] != 0.0:
                b3 = self.scalar(a, g * lam[3], x2.factor * self.r(lvl - 1))
                u = b3 * x2.ct
            if lam[2] != 0.0:
                b2 = self.scalar(a, g * lam[2])
                u = b2 if u is None else u + b2
            if u is not None:
                terms.append(_Ct(u * x4.ct, lvl - 3))
        elif len(lam) > 2:
            raise ParameterError("stages must have degree 3 or 7")
        out = terms[0].ct
        for t in terms[1:]:
            out = out + t.ct
        if offset != 0.0:
            out = out + offset
        return _Ct(out, min(t.level for t in terms), 1.0)

    def composite(self, a: _Ct, comp: SignComposite, *, sign: float, out_scale: float) -> _Ct:
        """``out_scale * (1 + sign * P(x)) / 2``: an indicator with a chosen factor."""
        x = a
        for i, c in enumerate(comp.stages):
            last = i == len(comp.stages) - 1
            if last:
                x = self.stage(x, c, sign * out_scale / 2, out_scale / 2)
            else:
                x = self.stage(x, c, 1.0, 0.0)
        return x


@dataclass
class _Prepared:
    ind: list[_Ct]
    lb: int
    keeps: list[_Ct]
    inner: _Ct | None
    segs: list[list[int]]


class HomomorphicGrader:
    """The aggregator's side of grading: public context only.

    ``grade(scores, caps, slots)`` returns a flooded :class:`GradeQuery` for the requested
    subject slots; nothing it holds can decrypt.
    """

    def __init__(self, circuit: GradingCircuit, public: PublicContext) -> None:
        if public.params != circuit.params:
            raise ParameterError("the public context was not made for this circuit's profile")
        if not public.context.has_relin_keys():
            raise ParameterError("grading needs a public context with relinearization keys")
        self.circuit = circuit
        self.public = public
        self.scores = CkksBackend(public, unit=circuit.score_unit, full_parts=True)
        self.caps = CkksBackend(public, unit=circuit.cap_unit, full_parts=True)
        self._ev = _Evaluator(circuit.params)

    def _prepare(self, score_part: Any, cap_parts: Mapping[str, Any]) -> _Prepared:
        """The mask-independent bulk of the circuit for one ciphertext part."""
        circ, ev = self.circuit, self._ev
        top = ev.top
        ind: list[_Ct] = []
        for t in circ.thresholds:
            x = _Ct(score_part + float(circ.base - t) / circ.score_unit, top)
            ind.append(ev.composite(x, circ.profile.band, sign=1.0, out_scale=1.0))
        lb = ind[0].level
        segs = circ.segments()
        m = len(circ.cap_levels)
        keeps: list[_Ct] = []
        lc = top - circ.profile.cap.depth

        def cap_input(k: int) -> _Ct:
            lab = circ.cap_levels[k - 1][0]
            return _Ct(cap_parts[lab] - 0.5 / circ.cap_unit, top)

        # inner = S_1 + keep_2 (S_2 + keep_3 (...)): factor 1, mask-independent; each keep_k
        # (k >= 2) absorbs the rescale factor of its product in its last stage
        inner: _Ct | None = self._seg_sum(ind, segs[m]) if m else None
        for k in range(m, 1, -1):
            if inner is not None:
                prod_lvl = min(lc, inner.level)
                keep = ev.composite(
                    cap_input(k), circ.profile.cap, sign=-1.0, out_scale=1.0 / ev.r(prod_lvl)
                )
                inner = _Ct(keep.ct * inner.ct, prod_lvl - 1)
            s = self._seg_sum(ind, segs[k - 1])
            if s is not None:
                inner = s if inner is None else _Ct(s.ct + inner.ct, min(s.level, inner.level))
        if m:
            keeps.append(ev.composite(cap_input(1), circ.profile.cap, sign=-1.0, out_scale=1.0))
        return _Prepared(ind, lb, keeps, inner, segs)

    def _seg_sum(self, ind: list[_Ct], seg: list[int]) -> _Ct | None:
        acc: _Ct | None = None
        for j in seg:
            acc = ind[j] if acc is None else _Ct(acc.ct + ind[j].ct, min(acc.level, ind[j].level))
        return acc

    def _times(self, a: _Ct, b: _Ct, mask: FloatArray) -> _Ct:
        """``(a * mask) * b`` with factor exactly 1 (the mask absorbs both rescales)."""
        ev = self._ev
        lvl_a = a.level
        prod_lvl = min(lvl_a - 1, b.level)
        am = a.ct * (mask / (a.factor * ev.r(lvl_a) * b.factor * ev.r(prod_lvl))).tolist()
        return _Ct(am * b.ct, prod_lvl - 1, 1.0)

    def _masked(self, prep: _Prepared, mask: FloatArray) -> _Ct:
        """``mask * grade`` from a prepared part: 2 plaintext and 1 ciphertext multiplication."""
        ev = self._ev
        s0 = self._seg_sum(prep.ind, prep.segs[0])
        out: _Ct | None = None
        if prep.inner is not None:
            out = self._times(prep.keeps[0], prep.inner, mask)
        if s0 is not None:
            t = _Ct(s0.ct * (mask / (s0.factor * ev.r(s0.level))).tolist(), s0.level - 1)
            out = t if out is None else _Ct(t.ct + out.ct, min(t.level, out.level), out.factor)
        if out is None:
            raise ParameterError("the catalog has no thresholds")
        return out

    def grade(
        self,
        scores: TensealCiphertext,
        caps: Mapping[str, TensealCiphertext],
        slots: Sequence[int],
        *,
        rng: np.random.Generator | None = None,
    ) -> GradeQuery:
        """Masked, flooded grades of subject ``slots`` (all in one ciphertext part).

        ``scores`` is the encrypted sum of live deltas (unit ``H``), ``caps`` the encrypted
        live cap counters per cap label (unit ``Hc``).  Raises ``ValueError`` for slots
        outside the vector or spread over parts, :class:`KeyMismatch` for foreign inputs.
        """
        return self.grade_many(scores, caps, [list(slots)], rng=rng)[0]

    def prepare(
        self, scores: TensealCiphertext, caps: Mapping[str, TensealCiphertext], part: int
    ) -> _Prepared:
        """Run the expensive, mask-independent part of the circuit on ciphertext ``part``."""
        self._check_inputs(scores, caps)
        return self._prepare(
            scores.parts[part], {lab: caps[lab].parts[part] for lab, _ in self.circuit.cap_levels}
        )

    def grade_many(
        self,
        scores: TensealCiphertext,
        caps: Mapping[str, TensealCiphertext],
        requests: Sequence[Sequence[int]],
        *,
        rng: np.random.Generator | None = None,
    ) -> list[GradeQuery]:
        """One flooded query per request (each a list of slots within one part); the
        circuit runs once per part, each request then costs two plaintext and one
        ciphertext multiplication."""
        prepared: dict[int, _Prepared] = {}
        out = []
        for slots in requests:
            part, mask = self._mask(scores, caps, slots)
            if part not in prepared:
                prepared[part] = self.prepare(scores, caps, part)
            g = self._masked(prepared[part], mask)
            out.append(self._flood_from_parts(g, part, slots, _flood_noise(mask.size, rng)))
        return out

    def grades_unflooded(
        self, scores: TensealCiphertext, caps: Mapping[str, TensealCiphertext], part: int = 0
    ) -> tuple[Any, float]:
        """Every slot's grade of one part (ciphertext, known factor), *without* flooding.

        Hazmat: for benchmarks and tests only; decrypting this leaks scores near thresholds
        and, per Li-Micciancio, the secret key.  Never send it to a decryptor.
        """
        prep = self.prepare(scores, caps, part)
        mask = np.ones(self._part_size(scores, part))
        g = self._masked(prep, mask)
        return g.ct, g.factor

    def _check_inputs(
        self, scores: TensealCiphertext, caps: Mapping[str, TensealCiphertext]
    ) -> None:
        self.scores._check(scores)
        inputs = [scores]
        for lab, _ in self.circuit.cap_levels:
            if lab not in caps:
                raise ValueError(f"missing the encrypted cap counter for cap {lab!r}")
            self.caps._check(caps[lab])
            if caps[lab].n_values != scores.n_values:
                raise ValueError("cap counters and scores cover different subjects")
            inputs.append(caps[lab])
        if any(p.size() != self.circuit.slots for c in inputs for p in c.parts):
            raise ValueError(
                "grading inputs must fill every slot of each part: encrypt them with "
                "HomomorphicGrader.scores / .caps (CkksBackend(..., full_parts=True))"
            )

    def _mask(
        self, scores: TensealCiphertext, caps: Mapping[str, TensealCiphertext], slots: Sequence[int]
    ) -> tuple[int, FloatArray]:
        self._check_inputs(scores, caps)
        if not slots:
            raise ValueError("request at least one subject slot")
        S = self.circuit.slots
        parts = {s // S for s in slots}
        if len(parts) != 1 or min(slots) < 0 or max(slots) >= scores.n_values:
            raise ValueError(f"slots must lie in one block of {S} within 0..{scores.n_values - 1}")
        part = parts.pop()
        mask = np.zeros(self._part_size(scores, part))
        mask[[s % S for s in slots]] = 1.0
        return part, mask

    def _part_size(self, scores: TensealCiphertext, part: int) -> int:
        # grading inputs are encrypted with full parts (zero-padded to every slot)
        return self.circuit.slots

    def _flood_from_parts(
        self, g: _Ct, part: int, slots: Sequence[int], noise: FloatArray
    ) -> GradeQuery:
        """Private seam: add the given flooding noise (tests pass fixed or zero noise)."""
        flooded = g.ct + (noise * g.factor).tolist()
        return GradeQuery(self.public.fingerprint, part, tuple(slots), flooded.serialize())


def _flood_noise(n: int, rng: np.random.Generator | None) -> FloatArray:
    # the default generator is seeded from the OS CSPRNG; deployments may pass their own
    gen = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    return gen.normal(0.0, FLOOD_SIGMA, size=n)


@dataclass(frozen=True)
class GradeQuery:
    """Aggregator -> grading authority: a masked, flooded grade ciphertext.

    ``slots`` are the requested subject slots (global indices) within ciphertext ``part``.
    """

    fingerprint: bytes
    part: int
    slots: tuple[int, ...]
    ciphertext: bytes


class GradeDecryptor(Protocol):
    """What the grade reveal needs from key holders: rounded grades of requested slots.

    A threshold CKKS committee implements the same call (each member adds smudging noise
    to its decryption share); the circuit and the aggregator do not change.
    """

    def decrypt_grades(self, query: GradeQuery) -> dict[int, int]: ...


@dataclass
class GradingAuthority:
    """The single key holder of this version (see the module's threat model).

    ``GradingAuthority.generate(circuit)`` makes the keys; ``public`` is what it publishes.
    It decrypts only :class:`GradeQuery` objects and releases only rounded grades; it
    refuses a query whose other slots are not all (noisy) zeros, i.e. one the aggregator did
    not mask.
    """

    circuit: GradingCircuit
    secret: SecretContext
    decryptions: int = field(default=0)

    @classmethod
    def generate(
        cls, circuit: GradingCircuit, *, histograms: bool = False, n_threads: int = 1
    ) -> GradingAuthority:
        """Keys for ``circuit``; ``histograms=True`` also publishes the Galois keys of
        :func:`histogram_rotation_steps` (and only those: ``log2(n/2)`` keys, each as large
        as the relinearization key)."""
        steps = histogram_rotation_steps(circuit.slots) if histograms else ()
        return cls(
            circuit,
            generate(circuit.params, relin_keys=True, galois_steps=steps, n_threads=n_threads),
        )

    def decrypt_histogram(self, query: HistogramQuery) -> dict[str, int]:
        """Decrypt and round the noisy per-grade counts (labels lowest first).

        Raises :class:`KeyMismatch` for another context's query and :class:`InvalidMessage`
        for bytes that are not ciphertexts of this context.
        """
        if query.fingerprint != self.secret.fingerprint:
            raise KeyMismatch("histogram query was made under a different context")
        if len(query.ciphertexts) != len(self.circuit.labels):
            raise InvalidMessage("histogram query has the wrong number of bins")
        out: dict[str, int] = {}
        for label, data in zip(self.circuit.labels, query.ciphertexts, strict=True):
            try:
                ct = ts.ckks_vector_from(self.secret.context, data)
                value = float(ct.decrypt(self.secret.context.secret_key())[0])
            except Exception:
                raise InvalidMessage("histogram bin is not a valid ciphertext") from None
            out[label] = round(value)
        self.decryptions += 1
        return out

    @property
    def public(self) -> PublicContext:
        return self.secret.public

    def decrypt_grades(self, query: GradeQuery) -> dict[int, int]:
        """Decrypt, round, check and release ``{slot: grade index}``.

        Raises :class:`KeyMismatch` for a query under another context,
        :class:`InvalidMessage` for bytes that are not a ciphertext or values that are not
        grades, :class:`PolicyViolation` for an unmasked query.
        """
        if query.fingerprint != self.secret.fingerprint:
            raise KeyMismatch("grade query was made under a different context")
        try:
            ct = ts.ckks_vector_from(self.secret.context, query.ciphertext)
            vals = np.asarray(ct.decrypt(self.secret.context.secret_key()), dtype=np.float64)
        except Exception:
            raise InvalidMessage("grade query is not a valid ciphertext for this context") from None
        self.decryptions += 1
        rounded = np.rint(vals).astype(np.int64)
        S = self.circuit.slots
        local = [s - query.part * S for s in query.slots]
        if any(not 0 <= i < vals.size for i in local):
            raise InvalidMessage("grade query slots are outside the ciphertext")
        others = np.ones(vals.size, dtype=bool)
        others[local] = False
        if np.any(rounded[others] != 0):
            raise PolicyViolation("grade query is not masked to the requested slots; refused")
        top = len(self.circuit.labels) - 1
        out = {s: int(rounded[i]) for s, i in zip(query.slots, local, strict=True)}
        if any(not 0 <= g <= top for g in out.values()):
            raise InvalidMessage("decrypted value is not a grade")
        return out


# ----------------------------------------------------------------------------------------
# grade histogram with distributed DP noise


@dataclass(frozen=True)
class HistogramQuery:
    """Aggregator -> authority: one flooded ciphertext per grade (lowest first) holding the
    district's count of that grade plus the key holders' DP noise shares, in slot 0."""

    fingerprint: bytes
    district_size: int
    ciphertexts: tuple[bytes, ...]


def histogram_rotation_steps(slots: int) -> tuple[int, ...]:
    """Rotation steps of a slot sum over the whole ``slots``-slot cycle: ``1, 2, ...,
    slots/2``.  Summing over the whole cycle leaves the total in *every* slot; a shorter
    sum would leave partial window sums in the other slots, from which the decryptor could
    read single subjects' indicators."""
    return tuple(1 << i for i in range(max(0, math.ceil(math.log2(max(slots, 1))))))


def encrypt_noise_shares(
    public: PublicContext, bins: int, sampler: Callable[[], int]
) -> list[TensealCiphertext]:
    """A key holder's DP noise share: one encrypted integer per histogram bin.

    ``sampler`` draws one integer from a sum-closed distribution (e.g.
    ``lambda: psc.dp.sampling.sample_skellam(Fraction(var, k))`` for ``k`` holders, so the
    shares sum to Skellam noise of variance ``var``); its randomness is the caller's seam.
    """
    be = CkksBackend(public)
    out = []
    for _ in range(bins):
        z = int(sampler())
        # replicated in every slot: the bin total is in every slot too
        out.append(be.encrypt(np.full(be.slots, z, dtype=np.int64), bound=max(1, abs(z))))
    return out


def encrypted_histogram(
    grader: HomomorphicGrader,
    scores: TensealCiphertext,
    caps: Mapping[str, TensealCiphertext],
    district: Sequence[int],
    noise_shares: Sequence[Sequence[TensealCiphertext]],
    *,
    rng: np.random.Generator | None = None,
) -> HistogramQuery:
    """The district's grade histogram under encryption, DP noise added, flooded (aggregator).

    The capped indicators form a thermometer code: ``T_j = [grade > j]`` is
    ``ind_j`` for thresholds below the first cap and ``keep * ind_j`` above it, so bin
    ``g`` is ``T_{g-1} - T_g`` (with ``T_{-1} = 1`` and ``T_{G-1} = 0``), masked to the
    district's slots and slot-summed with rotations over the whole slot cycle (Galois keys
    for :func:`histogram_rotation_steps` only), which leaves the total in every slot.  Each
    key holder's encrypted integer noise share (:func:`encrypt_noise_shares`, replicated in
    every slot) is added under encryption, then one flooding draw (sigma 1/16, the same in
    every slot) hides the approximation residue; only these sums are decrypted.
    Catalogs with more than one cap level are refused (:class:`ParameterError`).
    """
    circ, ev = grader.circuit, grader._ev
    if len(circ.cap_levels) > 1:
        raise ParameterError("the encrypted histogram supports at most one cap level")
    G = len(circ.labels)
    if any(len(shares) != G for shares in noise_shares):
        raise ValueError(f"each noise share must hold {G} encrypted integers")
    part, mask = grader._mask(scores, caps, district)
    prep = grader.prepare(scores, caps, part)
    therm: list[Any] = []
    for j, ind in enumerate(prep.ind):
        if j in prep.segs[0]:
            therm.append(ind.ct * (mask / (ind.factor * ev.r(ind.level))).tolist())
        else:
            therm.append(grader._times(prep.keeps[0], ind, mask).ct)
    S = circ.slots
    # slot sums over the whole cycle: counts of grade > j, in every slot
    sums = [ckks_vector_with_size(t.sum(), S, grader.public.context) for t in therm]
    bins: list[Any] = []
    for g in range(G):
        if g == 0:
            b = sums[0].neg() + float(len(district))
        elif g < G - 1:
            b = sums[g - 1] - sums[g]
        else:
            b = sums[G - 2]
        for shares in noise_shares:
            if shares[g].fingerprint != grader.public.fingerprint:
                raise KeyMismatch("a noise share was encrypted under a different context")
            if shares[g].n_values != S or shares[g].unit != 1.0:
                raise ValueError("noise shares must come from encrypt_noise_shares()")
            b = b + shares[g].parts[0]
        # one flooding draw for the whole vector: every slot carries the same total, so
        # independent draws would average out
        noise = np.full(S, _flood_noise(1, rng)[0])
        bins.append((b + noise.tolist()).serialize())
    return HistogramQuery(grader.public.fingerprint, len(district), tuple(bins))


# ----------------------------------------------------------------------------------------
# reference driver


@dataclass(frozen=True)
class HeRevealResult:
    """What :func:`grade_with_he` produced and what each party saw."""

    grades: dict[int, int]
    seen: dict[str, list[str]]
    circuit: GradingCircuit


def live_inputs(table: EventTable, at: int) -> tuple[dict[str, IntArray], dict[str, IntArray]]:
    """The dense vectors the homomorphic path grades at the close of period ``at``.

    Returns ``({"<agency>/<period>/<class>": deltas}, {cap label: live counter})``: one
    submission per (agency, period, retention class) with live events, as agencies would have
    sent them and the aggregator kept them live, and the cap counters summed over live
    (period, class) accumulators.  (Dense zero vectors of quiet agencies add nothing and are
    left out.)
    """
    cat = table.catalog
    live = table.select(live_mask(table, at)) if len(table) else table
    subs: dict[str, IntArray] = {}
    for agency in cat.agencies:
        mine = live.for_agency(agency)
        for p in mine.periods:
            for cls, v in mine.delta_vectors(p).items():
                if np.any(v):
                    subs[f"{agency}/{p}/{cls}"] = v
    if not subs:
        subs["none"] = np.zeros(table.n_subjects, dtype=np.int64)
    caps = {lab: np.zeros(table.n_subjects, dtype=np.int64) for lab in cat.cap_labels()}
    for p in live.periods:
        for (_, lab), v in live.cap_vectors(p).items():
            caps[lab] += v
    return subs, caps


def grade_with_he(
    catalog: Catalog,
    submissions: Mapping[str, IntArray],
    cap_counters: Mapping[str, IntArray],
    subjects: Sequence[int],
    *,
    authority: GradingAuthority | None = None,
    rng: np.random.Generator | None = None,
) -> HeRevealResult:
    """Grade ``subjects`` with the homomorphic path, end to end (reference driver).

    ``submissions``: each contributor's dense vector of *live* deltas (see
    :func:`live_inputs`); ``cap_counters``: the live cap counter per cap label (dense).
    Public bounds are the catalog's (never the data's).  Phases:

    1. setup: the grading authority generates keys and publishes the public context;
    2. agencies encrypt their vectors under the public context;
    3. the aggregator sums them, runs the circuit once per block of subjects, and makes one
       masked, flooded query per subject;
    4. the authority decrypts each query and releases the rounded grade.
    """
    circuit = authority.circuit if authority is not None else GradingCircuit.for_catalog(catalog)
    auth = authority if authority is not None else GradingAuthority.generate(circuit)
    seen: dict[str, list[str]] = {
        "agencies": [f"the public context ({auth.public.byte_size} bytes) and their own records"],
        "aggregator": [],
        "grading-authority": [],
        "relying-party": [],
    }
    grader = HomomorphicGrader(circuit, auth.public)
    score_bound = worst_case_sum(catalog)
    cap_bound = round(circuit.cap_unit + 0.5)
    score_cts = [grader.scores.encrypt(v, bound=score_bound) for v in submissions.values()]
    scores = grader.scores.sum(score_cts)
    caps = {
        lab: grader.caps.encrypt(cap_counters[lab], bound=cap_bound)
        for lab, _ in circuit.cap_levels
    }
    seen["aggregator"].append(
        f"{len(score_cts)} score ciphertexts and {len(caps)} cap-counter ciphertexts "
        f"({sum(grader.scores.byte_size(c) for c in score_cts)} bytes of scores), the "
        "evaluation keys; no secret key, nothing in the clear"
    )
    grades: dict[int, int] = {}
    # one query per subject (the authority sees one grade at a time); the circuit runs once
    for q in grader.grade_many(scores, caps, [[s] for s in sorted(set(subjects))], rng=rng):
        (slot,) = q.slots
        seen["grading-authority"].append(
            f"slot {slot}: a {len(q.ciphertext)}-byte flooded ciphertext; released one grade"
        )
        grades.update(auth.decrypt_grades(q))
        seen["relying-party"].append(f"slot {slot}: grade {circuit.labels[grades[slot]]}")
    return HeRevealResult(grades, seen, circuit)


def grade_table_with_he(
    table: EventTable,
    at: int,
    subjects: Sequence[int],
    *,
    authority: GradingAuthority | None = None,
    rng: np.random.Generator | None = None,
) -> HeRevealResult:
    """:func:`grade_with_he` on an event table at the close of period ``at`` (demo entry)."""
    subs, caps = live_inputs(table, at)
    return grade_with_he(table.catalog, subs, caps, subjects, authority=authority, rng=rng)


#: A small catalog whose raw-score domain [6, 12] fits :data:`SMALL_PROFILE` (ratio 11 <= 12):
#: the circuit at N=16384 runs in seconds, so tests and vectors use it.  Not a real scheme.
SMALL_TEST_CATALOG = """
[scheme]
name = "he-small-test"
version = "1"
domain = "public-credit"
subject_kind = "person"
base_score = 10
min_score = 0
max_score = 20
purposes = ["credit-assessment"]
rule_domains = ["traffic", "civic"]

[[grades]]
label = "A"
min = 11.5

[[grades]]
label = "B"
min = 9.5

[[grades]]
label = "C"
min = 7.5

[[grades]]
label = "D"

[retention.month]
months = 1

[[rules]]
id = "traffic.ticket"
agency = "transport-bureau"
description = "Traffic ticket confirmed by a penalty decision"
delta = -1
domain = "traffic"
purpose = "road-safety compliance record"
legal_basis = "statutory-duty"
legal_authority = "Road Traffic Safety Law, Art. 87"
evidence_required = true
retention = "month"
data_categories = ["administrative-penalty"]
severity = "minor"
max_per_period = 2

[[rules]]
id = "traffic.drunk-driving"
agency = "transport-bureau"
description = "Penalty decision for driving under the influence of alcohol"
delta = -2
domain = "traffic"
purpose = "road-safety compliance record"
legal_basis = "statutory-duty"
legal_authority = "Road Traffic Safety Law, Art. 91"
evidence_required = true
retention = "month"
data_categories = ["administrative-penalty"]
severity = "serious"
max_per_period = 1
grade_cap = "C"

[[rules]]
id = "civic.volunteering"
agency = "civil-affairs-bureau"
description = "Certified volunteer service of at least 20 hours"
delta = 1
domain = "civic"
purpose = "recognition of voluntary service"
legal_basis = "consent"
legal_authority = "Regulations on Volunteer Service, Art. 22"
evidence_required = true
retention = "month"
data_categories = ["voluntary-service"]
severity = "positive"
max_per_period = 2
"""
