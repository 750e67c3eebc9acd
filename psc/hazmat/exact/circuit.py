"""The exact grade circuit under BFV (hazmat): :mod:`psc.hazmat.exact.polynomial` evaluated on
encrypted slots with baby-step giant-step (Paterson and Stockmeyer, "On the number of
nonscalar multiplications necessary to evaluate polynomials", SIAM J. Comput. 1973).

A polynomial of degree ``d`` is cut into ``m = ceil((d + 1) / k)`` chunks of ``k``
coefficients; the baby steps ``x, x^2, ..., x^k`` cost ``k - 1`` ciphertext products, each
chunk only scalar products and additions, and the chunks are combined by a balanced tree
over the giant steps ``y = x^k, y^2, y^4, ...``: ``p = low + y^h high`` (``h`` the largest
power of two below the number of chunks).  Nonscalar products: about ``k + m + log2 m``;
depth ``ceil(log2 k) + ceil(log2 m)`` (plus one for the caps).  Every subject is one of
the ``N`` batching slots, so the cost is per ciphertext, not per subject.

Determinism: SEAL's evaluator draws no randomness, so every member evaluating the same
inputs with the same keys gets bit-identical ciphertexts (:func:`digest`), which is what
binds a decryption share to a ciphertext the member computed itself.

What leaks: nothing to the evaluator (it sees ciphertexts only).  The output ciphertext's
noise depends on the inputs and the secret key; :mod:`psc.hazmat.exact.threshold` smudges it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as seal

from psc.hazmat.exact.polynomial import I64, GradePolynomials
from psc.hazmat.exact.ring import Ring
from psc.hazmat.exact.seal_io import raw


def digest(ring: Ring, ct: Any) -> bytes:
    """SHA-256 over the ring fingerprint and SEAL's uncompressed ciphertext stream."""
    return hashlib.sha256(b"psc/exact/ct/v1" + ring.fingerprint() + raw(ct)).digest()


def _const(c: int) -> Any:
    return seal.Plaintext(format(c, "X"))


@dataclass
class _Val:
    """A ciphertext, or a public constant (``ct is None``), plus a constant term."""

    ct: Any
    const: int


