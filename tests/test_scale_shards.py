"""Shard plans: contiguous, balanced block ranges; split then merge is the identity, and
ciphertext arithmetic commutes with splitting."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psc.exceptions import KeyMismatch, ParameterError
from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.scale.shards import ShardPlan
from psc.testing import delta_vectors

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]


@settings(max_examples=60)
@given(st.integers(1, 2000), st.integers(2, 60), st.data())
def test_plans_cover_every_block_once_and_balance(
    n: int, slot_bits: int, data: st.DataObject
) -> None:
    layout = SlotLayout.for_key(512, slot_bits)
    blocks = layout.blocks(n)
    k = data.draw(st.integers(1, blocks), label="shards")
    plan = ShardPlan(layout, n, k)
    ranges = [plan.block_range(i) for i in range(k)]
    assert [b for r in ranges for b in r] == list(range(blocks))
    assert max(map(len, ranges)) - min(map(len, ranges)) <= 1
    slots = [s for i in range(k) for s in plan.slot_range(i)]
    assert slots == list(range(n))
    for s in {0, n - 1, data.draw(st.integers(0, n - 1), label="slot")}:
        assert s in plan.slot_range(plan.shard_of_slot(s))


def test_plans_refuse_bad_sizes() -> None:
    layout = SlotLayout.for_key(512, 16)
    with pytest.raises(ParameterError):
        ShardPlan(layout, 0, 1)
    with pytest.raises(ParameterError):
        ShardPlan(layout, 10, 2)  # 10 slots are one block
    plan = ShardPlan(layout, 100, 2)
    with pytest.raises(ParameterError):
        plan.block_range(2)
    with pytest.raises(ParameterError):
        plan.shard_of_slot(100)


@settings(max_examples=15)
@given(delta_vectors(size=200, bound=500, min_size=60), st.integers(1, 4), st.integers(0, 2**32))
def test_split_merge_and_sums_commute(vector: np.ndarray, shards: int, seed: int) -> None:
    from psc.testing import insecure_keypair

    pk, sk = insecure_keypair(0, 512)
    layout = SlotLayout.for_key(pk.bits, 14)
    be = PackedPaillier(
        pk,
        layout,
        pool=RandomnessPool(pk, randbelow=random.Random(seed).randrange),
        allow_insecure_key=True,
    )
    plan = ShardPlan(layout, int(vector.size), min(shards, layout.blocks(int(vector.size))))
    a, b = be.encrypt(vector, bound=500), be.encrypt(-vector, bound=500)
    assert plan.merge(plan.split(a)) == a
    # the sum of the parts, merged, is the sum of the wholes (the same integers)
    parts = [
        PackedPaillier(pk, layout, allow_insecure_key=True).sum([x, y])
        for x, y in zip(plan.split(a), plan.split(b), strict=True)
    ]
    assert plan.merge(parts).blocks == be.sum([a, b]).blocks
    assert be.decrypt(plan.merge(parts), sk).tolist() == [0] * int(vector.size)


def test_merge_refuses_mismatched_parts(test_keypair: Keypair, other_keypair: Keypair) -> None:
    pk = test_keypair[0]
    layout = SlotLayout.for_key(pk.bits, 16)
    be = PackedPaillier(pk, layout, allow_insecure_key=True)
    plan = ShardPlan(layout, 100, 2)
    parts = plan.split(be.encrypt([1] * 100, bound=1))
    with pytest.raises(KeyMismatch):
        plan.merge(parts[:1])
    with pytest.raises(KeyMismatch):
        plan.merge([parts[0], parts[0]])
    with pytest.raises(KeyMismatch):
        plan.merge([parts[0], parts[1].with_bound(2)])
    with pytest.raises(KeyMismatch):
        plan.split(be.encrypt([1] * 99, bound=1))
