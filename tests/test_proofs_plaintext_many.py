"""Several plaintext proofs verified as one batch (psc.hazmat.proofs.plaintext.verify_plaintexts_many).

Completeness for honest proofs under their own contexts; soundness: a batch fails as soon
as any one proof in it is for another context, another ciphertext, or a scaled one, and
(seeded) a batch of honest proofs never fails.
"""

from __future__ import annotations

import random

import gmpy2
import numpy as np
import pytest

from psc.exceptions import InvalidProof
from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.proofs.plaintext import PlaintextProof, prove_plaintexts, verify_plaintexts_many
from psc.testing import insecure_keypair

PK, _ = insecure_keypair(0, 512)


def _proved(seed: int, context: bytes, blocks: int = 3) -> tuple[list[int], PlaintextProof]:
    rng = random.Random(seed)
    pool = RandomnessPool(PK, randbelow=rng.randrange)
    be = PackedPaillier(PK, SlotLayout.for_key(PK.bits, 12), pool=pool, allow_insecure_key=True)
    values = np.array([rng.randrange(-900, 900) for _ in range(blocks * be.layout.slots)])
    ct, openings = be.encrypt_with_openings(values, bound=900)
    cts = [int(c) for c in ct.blocks]
    return cts, prove_plaintexts(PK, cts, openings, context, randbelow=rng.randrange)


def _batch(n: int) -> list[tuple[list[int], PlaintextProof, bytes]]:
    out = []
    for i in range(n):
        ctx = f"member/{i}".encode()
        cts, proof = _proved(i, ctx, blocks=1 + i % 3)
        out.append((cts, proof, ctx))
    return out


@pytest.mark.parametrize("size", [1, 2, 5])
def test_honest_proofs_verify_together(size: int) -> None:
    rng = random.Random(size)
    verify_plaintexts_many(PK, _batch(size), randbelow=rng.randrange)


@pytest.mark.parametrize("bad", ["context", "swap", "scaled"])
def test_one_bad_proof_fails_the_whole_batch(bad: str) -> None:
    items = _batch(4)
    cts, proof, ctx = items[2]
    if bad == "context":
        items[2] = (cts, proof, b"another task")
    elif bad == "swap":
        items[2] = (items[1][0][:1] + cts[1:], proof, ctx)
    else:
        scaled = [int(gmpy2.powmod(cts[0], 3, PK.nsquare)), *cts[1:]]
        items[2] = (scaled, proof, ctx)
    for seed in range(5):  # any choice of batching exponents
        with pytest.raises(InvalidProof):
            verify_plaintexts_many(PK, items, randbelow=random.Random(seed).randrange)


def test_an_empty_batch_is_a_caller_mistake() -> None:
    with pytest.raises(ValueError):
        verify_plaintexts_many(PK, [])
