"""Slot layout: many subjects' signed deltas packed into one Paillier plaintext.

Layout (normative: ``protocols/packing.md``).  A block of ``S`` signed values
``v_0 .. v_{S-1}``, each ``|v_i| <= 2^(w-1) - 1``, is the integer

    M = sum_i v_i * 2^(w*i)         (a balanced base-2^w number, ``|M| < 2^(w*S - 1)``)

and the Paillier plaintext is ``m = M mod n``.  Because packing is linear,
``pack(x) + pack(y) = pack(x + y)`` as long as every slot of the sum stays within
``2^(w-1) - 1``: adding ciphertexts adds all slots at once, negative deltas included,
with no per-contribution offset to track.  Decoding lifts ``m`` to ``(-n/2, n/2)`` and
peels balanced digits; it fails (never silently wraps) if any slot leaves its range, if
bits remain above slot ``S-1``, or if a padding slot is non-zero.

**Why overflow cannot happen.**  Every ciphertext carries a public ``bound`` on
``max |v_i|``: encryption sets it to the contributor's declared bound (values above it are
refused) and addition adds bounds.  An addition whose bound would exceed
``2^(w-1) - 1`` is refused with :class:`~psc.exceptions.OverflowRisk`.  So a sum that
decrypts is exact, by induction on the number of additions.  ``w`` is sized from the
catalog (:meth:`SlotLayout.for_catalog`) so that every lawful sum fits:

    T = multiplicity * sum over rules r of periods(r) * max_per_period(r) * |delta(r)|
    w = max(2, bitlen(T) + 1 + headroom_bits)

``S = (key_bits - 1 - GUARD_BITS) // w``: the top ``GUARD_BITS`` (64) of the plaintext
space stay empty, so an altered ciphertext (a near-uniform plaintext) decodes into range
with probability below ``2^-64``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psc.catalog import Catalog
from psc.exceptions import InvalidMessage, OverflowRisk, ParameterError
from psc.hazmat.backends.base import IntArray

GUARD_BITS = 64
MAX_SLOT_BITS = 62  # values travel as int64; |v| <= 2^61 - 1


@dataclass(frozen=True)
class SlotLayout:
    """``slot_bits`` (w) bits per slot, ``slots`` (S) slots per plaintext."""

    slot_bits: int
    slots: int

    def __post_init__(self) -> None:
        if not 2 <= self.slot_bits <= MAX_SLOT_BITS:
            raise ParameterError(f"slot_bits must be in 2..{MAX_SLOT_BITS}, got {self.slot_bits}")
        if self.slots < 1:
            raise ParameterError("a layout needs at least one slot per plaintext")

    @property
    def max_value(self) -> int:
        """Largest ``|v|`` a slot can hold: ``2^(w-1) - 1``."""
        return (1 << (self.slot_bits - 1)) - 1

    @property
    def plaintext_bits(self) -> int:
        return self.slot_bits * self.slots

    def blocks(self, n_values: int) -> int:
        """Plaintexts needed for a dense vector of ``n_values``."""
        return max(1, -(-n_values // self.slots))

    @classmethod
    def for_key(cls, key_bits: int, slot_bits: int) -> SlotLayout:
        """As many ``slot_bits`` slots as fit under a ``key_bits`` modulus with the guard."""
        slots = (key_bits - 1 - GUARD_BITS) // slot_bits
        if slots < 1:
            raise ParameterError(
                f"a {key_bits}-bit key cannot hold one {slot_bits}-bit slot plus guard"
            )
        return cls(slot_bits, slots)

    @classmethod
    def for_catalog(
        cls,
        catalog: Catalog,
        key_bits: int,
        *,
        periods: int | None = None,
        multiplicity: int = 1,
        headroom_bits: int = 0,
        slot_bits: int | None = None,
    ) -> SlotLayout:
        """The layout for a catalog: every lawful sum of contributions fits, by construction.

        ``periods`` is how many periods of contributions may be summed before decryption
        (default: each rule's retention in months, i.e. only live accumulators are summed);
        ``multiplicity`` is how many agencies apply the same rules (e.g. several district
        courts); ``headroom_bits`` reserves room above the worst case (noise, masks).
        Passing ``slot_bits`` checks a requested width instead of deriving it and raises
        :class:`OverflowRisk` when it cannot rule out overflow.
        """
        need = worst_case_sum(catalog, periods=periods, multiplicity=multiplicity)
        # at least 2 bits: a catalog of pure grade caps (every delta 0) still needs a slot
        w_min = max(2, need.bit_length() + 1 + headroom_bits)
        if slot_bits is not None and slot_bits < w_min:
            raise OverflowRisk(
                f"{slot_bits}-bit slots cannot rule out overflow: the catalog's worst-case sum "
                f"is {need} (needs {w_min} bits with sign and {headroom_bits} headroom bits); "
                f"use slot_bits >= {w_min} or sum fewer periods"
            )
        w = slot_bits if slot_bits is not None else w_min
        if w > MAX_SLOT_BITS:
            raise OverflowRisk(
                f"the worst-case sum {need} needs {w} bits per slot, above the {MAX_SLOT_BITS}-bit "
                "maximum; lower max_per_period, periods or multiplicity"
            )
        return cls.for_key(key_bits, w)

    # -- encoding ----------------------------------------------------------------------
    def _offset(self) -> int:
        # sum_i 2^(w-1) * 2^(w*i): turns balanced digits into plain ones.  Closed form of
        # the geometric series (exact division): one big-int op instead of S shifts and adds.
        w = self.slot_bits
        return ((1 << (w * self.slots)) - 1) // ((1 << w) - 1) << (w - 1)

    def pack(self, values: IntArray) -> int:
        """``sum_i v_i 2^(w i)`` for one block (``len(values) <= S``); a signed integer.

        Raises ``ValueError`` when a value does not fit a slot.
        """
        v = np.asarray(values, dtype=np.int64)
        if v.size > self.slots:
            raise ValueError(f"a block holds {self.slots} values, got {v.size}")
        if v.size and int(np.abs(v).max()) > self.max_value:
            raise OverflowRisk(f"a value exceeds the slot range +-{self.max_value}")
        w = self.slot_bits
        digits = np.full(self.slots, 1 << (w - 1), dtype=np.uint64)  # padding slots hold 0
        digits[: v.size] = (v + (1 << (w - 1))).astype(np.uint64)
        bits = ((digits[:, None] >> np.arange(w, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
        plain = int.from_bytes(np.packbits(bits.reshape(-1), bitorder="little").tobytes(), "little")
        return plain - self._offset()

    def unpack(self, m: int, n: int, count: int, bound: int) -> IntArray:
        """Decode plaintext ``m`` in ``[0, n)`` into ``count`` values, each ``|v| <= bound``.

        Raises :class:`InvalidMessage` when the plaintext is not a valid block (an altered
        ciphertext, the wrong key, or an overflow), so a bad decryption is never returned.
        """
        signed = m - n if m > n // 2 else m
        plain = signed + self._offset()
        if not 0 <= plain < (1 << self.plaintext_bits):
            raise InvalidMessage("decrypted plaintext is outside the slot layout")
        w = self.slot_bits
        nbytes = (self.plaintext_bits + 7) // 8
        bits = np.unpackbits(
            np.frombuffer(int(plain).to_bytes(nbytes, "little"), dtype=np.uint8), bitorder="little"
        )[: self.plaintext_bits].reshape(self.slots, w)
        digits = (bits.astype(np.uint64) << np.arange(w, dtype=np.uint64)).sum(axis=1)
        values = digits.astype(np.int64) - (1 << (w - 1))
        if np.abs(values).max() > bound or np.any(values[count:] != 0):
            raise InvalidMessage("decrypted slots are outside their declared bound")
        out: IntArray = values[:count]
        return out


def worst_case_sum(catalog: Catalog, *, periods: int | None = None, multiplicity: int = 1) -> int:
    """Largest ``|sum|`` of lawful contributions one slot can accumulate (see module doc)."""
    if multiplicity < 1:
        raise ParameterError("multiplicity must be at least 1")
    if periods is not None and periods < 1:
        raise ParameterError("periods must be at least 1")
    total = 0
    for r in catalog.rules:
        p = periods if periods is not None else catalog.retention[r.retention].months
        total += p * r.max_per_period * abs(r.delta)
    return multiplicity * total
