"""The public structure of a range proof: digits, wide phases, sizes.  **Hazmat.**

Everything here follows from public inputs (the key, the slot layout, the block count, the
per-slot bounds and the digit size), so prover and verifier derive the same shape; see
:mod:`psc.hazmat.proofs.range` and ``protocols/proofs.md`` section 3 for the construction and the
argument behind each size (``z_bits``, ``wide_bits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import gmpy2
from gmpy2 import mpz

from psc.exceptions import ParameterError
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPublicKey

#: Bits of the challenge ``e`` and of each weight ``gamma_i``.
CHALLENGE_BITS = 128
#: Statistical hiding of each response ``z = a + e d``.
HIDING_BITS = 64
#: Default digit size ``d``: ranges up to ``2^d - 1`` are one digit (polynomial degree 2^d).
DEFAULT_DIGIT_BITS = 6
MAX_DIGIT_BITS = 8
DOMAIN = b"psc/proofs/range/v1"
_BOUND_BYTES = 16  # lo and hi in the transcript: signed 128-bit big-endian


def guaranteed_range(lo: int, hi: int) -> tuple[int, int]:
    """The range a verified proof guarantees for a slot proven in ``[lo, hi]``: exactly
    ``[lo, hi]`` (the technique has no slack)."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    return lo, hi


@dataclass(frozen=True)
class _Shape:
    """Everything about a proof's structure that follows from public inputs."""

    blocks: int
    slots: int  # S
    slot_bits: int  # w
    digit_bits: int  # d
    signs: tuple[int, ...]  # (+1,) or (+1, -1): decompositions v - lo, hi - v
    digits: int  # L per decomposition
    ranges: tuple[int, ...]  # per (block, sign, digit, slot) in that order: digit maximum
    phases: tuple[tuple[int, ...], ...]  # per phase r: the slot indices it packs
    wide_bits: int  # W = k w
    z_bits: int  # every response is below 2^z_bits
    degree: int  # D = max range + 1

    @property
    def wide_cts(self) -> int:
        return self.blocks * len(self.signs) * self.digits * len(self.phases)

    @property
    def relations(self) -> int:
        return self.blocks * len(self.signs)

    def wide_slot_ranges(self) -> list[int]:
        """Digit maximum for every wide slot, in wire order (block, sign, digit, phase, i')."""
        out: list[int] = []
        S = self.slots
        per_digit = S
        for q in range(self.blocks * len(self.signs) * self.digits):
            base = q * per_digit
            for phase in self.phases:
                out.extend(self.ranges[base + i] for i in phase)
        return out


def _shape(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    blocks: int,
    lo: Sequence[int],
    hi: Sequence[int],
    digit_bits: int,
) -> _Shape:
    if blocks < 1:
        raise ValueError("a range proof covers at least one block")
    if not 1 <= digit_bits <= MAX_DIGIT_BITS:
        raise ParameterError(f"digit_bits must be in 1..{MAX_DIGIT_BITS}, got {digit_bits}")
    S, w = layout.slots, layout.slot_bits
    total = blocks * S
    if len(lo) != len(hi) or len(lo) > total:
        raise ValueError(f"need one (lo, hi) per slot, at most {total}; got {len(lo)}, {len(hi)}")
    los = list(lo) + [0] * (total - len(lo))
    his = list(hi) + [0] * (total - len(hi))
    if any(a > b for a, b in zip(los, his, strict=True)):
        raise ValueError("every slot needs lo <= hi")
    widths = [b - a for a, b in zip(los, his, strict=True)]
    rmax = max(widths)
    top = layout.max_value
    if rmax < (1 << digit_bits):
        signs: tuple[int, ...] = (1,)
        L = 1
        ranges = tuple(widths)  # block-major: (block, sign=+1, digit 0, slot)
        span = 0
    else:
        signs = (1, -1)
        L = -(-rmax.bit_length() // digit_bits)
        span = 1 << (digit_bits * L)
        ranges = tuple([(1 << digit_bits) - 1] * (blocks * 2 * L * S))
    if any(abs(x) + span > top for x in los + his):
        raise ParameterError(
            f"bounds up to {max(abs(x) for x in los + his)} with {span} of decomposition "
            f"span do not fit {w}-bit slots (max {top}); use wider slots or tighter bounds"
        )
    dmax = max(ranges)
    z_bits = CHALLENGE_BITS + HIDING_BITS + max(1, dmax.bit_length()) + 1
    w_min = CHALLENGE_BITS + z_bits + 2  # |(e2-e1)(z3-z1) - (e3-e1)(z2-z1)| < 2^(W-1)
    nbits = public_key.bits
    if w_min > nbits - 1:
        raise ParameterError(f"a {nbits}-bit key is too small for range proofs")
    k = max(1, -(-w_min // w))
    while True:
        m = -(-S // k)
        if m == 1 or m * k * w <= nbits - 1:
            break
        k += 1
    phases = tuple(tuple(range(r, S, k)) for r in range(min(k, S)))
    return _Shape(blocks, S, w, digit_bits, signs, L, ranges, phases, k * w, z_bits, dmax + 1)


def _bounds_full(
    shape: _Shape, lo: Sequence[int], hi: Sequence[int]
) -> tuple[list[int], list[int]]:
    total = shape.blocks * shape.slots
    return list(lo) + [0] * (total - len(lo)), list(hi) + [0] * (total - len(hi))


def _pack_w(values: Sequence[int], bits: int) -> mpz:
    acc = mpz(0)
    for v in reversed(values):
        acc = (acc << bits) + v
    return acc


@lru_cache(maxsize=4096)
def _elementary(d: int, r: int) -> tuple[int, ...]:
    """Coefficients of ``prod_(t=0..r) (1 + (d - t) X)``: ``sigma_k`` of ``{d, d-1, .., d-r}``."""
    coeffs = [1]
    for t in range(r + 1):
        u = d - t
        nxt = [*coeffs, 0]
        for k in range(len(coeffs), 0, -1):
            nxt[k] += u * coeffs[k - 1]
        coeffs = nxt
    return tuple(coeffs)


def _horner_pow(values: Sequence[mpz], step_bits: int, modulus: mpz) -> mpz:
    """``prod_r values[r]^(2^(step_bits r)) mod modulus`` by Horner's rule."""
    acc = mpz(1)
    for v in reversed(values):
        if acc != 1:
            acc = gmpy2.powmod(acc, 1 << step_bits, modulus)
        acc = acc * v % modulus
    return acc


def _combine(shape: _Shape, per_digit_phase: Sequence[mpz], modulus: mpz) -> mpz:
    """``prod_(l,r) Y_(l,r)^(2^(d l) 2^(w r))`` for one relation (inputs in (digit, phase) order)."""
    P = len(shape.phases)
    by_phase = []
    for r in range(P):
        ys = [per_digit_phase[li * P + r] for li in range(shape.digits)]
        by_phase.append(_horner_pow(ys, shape.digit_bits, modulus))
    return _horner_pow(by_phase, shape.slot_bits, modulus)


def _phase_lengths(shape: _Shape) -> list[int]:
    lens = [len(p) for p in shape.phases]
    return lens * (shape.blocks * len(shape.signs) * shape.digits)
