"""Exact per-slot range proofs (psc.hazmat.proofs.range): completeness, a cheating prover refused
for every kind of out-of-range slot, tampering, binding to the context, encoding."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st

from psc.exceptions import InvalidMessage, InvalidProof, ParameterError
from psc.hazmat.backends.paillier import BlockOpening, PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.hazmat.proofs.range import (
    RangeProof,
    _prove,
    guaranteed_range,
    locate_failure,
    pool_demand,
    prove_slot_ranges,
    verify_slot_ranges,
)
from psc.testing import contributions, insecure_keypair

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
CTX = b"test/range"
KEYS = insecure_keypair(0, 512)
LAYOUT = SlotLayout(16, 4)  # few slots per block: small, fast proofs


def encrypt(
    values: list[int], seed: int = 0, layout: SlotLayout = LAYOUT
) -> tuple[list[int], tuple[BlockOpening, ...], random.Random]:
    rng = random.Random(seed)
    pk = KEYS[0]
    be = PackedPaillier(
        pk, layout, pool=RandomnessPool(pk, randbelow=rng.randrange), allow_insecure_key=True
    )
    # the encryptor packs whatever it is given (a cheat bypasses the bound check this way)
    ct, ops = be.encrypt_with_openings(np.array(values, dtype=np.int64))
    return [int(c) for c in ct.blocks], ops, rng


def raw_encrypt(
    values: list[int], seed: int = 0, layout: SlotLayout = LAYOUT
) -> tuple[list[int], tuple[BlockOpening, ...], random.Random]:
    """What a cheat does: pack any integers (no bound check) and encrypt them."""
    rng = random.Random(seed)
    pk = KEYS[0]
    cts, ops = [], []
    S, w = layout.slots, layout.slot_bits
    for j in range(0, len(values), S):
        m = sum(v << (w * i) for i, v in enumerate(values[j : j + S])) % int(pk.n)
        r, rn = pk.random_r_rn(rng.randrange)
        cts.append(int(pk.raw_encrypt(m, rn)))
        ops.append(BlockOpening(mpz(m), r))
    return cts, tuple(ops), rng


def cheat(
    values: list[int], lo: list[int], hi: list[int], seed: int = 0, **kw: object
) -> tuple[list[int], RangeProof]:
    cts, ops, rng = raw_encrypt(values, seed)
    proof = _prove(
        KEYS[0],
        LAYOUT,
        cts,
        ops,
        values,
        lo,
        hi,
        CTX,
        randbelow=rng.randrange,
        pool=None,
        digit_bits=int(kw.get("digit_bits", 6)),  # type: ignore[call-overload]
        honest=False,
    )
    return cts, proof


def honest(values: list[int], lo: list[int], hi: list[int], seed: int = 0, digit_bits: int = 6):  # type: ignore[no-untyped-def]
    cts, ops, rng = encrypt(values, seed)
    proof = prove_slot_ranges(
        KEYS[0],
        LAYOUT,
        cts,
        ops,
        values,
        lo,
        hi,
        CTX,
        randbelow=rng.randrange,
        digit_bits=digit_bits,
    )
    return cts, proof


@settings(max_examples=25)
@given(
    stmt=contributions(max_slots=9),
    seed=st.integers(0, 2**32),
    digit_bits=st.sampled_from([2, 4, 6]),
)
def test_honest_range_proofs_verify_and_round_trip(
    stmt: tuple[list[int], list[int], list[int]], seed: int, digit_bits: int
) -> None:
    vals, lo, hi = stmt
    cts, proof = honest(vals, lo, hi, seed, digit_bits)
    verify_slot_ranges(KEYS[0], LAYOUT, cts, lo, hi, proof, CTX)
    data = proof.to_bytes(KEYS[0], LAYOUT)
    assert RangeProof.from_bytes(KEYS[0], LAYOUT, len(cts), lo, hi, data) == proof


def test_a_full_width_key_layout_verifies() -> None:
    layout = SlotLayout.for_key(512, 20)
    vals = list(range(-12, 13)) + [0] * 10
    lo, hi = [-12] * len(vals), [12] * len(vals)
    cts, ops, rng = encrypt(vals, 5, layout)
    proof = prove_slot_ranges(KEYS[0], layout, cts, ops, vals, lo, hi, CTX, randbelow=rng.randrange)
    verify_slot_ranges(KEYS[0], layout, cts, lo, hi, proof, CTX)


def test_pool_demand_is_what_a_proof_takes() -> None:
    vals, lo, hi = [1, 2, 3, 4, 5], [0] * 5, [10] * 5
    cts, ops, rng = encrypt(vals, 6)
    pool = RandomnessPool(KEYS[0], randbelow=rng.randrange)
    need = pool_demand(KEYS[0], LAYOUT, len(cts), lo, hi)
    pool.fill(need)
    proof = prove_slot_ranges(KEYS[0], LAYOUT, cts, ops, vals, lo, hi, CTX, pool=pool)
    assert len(pool) == 0 and pool.made_online == 0
    verify_slot_ranges(KEYS[0], LAYOUT, cts, lo, hi, proof, CTX)


def test_the_guarantee_has_no_slack() -> None:
    assert guaranteed_range(-7, 3) == (-7, 3)
    with pytest.raises(ValueError):
        guaranteed_range(3, -7)


def test_the_prover_refuses_a_false_statement() -> None:
    cts, ops, _ = encrypt([11])
    with pytest.raises(ValueError, match="outside its range"):
        prove_slot_ranges(KEYS[0], LAYOUT, cts, ops, [11], [0], [10], CTX)


@pytest.mark.parametrize(
    ("values", "lo", "hi", "digit_bits"),
    [
        ([150, 0, 0], [0, 0, 0], [10, 10, 10], 6),  # over-range delta (issue 11)
        ([0, -150, 0], [0, 0, 0], [10, 10, 10], 6),  # negative where only positive is allowed
        ([10**6, 0], [-50, -50], [0, 0], 6),  # the overflowing value
        ([-1, 0, 0], [0, 0, 0], [3, 3, 3], 6),  # a negative cap counter
        ([11, 0], [0, 0], [10, 10], 2),  # multi-digit mode, just over
        ([-1, 0], [0, 0], [10, 10], 2),  # multi-digit mode, just under
        ([5, 0, 0, 0, 7], [0, 0, 0, 0], [10, 10, 10, 10], 6),  # a non-zero padding slot
    ],
)
def test_a_cheating_prover_is_refused(
    values: list[int], lo: list[int], hi: list[int], digit_bits: int
) -> None:
    # the cheat claims bounds for the first len(lo) slots; the rest of the block is padding
    if len(values) > len(lo):
        cts, ops, rng = raw_encrypt(values)
        proof = _prove(
            KEYS[0],
            LAYOUT,
            cts,
            ops,
            values[: len(lo)],
            lo,
            hi,
            CTX,
            randbelow=rng.randrange,
            pool=None,
            digit_bits=digit_bits,
            honest=False,
        )
    else:
        cts, proof = cheat(values, lo, hi, digit_bits=digit_bits)
    with pytest.raises(InvalidProof):
        verify_slot_ranges(KEYS[0], LAYOUT, cts, lo, hi, proof, CTX)


@pytest.fixture(scope="module")
def good() -> tuple[list[int], list[int], list[int], RangeProof]:
    vals = [3, -2, 0, 7, 1, -5, 2]
    lo, hi = [-5] * 7, [7] * 7
    cts, proof = honest(vals, lo, hi, 9)
    return cts, lo, hi, proof


def test_binding_to_context_bounds_and_blocks(
    good: tuple[list[int], list[int], list[int], RangeProof],
) -> None:
    cts, lo, hi, proof = good
    pk = KEYS[0]
    with pytest.raises(InvalidProof):
        verify_slot_ranges(pk, LAYOUT, cts, lo, hi, proof, CTX + b"/other-envelope")
    with pytest.raises(InvalidProof):  # the same numbers claimed under wider bounds
        verify_slot_ranges(pk, LAYOUT, cts, [-6] * 7, hi, proof, CTX)
    with pytest.raises(InvalidProof):
        verify_slot_ranges(pk, LAYOUT, [cts[1], cts[0]], lo, hi, proof, CTX)
    other, _, _ = encrypt([3, -2, 0, 7, 1, -5, 2], seed=10)
    with pytest.raises(InvalidProof):  # replayed onto a fresh encryption of the same values
        verify_slot_ranges(pk, LAYOUT, other, lo, hi, proof, CTX)


@pytest.mark.parametrize(
    "field", ["digits", "masks", "cross", "responses", "omegas", "rhos", "tau"]
)
def test_tampered_fields_are_refused(
    good: tuple[list[int], list[int], list[int], RangeProof], field: str
) -> None:
    cts, lo, hi, proof = good
    value = getattr(proof, field)
    if isinstance(value, tuple):
        bumped: object = (value[0] + 2, *value[1:])
    else:
        bumped = value + 2
    with pytest.raises(InvalidProof):
        verify_slot_ranges(KEYS[0], LAYOUT, cts, lo, hi, replace(proof, **{field: bumped}), CTX)


def test_wrong_shapes_and_bytes_are_refused(
    good: tuple[list[int], list[int], list[int], RangeProof],
) -> None:
    cts, lo, hi, proof = good
    pk = KEYS[0]
    with pytest.raises(InvalidProof):
        verify_slot_ranges(pk, LAYOUT, cts, lo, hi, replace(proof, rhos=proof.rhos[:-1]), CTX)
    with pytest.raises(InvalidProof):
        verify_slot_ranges(pk, LAYOUT, cts, lo, hi, replace(proof, digit_bits=2), CTX)
    data = proof.to_bytes(pk, LAYOUT)
    for bad in (data[:-1], data + b"\0", b"", data[:1], bytes([9]) + data[1:]):
        with pytest.raises(InvalidMessage):
            RangeProof.from_bytes(pk, LAYOUT, len(cts), lo, hi, bad)


def test_slots_too_narrow_for_the_bounds_are_a_parameter_error() -> None:
    cts, ops, _ = encrypt([0])
    with pytest.raises(ParameterError):
        prove_slot_ranges(KEYS[0], LAYOUT, cts, ops, [0], [-40000], [40000], CTX)


@settings(max_examples=20)
@given(
    stmt=contributions(valid=False, max_slots=9),
    seed=st.integers(0, 2**32),
    digit_bits=st.sampled_from([2, 6]),
)
def test_invalid_contributions_never_verify(
    stmt: tuple[list[int], list[int], list[int]], seed: int, digit_bits: int
) -> None:
    vals, lo, hi = stmt
    cts, proof = cheat(vals, lo, hi, seed, digit_bits=digit_bits)
    with pytest.raises(InvalidProof):
        verify_slot_ranges(KEYS[0], LAYOUT, cts, lo, hi, proof, CTX)


def test_locate_failure_names_the_block_whose_equations_fail(
    good: tuple[list[int], list[int], list[int], RangeProof],
) -> None:
    cts, lo, hi, proof = good
    pk = KEYS[0]
    assert locate_failure(pk, LAYOUT, cts, lo, hi, proof, CTX) is None  # nothing fails
    per_block = len(proof.digits) // len(cts)
    omegas = list(proof.omegas)
    omegas[per_block] = omegas[per_block] * 2 % int(pk.n)  # a wide ciphertext of block 1
    bad = replace(proof, omegas=tuple(omegas))
    with pytest.raises(InvalidProof):
        verify_slot_ranges(pk, LAYOUT, cts, lo, hi, bad, CTX)
    assert locate_failure(pk, LAYOUT, cts, lo, hi, bad, CTX) == 1
    over, over_proof = cheat([8, 0, 0, 0, 0], [-5] * 5, [7] * 5)
    assert locate_failure(pk, LAYOUT, over, [-5] * 5, [7] * 5, over_proof, CTX) is None


@pytest.mark.parametrize("field", ["omegas", "rhos"])
def test_every_verifier_gives_the_same_verdict_on_a_sign_flipped_proof(
    good: tuple[list[int], list[int], list[int], RangeProof], field: str
) -> None:
    """A prover flips the sign of one batched randomness (``-1`` is an ``n``-th residue of
    order 2: it changes no plaintext, so the statement stays true).  With odd batching
    exponents a verifier's verdict would hang on the parity of its private exponent: the
    aggregator could accept an envelope an auditor refuses.  Even exponents make every
    verifier accept it (the statement is true); 32 seeded verifiers must agree."""
    cts, lo, hi, proof = good
    n = KEYS[0].n
    value = getattr(proof, field)
    flipped = replace(proof, **{field: (int(n - value[0]), *value[1:])})
    verdicts = set()
    for seed in range(32):
        try:
            verify_slot_ranges(
                KEYS[0], LAYOUT, cts, lo, hi, flipped, CTX, randbelow=random.Random(seed).randrange
            )
            verdicts.add(True)
        except InvalidProof:
            verdicts.add(False)
    assert verdicts == {True}
