"""Proof of plaintext knowledge (psc.hazmat.proofs.plaintext): completeness, soundness checks,
encoding, and the attack it exists for (a ciphertext derived from someone else's)."""

from __future__ import annotations

import random
from dataclasses import replace

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st

from psc.exceptions import InvalidMessage, InvalidProof
from psc.hazmat.backends.paillier import BlockOpening, PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.hazmat.proofs.multiexp import multi_exp
from psc.hazmat.proofs.plaintext import PlaintextProof, prove_plaintexts, verify_plaintexts
from psc.testing import insecure_keypair, paillier_keypairs

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
CTX = b"test/context"


def encrypted(
    keys: Keypair, values: list[int], seed: int = 0
) -> tuple[list[int], tuple[BlockOpening, ...], random.Random]:
    pk = keys[0]
    rng = random.Random(seed)
    pool = RandomnessPool(pk, randbelow=rng.randrange)
    be = PackedPaillier(pk, SlotLayout.for_key(pk.bits, 12), pool=pool, allow_insecure_key=True)
    ct, openings = be.encrypt_with_openings(np.array(values, dtype=np.int64))
    return [int(c) for c in ct.blocks], openings, rng


@pytest.fixture(scope="module")
def keys() -> Keypair:
    return insecure_keypair(0, 512)


@pytest.fixture(scope="module")
def proven(keys: Keypair) -> tuple[list[int], PlaintextProof]:
    cts, ops, rng = encrypted(keys, list(range(-40, 40)), seed=1)
    return cts, prove_plaintexts(keys[0], cts, ops, CTX, randbelow=rng.randrange)


@settings(max_examples=15)
@given(
    keys=paillier_keypairs(),
    values=st.lists(st.integers(-2047, 2047), min_size=1, max_size=200),
    seed=st.integers(0, 2**32),
)
def test_honest_proofs_verify(keys: Keypair, values: list[int], seed: int) -> None:
    cts, ops, rng = encrypted(keys, values, seed)
    proof = prove_plaintexts(keys[0], cts, ops, CTX, randbelow=rng.randrange)
    verify_plaintexts(keys[0], cts, proof, CTX, randbelow=rng.randrange)
    again = PlaintextProof.from_bytes(keys[0], proof.to_bytes(keys[0]), len(cts))
    assert again == proof
    verify_plaintexts(keys[0], cts, again, CTX)


def test_pool_randomness_gives_a_valid_proof(keys: Keypair) -> None:
    cts, ops, rng = encrypted(keys, [1, 2, 3], seed=2)
    pool = RandomnessPool(keys[0], randbelow=rng.randrange)
    pool.fill(len(cts))
    proof = prove_plaintexts(keys[0], cts, ops, CTX, randbelow=rng.randrange, pool=pool)
    assert len(pool) == 0
    verify_plaintexts(keys[0], cts, proof, CTX)


def test_wrong_context_is_refused(keys: Keypair, proven: tuple[list[int], PlaintextProof]) -> None:
    cts, proof = proven
    with pytest.raises(InvalidProof):
        verify_plaintexts(keys[0], cts, proof, CTX + b"!")


def test_swapped_ciphertexts_are_refused(
    keys: Keypair, proven: tuple[list[int], PlaintextProof]
) -> None:
    cts, proof = proven
    assert len(cts) >= 2
    swapped = [cts[1], cts[0], *cts[2:]]
    with pytest.raises(InvalidProof):
        verify_plaintexts(keys[0], swapped, proof, CTX)


def test_other_key_is_refused(proven: tuple[list[int], PlaintextProof]) -> None:
    cts, proof = proven
    other = insecure_keypair(1, 512)[0]
    with pytest.raises(InvalidMessage):
        verify_plaintexts(other, cts, proof, CTX)


@pytest.mark.parametrize("field", ["commitments", "responses_m", "responses_r"])
@pytest.mark.parametrize("block", [0, -1])
def test_tampered_fields_are_refused(
    keys: Keypair, proven: tuple[list[int], PlaintextProof], field: str, block: int
) -> None:
    cts, proof = proven
    values = list(getattr(proof, field))
    values[block] = (values[block] + 1) % int(keys[0].n)
    bad = PlaintextProof(**{**proof.__dict__, field: tuple(values)})
    with pytest.raises(InvalidProof):
        verify_plaintexts(keys[0], cts, bad, CTX)


