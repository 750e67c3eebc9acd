"""Shard plans: contiguous ranges of ciphertext blocks, and packed ciphertexts cut along them.

A dense vector of ``N`` subject slots is packed into ``B = ceil(N / S)`` blocks of ``S``
slots (:class:`~psc.hazmat.packing.SlotLayout`).  Block ``j`` depends only on slots
``[j S, (j + 1) S)``, so a packed ciphertext splits into independent pieces along block
boundaries, and ciphertext arithmetic on the pieces equals arithmetic on the whole::

    split(E(x) * E(y)) = [E(x_i) * E(y_i) for each shard i],   merge(split(c)) = c

Shard ``i`` of ``k`` holds blocks ``[floor(i B / k), floor((i + 1) B / k))``: sizes differ by at
most one block.  What leaks: nothing beyond the unsharded ciphertext (the plan is public).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gmpy2 import mpz

from psc.exceptions import KeyMismatch, ParameterError
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.hazmat.packing import SlotLayout


@dataclass(frozen=True)
class ShardPlan:
    """``shards`` contiguous block ranges over ``n_values`` slots packed with ``layout``.

    Raises :class:`ParameterError` unless ``1 <= shards <= blocks``.
    """

    layout: SlotLayout
    n_values: int
    shards: int

    def __post_init__(self) -> None:
        if self.n_values < 1:
            raise ParameterError("a shard plan needs at least one subject slot")
        if not 1 <= self.shards <= self.blocks:
            raise ParameterError(
                f"{self.shards} shards for {self.blocks} blocks: need 1 <= shards <= blocks"
            )

    @property
    def blocks(self) -> int:
        return self.layout.blocks(self.n_values)

    def block_range(self, shard: int) -> range:
        """The blocks shard ``shard`` holds."""
        if not 0 <= shard < self.shards:
            raise ParameterError(f"shard {shard} outside [0, {self.shards})")
        b, k = self.blocks, self.shards
        return range(shard * b // k, (shard + 1) * b // k)

    def slot_range(self, shard: int) -> range:
        """The subject slots shard ``shard`` covers."""
        r, s = self.block_range(shard), self.layout.slots
        return range(r.start * s, min(r.stop * s, self.n_values))

    def shard_of_slot(self, slot: int) -> int:
        """The shard holding subject slot ``slot``."""
        if not 0 <= slot < self.n_values:
            raise ParameterError(f"slot {slot} outside [0, {self.n_values})")
        block = slot // self.layout.slots
        # the largest i with floor(i B / k) <= block
        return -(-(block + 1) * self.shards // self.blocks) - 1

    def split(self, ct: PackedCiphertext) -> list[PackedCiphertext]:
        """``ct`` cut into one ciphertext per shard (same key, layout and bound).  Raises
        :class:`KeyMismatch` for a ciphertext of another layout or length."""
        self._check(ct)
        out = []
        for i in range(self.shards):
            r = self.block_range(i)
            out.append(
                PackedCiphertext(
                    ct.key_fingerprint,
                    ct.layout,
                    len(self.slot_range(i)),
                    ct.bound,
                    ct.blocks[r.start : r.stop],
                )
            )
        return out

    def merge(self, parts: Sequence[PackedCiphertext]) -> PackedCiphertext:
        """The inverse of :meth:`split`.  Raises :class:`KeyMismatch` if the parts do not
        share one key, layout and bound or do not match the plan's shard sizes."""
        if len(parts) != self.shards:
            raise KeyMismatch(f"{len(parts)} parts for a plan of {self.shards} shards")
        first = parts[0]
        blocks: list[mpz] = []
        for i, p in enumerate(parts):
            if (p.key_fingerprint, p.layout, p.bound) != (
                first.key_fingerprint,
                first.layout,
                first.bound,
            ):
                raise KeyMismatch("shard parts differ in key, layout or bound")
            if p.n_values != len(self.slot_range(i)) or len(p.blocks) != len(self.block_range(i)):
                raise KeyMismatch(f"part {i} does not have shard {i}'s size")
            blocks.extend(p.blocks)
        return PackedCiphertext(
            first.key_fingerprint, first.layout, self.n_values, first.bound, tuple(blocks)
        )

    def _check(self, ct: PackedCiphertext) -> None:
        if ct.layout != self.layout or ct.n_values != self.n_values:
            raise KeyMismatch(
                f"ciphertext of {ct.n_values} slots in {ct.layout} does not fit a plan of "
                f"{self.n_values} slots in {self.layout}"
            )