def baby_size(degree: int) -> int:
    """The power of two ``k`` minimising ``k + ceil((degree + 1) / k)``."""
    best, best_cost = 1, degree + 2
    k = 1
    while k <= degree + 1:
        cost = k + -(-(degree + 1) // k)
        if cost < best_cost:
            best, best_cost = k, cost
        k *= 2
    return best


class Evaluator:
    """Runs polynomials on ciphertexts with SEAL's evaluator and the collective
    relinearization key; counts products (``products``) for the benchmark."""

    def __init__(self, ring: Ring, relin_keys: Any) -> None:
        self.ring = ring
        self.rk = relin_keys
        self.ev = ring.evaluator
        self.products = 0

    def mul(self, a: Any, b: Any) -> Any:
        out = seal.Ciphertext()
        if a is b:
            self.ev.square(a, out)
        else:
            self.ev.multiply(a, b, out)
        self.ev.relinearize_inplace(out, self.rk)
        self.products += 1
        return out

    def scale(self, a: Any, c: int) -> Any:
        out = seal.Ciphertext()
        self.ev.multiply_plain(a, _const(c), out)
        return out

    def add(self, a: Any, b: Any) -> Any:
        out = seal.Ciphertext()
        self.ev.add(a, b, out)
        return out

    def add_const(self, a: Any, c: int) -> Any:
        t = self.ring.t
        if c % t == 0:
            return a
        out = seal.Ciphertext()
        self.ev.add_plain(a, _const(c % t), out)
        return out

    def powers(self, x: Any, k: int) -> list[Any]:
        """``[None, x, x^2, ..., x^k]`` at depth ``ceil(log2 i)`` each."""
        pw: list[Any] = [None, x]
        for i in range(2, k + 1):
            hi = 1 << (i.bit_length() - 1)
            if hi == i:
                pw.append(self.mul(pw[i // 2], pw[i // 2]))
            else:
                pw.append(self.mul(pw[hi], pw[i - hi]))
        return pw

    def polynomial(self, coeffs: I64, pw: list[Any], giants: list[Any]) -> _Val:
        """``p(x)`` from baby steps ``pw`` (``k = len(pw) - 1``) and giant steps
        ``giants[r] = x^(k 2^r)``."""
        k = len(pw) - 1
        t = self.ring.t
        chunks: list[_Val] = []
        for lo in range(0, len(coeffs), k):
            acc: Any = None
            for i, c in enumerate(coeffs[lo : lo + k]):
                c = int(c) % t
                if i == 0 or c == 0:
                    continue
                c = c - t if c > t // 2 else c  # centred: noise grows by |c| <= t/2
                term = pw[i] if c == 1 else self.scale(pw[i], c % t)
                acc = term if acc is None else self.add(acc, term)
            chunks.append(_Val(acc, int(coeffs[lo]) % t))
        return self._tree(chunks, giants)

    def _tree(self, chunks: list[_Val], giants: list[Any]) -> _Val:
        if len(chunks) == 1:
            return chunks[0]
        h = 1 << ((len(chunks) - 1).bit_length() - 1)
        low = self._tree(chunks[:h], giants)
        high = self._tree(chunks[h:], giants)
        g = giants[h.bit_length() - 1]
        prod: Any = None
        if high.ct is not None:
            prod = self.mul(high.ct, g)
        if high.const % self.ring.t:
            term = self.scale(g, high.const % self.ring.t)
            prod = term if prod is None else self.add(prod, term)
        if prod is None:
            return low
        ct = prod if low.ct is None else self.add(low.ct, prod)
        return _Val(ct, low.const)

    def giants(self, pw: list[Any], chunks: int) -> list[Any]:
        k = len(pw) - 1
        out = [pw[k]]
        while (1 << len(out)) < chunks:
            out.append(self.mul(out[-1], out[-1]))
        return out

    def materialise(self, v: _Val, like: Any) -> Any:
        if v.ct is None:
            zero = seal.Ciphertext()
            self.ev.sub(like, like, zero)
            return self.add_const(zero, v.const)
        return self.add_const(v.ct, v.const)


def grade_ciphertext(
    ring: Ring,
    relin_keys: Any,
    polys: GradePolynomials,
    live_sum: Any,
    cap_counts: Mapping[str, Any],
) -> tuple[Any, int]:
    """The encrypted grade of every slot: ``band(v) - sum_j ind_j prod_{i<j}(1 - ind_i)
    u_j(v)`` (see :mod:`psc.hazmat.exact.polynomial`); returns the ciphertext and the number of
    ciphertext products it took.

    ``live_sum`` encrypts each slot's live sum ``v`` (mod ``t``), ``cap_counts[label]`` its
    live count of events with that cap (an absent label counts 0 everywhere).  Slots outside the catalog's domain get an
    unspecified value (the domain is enforced upstream by the agencies' range proofs).
    """
    ev = Evaluator(ring, relin_keys)
    k = baby_size(polys.degree)
    pw = ev.powers(live_sum, k)
    chunks = -(-(polys.degree + 1) // k)
    giants = ev.giants(pw, chunks)
    grade = ev.materialise(ev.polynomial(polys.band, pw, giants), live_sum)
    free: Any = None  # prod_{i<j} (1 - ind_i), None meaning 1
    for label, take, ind in zip(polys.cap_labels, polys.cap_take, polys.cap_indicator, strict=True):
        if label not in cap_counts:  # no live event carries this cap: its indicator is 0
            continue
        c = cap_counts[label]
        kc = baby_size(len(ind) - 1)
        cpw = ev.powers(c, kc)
        cg = ev.giants(cpw, -(-len(ind) // kc))
        i_ct = ev.materialise(ev.polynomial(ind, cpw, cg), c)
        u_ct = ev.materialise(ev.polynomial(take, pw, giants), live_sum)
        gate = i_ct if free is None else ev.mul(free, i_ct)
        reduction = ev.mul(gate, u_ct)
        out = seal.Ciphertext()
        ev.ev.sub(grade, reduction, out)
        grade = out
        if len(polys.cap_labels) > 1:
            one_minus = ev.add_const(_negate(ev, i_ct), 1)
            free = one_minus if free is None else ev.mul(free, one_minus)
    return grade, ev.products


def _negate(ev: Evaluator, a: Any) -> Any:
    out = seal.Ciphertext()
    ev.ev.negate(a, out)
    return out


def encode(ring: Ring, values: I64) -> Any:
    """Slots (reduced mod ``t``; missing slots are 0) as a SEAL plaintext."""
    vals = np.zeros(ring.n, dtype=np.int64)
    vals[: len(values)] = np.asarray(values, dtype=np.int64) % ring.t
    pt = seal.Plaintext()
    ring.encoder.encode([int(x) for x in vals], pt)
    return pt