def test_scaled_ciphertext_cannot_reuse_or_forge_a_proof(keys: Keypair) -> None:
    """The attack of issue 9: submit c^K (or c^(K-1)) for someone else's c."""
    pk = keys[0]
    cts, ops, rng = encrypted(keys, [5, -7, 9], seed=3)
    proof = prove_plaintexts(pk, cts, ops, CTX, randbelow=rng.randrange)
    K = 1 << 16
    scaled = [int(gmpy2.powmod(c, K - 1, pk.nsquare)) for c in cts]
    with pytest.raises(InvalidProof):
        verify_plaintexts(pk, scaled, proof, CTX)
    # without the plaintext, the best an attacker can "open" c^K with is a guess
    guess = tuple(BlockOpening(mpz(0), o.randomness) for o in ops)
    forged = prove_plaintexts(pk, scaled, guess, CTX, randbelow=rng.randrange)
    with pytest.raises(InvalidProof):
        verify_plaintexts(pk, scaled, forged, CTX)
    # with the true opening of c^K (the victim's K-1 times m), it would verify: the
    # proof is exactly "I know the plaintext"
    n = pk.n
    true = tuple(
        BlockOpening((o.plaintext * (K - 1)) % n, gmpy2.powmod(o.randomness, K - 1, n)) for o in ops
    )
    verify_plaintexts(pk, scaled, prove_plaintexts(pk, scaled, true, CTX), CTX)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: b"",
    ],
    ids=["truncated", "padded", "empty"],
)
def test_bad_lengths_are_refused(
    keys: Keypair, proven: tuple[list[int], PlaintextProof], mutate: object
) -> None:
    cts, proof = proven
    data = proof.to_bytes(keys[0])
    with pytest.raises(InvalidMessage):
        PlaintextProof.from_bytes(keys[0], mutate(data), len(cts))  # type: ignore[operator]


def test_out_of_group_fields_are_refused(
    keys: Keypair, proven: tuple[list[int], PlaintextProof]
) -> None:
    pk = keys[0]
    cts, proof = proven
    cw, mw = pk.ciphertext_bytes, (pk.bits + 7) // 8
    data = bytearray(proof.to_bytes(pk))
    count = len(cts)
    zero_a = bytes(data[:0]) + bytes(cw) + bytes(data[cw:])
    with pytest.raises(InvalidMessage):
        PlaintextProof.from_bytes(pk, zero_a, count)
    z_off = count * cw
    big_z = bytes(data[:z_off]) + int(pk.n).to_bytes(mw, "big") + bytes(data[z_off + mw :])
    with pytest.raises(InvalidMessage):
        PlaintextProof.from_bytes(pk, big_z, count)
    w_off = z_off + count * mw
    p = int(gmpy2.gcd(pk.n, mpz(insecure_keypair(0, 512)[1].p)))
    not_unit = bytes(data[:w_off]) + p.to_bytes(mw, "big") + bytes(data[w_off + mw :])
    with pytest.raises(InvalidMessage):
        PlaintextProof.from_bytes(pk, not_unit, count)
    with pytest.raises(InvalidProof):
        verify_plaintexts(pk, [0, *cts[1:]], proof, CTX)


def test_multi_exp_matches_powmod() -> None:
    rng = random.Random(7)
    m = (1 << 521) - 1
    for count in (0, 1, 7, 8, 50):
        bases = [rng.randrange(1, m) for _ in range(count)]
        exps = [rng.randrange(0, 1 << 64) for _ in range(count)]
        want = mpz(1)
        for b, e in zip(bases, exps, strict=True):
            want = want * gmpy2.powmod(b, e, m) % m
        assert multi_exp(bases, exps, m) == want
    with pytest.raises(ValueError):
        multi_exp([2], [-1], m)


def test_every_verifier_gives_the_same_verdict_on_a_small_order_defect(
    keys: Keypair, proven: tuple[list[int], PlaintextProof]
) -> None:
    """``w -> n - w`` multiplies the left side by ``(-1)^n = -1``, an ``n``-th residue: no
    plaintext relation changes (the soundness argument), so the statement stays true.  With
    odd private batching exponents some verifiers would accept and others refuse; with even
    ones every seeded verifier accepts (``psc.hazmat.proofs.multiexp``, "One verdict")."""
    cts, proof = proven
    w = proof.responses_r
    flipped = replace(proof, responses_r=(int(keys[0].n - w[0]), *w[1:]))
    verdicts = set()
    for seed in range(32):
        try:
            verify_plaintexts(keys[0], cts, flipped, CTX, randbelow=random.Random(seed).randrange)
            verdicts.add(True)
        except InvalidProof:
            verdicts.add(False)
    assert verdicts == {True}
