"""Evaluating the grading circuit on CKKS ciphertexts, with exact scale tracking (hazmat).

:class:`HomomorphicGrader` holds only a public context (relinearization keys included) and
turns encrypted live sums into an encrypted, masked grade.  It decrypts nothing and
releases nothing: in psc the grading authority runs it itself on inputs it recomputes from
its log (:mod:`psc.parties.grading_authority`), so no ciphertext made by anyone else is ever decrypted.

**Exact scale management.**  TenSEAL resets a ciphertext's scale to ``Delta`` after every
rescale by a prime ``q``, which multiplies the value by ``Delta/q`` (up to 5e-4 away from 1
at N=32768).  The evaluator tracks that factor for every intermediate ciphertext from the
prime chain (:func:`psc.hazmat.he.params.seal_primes`) and folds its inverse into the next scalar
or mask constant, so every polynomial is evaluated with exactly its coefficients.

**Cost per stage** (degree 7, depth 3): 5 ciphertext and 4 scalar multiplications:
``x2 = x*x``, ``x4 = x2*x2``, ``T0 = k0 x``, ``T1 = (k1 x) x2``, ``U = (k3 x) x2 + k2 x``,
``T23 = U x4``.  Decrypting an *unmasked, unflooded* output leaks scores near thresholds
and, per Li-Micciancio (EUROCRYPT 2021), the secret key: only benchmarks and tests do it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from psc.exceptions import ParameterError
from psc.hazmat.backends.bfv import TensealCiphertext
from psc.hazmat.backends.ckks import CkksBackend
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.composites import FloatArray, SignComposite
from psc.hazmat.he.contexts import PublicContext
from psc.hazmat.he.params import CkksParams


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
    """The published circuit on ciphertexts, with a public context only.

    ``masked(scores, caps, slots)`` gives the encrypted grades of ``slots`` (0 elsewhere);
    ``scores``/``caps`` are the backends inputs must be encrypted with (units ``H`` and
    ``Hc``, full parts).  Nothing it holds can decrypt.
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

    def prepare(
        self, scores: TensealCiphertext, caps: Mapping[str, TensealCiphertext], part: int
    ) -> _Prepared:
        """Run the expensive, mask-independent part of the circuit on ciphertext ``part``."""
        self._check_inputs(scores, caps)
        return self._prepare(
            scores.parts[part], {lab: caps[lab].parts[part] for lab, _ in self.circuit.cap_levels}
        )

    def masked(
        self,
        scores: TensealCiphertext,
        caps: Mapping[str, TensealCiphertext],
        slots: Sequence[int],
        prepared: _Prepared | None = None,
    ) -> tuple[int, Any, float]:
        """``(part, ciphertext, factor)``: the grades of ``slots`` (one part), 0 elsewhere.

        The ciphertext's decryption divided by ``factor`` approximates the grade in each
        requested slot and 0 in every other.  ``prepared`` reuses :meth:`prepare` of that
        part.  Raises ``ValueError`` for slots outside the vector or spread over parts.
        """
        part, mask = self._mask(scores, caps, slots)
        prep = prepared if prepared is not None else self.prepare(scores, caps, part)
        g = self._masked(prep, mask)
        return part, g.ct, g.factor

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
