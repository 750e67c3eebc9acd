"""Packed Paillier backend: the encrypted path equals the oracle, phe interoperability,
serialization, and refusals that leave every input untouched."""

from __future__ import annotations

import random
import struct
from collections import defaultdict
from functools import cache

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st
from phe import paillier as phe

from psc import oracle
from psc.catalog import Catalog, parse_period
from psc.events import EventTable
from psc.exceptions import InvalidMessage, KeyMismatch, OverflowRisk, ParameterError
from psc.hazmat.backends.paillier import (
    PackedCiphertext,
    PackedPaillier,
    RandomnessPool,
    ShortExponentPool,
)
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair
from psc.testing import delta_vectors, event_tables, paillier_keypairs

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
WINDOW = range(parse_period("2025-01"), parse_period("2025-07"))
HEADER = struct.Struct(">4sB16sHIQI")
CHECKSUM = 32


def backend(pk: PaillierPublicKey, layout: SlotLayout, seed: int = 0) -> PackedPaillier:
    pool = RandomnessPool(pk, randbelow=random.Random(seed).randrange)
    return PackedPaillier(pk, layout, pool=pool, allow_insecure_key=True)


def small_backend(keys: Keypair, slot_bits: int = 12, seed: int = 0) -> PackedPaillier:
    return backend(keys[0], SlotLayout.for_key(keys[0].bits, slot_bits), seed)


def snapshot(ct: PackedCiphertext) -> tuple[object, ...]:
    return (ct.key_fingerprint, ct.layout, ct.n_values, ct.bound, tuple(int(b) for b in ct.blocks))


def pool_state(pool: RandomnessPool) -> tuple[int, ...]:
    return (len(pool), pool.made_ahead, pool.made_online, pool.taken)


# ----------------------------------------------------------------------------------------
# THE acceptance property: encrypted path == oracle


def encrypted_scores(
    table: EventTable, keys: Keypair, at: int, seed: int, n_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run the protocol's data flow in the clear-key setting and return (raw sums, grades).

    Each agency encrypts one dense vector per (period, retention class) under the bound
    its catalog rules allow; the aggregator keeps one accumulator per (period, class) and
    sums the live ones; the key holder decrypts.  Cap counters travel the same way.
    """
    cat = table.catalog
    pk, sk = keys
    layout = SlotLayout.for_catalog(cat, pk.bits, periods=n_periods)
    be = backend(pk, layout, seed)
    be.pool.fill(4)
    # Cap counters count events, not points: they get their own width (a pure-cap rule has
    # delta 0 and adds nothing to the delta worst case).
    cap_need = n_periods * sum(r.max_per_period for r in cat.rules if r.grade_cap is not None)
    cap_be = PackedPaillier(
        pk,
        SlotLayout.for_key(pk.bits, max(2, cap_need.bit_length() + 1)),
        pool=be.pool,
        allow_insecure_key=True,
    )
    acc: dict[tuple[int, str], list[PackedCiphertext]] = defaultdict(list)
    caps: dict[tuple[int, str, str], list[PackedCiphertext]] = defaultdict(list)
    for agency in cat.agencies:
        mine = table.for_agency(agency)
        for p in WINDOW:
            for cls, vec in mine.delta_vectors(p).items():
                bound = cat.agency_period_bound(agency, cls)
                ct = be.encrypt(vec, bound=bound)
                acc[(p, cls)].append(be.deserialize(be.serialize(ct)))  # over the wire
            for (cls, label), counts in mine.cap_vectors(p).items():
                bound = sum(
                    r.max_per_period
                    for r in cat.rules
                    if r.agency == agency and r.retention == cls and r.grade_cap == label
                )
                if bound:
                    caps[(p, cls, label)].append(cap_be.encrypt(counts, bound=bound))
    months = {c: cat.retention[c].months for c in cat.retention}
    live = [ct for (p, c), cts in acc.items() if p <= at < p + months[c] for ct in cts]
    n = table.n_subjects
    raw = be.decrypt(be.sum(live), sk) if live else np.zeros(n, dtype=np.int64)
    cap = np.full(n, len(cat.labels) - 1, dtype=np.int64)
    for label in cat.cap_labels():
        cts = [
            ct
            for (p, c, lab), group in caps.items()
            if lab == label and p <= at < p + months[c]
            for ct in group
        ]
        if cts:
            hit = cap_be.decrypt(cap_be.sum(cts), sk) > 0
            cap[hit] = np.minimum(cap[hit], cat.grade_index(label))
    grades = oracle.grades_of(cat, cat.scheme.base_score + raw, cap)
    return raw, grades


@settings(max_examples=30)
@given(
    event_tables(n_subjects=7, periods=WINDOW, max_events=30),
    paillier_keypairs(),
    st.integers(WINDOW.start, WINDOW.stop + 12),
    st.integers(0, 2**32),
)
def test_packed_sums_decrypt_to_the_oracle(
    table: EventTable, keys: Keypair, at: int, seed: int
) -> None:
    raw, grades = encrypted_scores(table, keys, at, seed, n_periods=len(WINDOW))
    want = oracle.score(table, at)
    assert raw.tolist() == oracle.raw_sums(table, at).tolist()
    assert grades.tolist() == want.grade.tolist()


def test_saturated_city_history_decrypts_to_the_oracle(
    city: Catalog, test_keypair: Keypair
) -> None:
    """Every rule at max_per_period in every period: the slot-range boundary in practice."""
    p0 = WINDOW.start
    subj, rule, per = [], [], []
    for ri, r in enumerate(city.rules):
        s = 0 if r.delta < 0 else 1
        for p in WINDOW:
            for _ in range(r.max_per_period):
                subj.append(s)
                rule.append(ri)
                per.append(p)
    table = EventTable.from_arrays(city, 3, subj, rule, per)
    raw, grades = encrypted_scores(table, test_keypair, p0 + len(WINDOW) - 1, 7, len(WINDOW))
    assert raw.tolist() == oracle.raw_sums(table, p0 + len(WINDOW) - 1).tolist()
    assert raw[0] < 0 < raw[1] and raw[2] == 0
    assert grades.tolist() == oracle.score(table, p0 + len(WINDOW) - 1).grade.tolist()


@settings(max_examples=40)
@given(
    paillier_keypairs(),
    st.integers(3, 40),
    st.integers(1, 5),
    st.integers(1, 70),
    st.data(),
)
def test_sums_of_boundary_vectors(
    keys: Keypair, slot_bits: int, k: int, size: int, data: st.DataObject
) -> None:
    """k agencies each at +-bound, where k * bound is exactly the slot range."""
    be = small_backend(keys, slot_bits, seed=data.draw(st.integers(0, 2**32)))
    bound = be.layout.max_value // k
    vecs = [data.draw(delta_vectors(size=size, bound=bound)) for _ in range(k)]
    cts = [be.encrypt(v, bound=bound) for v in vecs]
    total = be.sum(cts)
    assert total.bound == k * bound <= be.layout.max_value
    assert be.decrypt(total, keys[1]).tolist() == np.sum(vecs, axis=0).tolist()
    assert be.decrypt(cts[0], keys[1]).tolist() == vecs[0].tolist()
    if k >= 2:
        assert be.decrypt(be.add(cts[0], cts[1]), keys[1]).tolist() == (vecs[0] + vecs[1]).tolist()


# ----------------------------------------------------------------------------------------
# phe interoperability


@settings(max_examples=30)
@given(paillier_keypairs(), st.data())
def test_phe_decrypts_packed_ciphertexts(keys: Keypair, data: st.DataObject) -> None:
    pk, sk = keys
    be = small_backend(keys, 20, seed=data.draw(st.integers(0, 2**32)))
    ppk, psk = pk.to_phe(), sk.to_phe()
    # one slot: phe sees an ordinary signed integer, negative values included
    v = data.draw(delta_vectors(size=1, bound=be.layout.max_value))
    ct = be.encrypt(v)
    assert psk.decrypt(phe.EncryptedNumber(ppk, int(ct.blocks[0]), 0)) == int(v[0])
    # many slots: phe's raw plaintext is the packed integer mod n
    w = data.draw(delta_vectors(size=be.layout.slots, min_size=2, bound=be.layout.max_value))
    ct = be.encrypt(w)
    assert psk.raw_decrypt(int(ct.blocks[0])) == be.layout.pack(w) % int(pk.n)


@settings(max_examples=20)
@given(st.data())
def test_psc_decrypts_phe_encrypted_packed_plaintexts(data: st.DataObject) -> None:
    ppk, psk = _phe_keys()
    pk, sk = PaillierPublicKey.from_phe(ppk), PaillierPrivateKey.from_phe(psk)
    be = backend(pk, SlotLayout.for_key(pk.bits, 16))
    v = data.draw(delta_vectors(size=be.layout.slots + 3, min_size=1, bound=be.layout.max_value))
    S = be.layout.slots
    blocks = tuple(
        mpz(ppk.raw_encrypt(be.layout.pack(v[i : i + S]) % ppk.n)) for i in range(0, v.size, S)
    )
    ct = PackedCiphertext(pk.fingerprint, be.layout, int(v.size), be.layout.max_value, blocks)
    assert be.decrypt(be.deserialize(be.serialize(ct)), sk).tolist() == v.tolist()


@cache
def _phe_keys() -> tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey]:
    """A key from phe's own generator (INSECURE size: tests only), made once per session."""
    return phe.generate_paillier_keypair(n_length=512)


# ----------------------------------------------------------------------------------------
# serialization


@settings(max_examples=40)
@given(paillier_keypairs(), st.integers(2, 30), st.data())
def test_serialization_round_trip(keys: Keypair, slot_bits: int, data: st.DataObject) -> None:
    be = small_backend(keys, slot_bits, seed=data.draw(st.integers(0, 2**32)))
    v = data.draw(delta_vectors(size=3 * be.layout.slots, min_size=1, bound=be.layout.max_value))
    ct = be.encrypt(v)
    blob = be.serialize(ct)
    assert (
        len(blob)
        == be.byte_size(ct)
        == HEADER.size + len(ct.blocks) * keys[0].ciphertext_bytes + CHECKSUM
    )
    back = be.deserialize(blob)
    assert back == ct and be.serialize(back) == blob
    assert be.decrypt(back, keys[1]).tolist() == v.tolist()
    assert be.deserialize(bytearray(blob)) == ct


# ----------------------------------------------------------------------------------------
# bad input: a clear error, and no state changed


@pytest.fixture
def setup(test_keypair: Keypair) -> tuple[PackedPaillier, PackedCiphertext, bytes]:
    be = small_backend(test_keypair, 12)
    ct = be.encrypt(np.array([5, -7, 0, 2047, -2047] * 9, dtype=np.int64), bound=2047)
    return be, ct, be.serialize(ct)


def test_wrong_key_is_refused(
    setup: tuple[PackedPaillier, PackedCiphertext, bytes],
    test_keypair: Keypair,
    other_keypair: Keypair,
) -> None:
    be, ct, _blob = setup
    other = small_backend(other_keypair, 12)
    foreign = other.encrypt(np.ones(45, dtype=np.int64))
    before, before_foreign, pool = snapshot(ct), snapshot(foreign), pool_state(be.pool)
    with pytest.raises(KeyMismatch, match="different Paillier key"):
        be.add(ct, foreign)
    with pytest.raises(KeyMismatch, match="different Paillier key"):
        be.sum([ct, ct, foreign])
    with pytest.raises(KeyMismatch, match="different Paillier key"):
        be.deserialize(other.serialize(foreign))
    with pytest.raises(KeyMismatch, match="private key does not match"):
        be.decrypt(ct, other_keypair[1])
    with pytest.raises(KeyMismatch, match="different Paillier key"):
        be.decrypt(foreign, test_keypair[1])
    with pytest.raises(KeyMismatch, match="another key"):
        PackedPaillier(
            test_keypair[0],
            be.layout,
            pool=RandomnessPool(other_keypair[0]),
            allow_insecure_key=True,
        )
    assert (
        snapshot(ct) == before
        and snapshot(foreign) == before_foreign
        and pool_state(be.pool) == pool
    )
    assert be.decrypt(ct, test_keypair[1]).tolist() == [5, -7, 0, 2047, -2047] * 9


def test_every_truncation_is_refused(setup: tuple[PackedPaillier, PackedCiphertext, bytes]) -> None:
    be, _ct, blob = setup
    for cut in range(len(blob)):
        with pytest.raises(InvalidMessage):
            be.deserialize(blob[:cut])
    with pytest.raises(InvalidMessage):
        be.deserialize(blob + b"\x00")


@settings(max_examples=150)
@given(st.data())
def test_any_altered_byte_is_refused(test_keypair: Keypair, data: st.DataObject) -> None:
    be = small_backend(test_keypair, 12)
    ct = be.encrypt(np.array([5, -7, 0, 2047, -2047] * 9, dtype=np.int64), bound=2047)
    blob = be.serialize(ct)
    # header positions drawn often: they are the fields most likely to decode "validly"
    pos = data.draw(
        st.one_of(st.integers(0, HEADER.size - 1), st.integers(0, len(blob) - 1)), label="pos"
    )
    flip = data.draw(st.integers(1, 255), label="xor")
    bad = bytearray(blob)
    bad[pos] ^= flip
    with pytest.raises((InvalidMessage, KeyMismatch)):
        be.decrypt(be.deserialize(bytes(bad)), test_keypair[1])


@settings(max_examples=60)
@given(st.data())
def test_an_altered_block_never_decrypts(test_keypair: Keypair, data: st.DataObject) -> None:
    """Bypassing the wire checksum (an attacker can recompute it), a tampered block still
    fails to decode thanks to the guard bits, with probability 1 - 2^-64."""
    be = small_backend(test_keypair, 12)
    ct = be.encrypt(np.array([5, -7, 0, 2047, -2047] * 9, dtype=np.int64), bound=2047)
    j = data.draw(st.integers(0, len(ct.blocks) - 1))
    bit = data.draw(st.integers(0, int(test_keypair[0].nsquare).bit_length() - 2))
    blocks = list(ct.blocks)
    blocks[j] = blocks[j] ^ (mpz(1) << bit)
    tampered = PackedCiphertext(ct.key_fingerprint, ct.layout, ct.n_values, ct.bound, tuple(blocks))
    with pytest.raises((InvalidMessage, KeyMismatch)):
        be.decrypt(tampered, test_keypair[1])


def _reheader(be: PackedPaillier, blob: bytes, **fields: int) -> bytes:
    """Rewrite header fields and recompute the checksum (a well-formed but wrong message)."""
    from psc.hazmat.backends.paillier import _checksum

    names = ("magic", "version", "fp", "slot_bits", "n_values", "bound", "count")
    values = dict(zip(names, HEADER.unpack_from(blob), strict=True))
    values.update(fields)
    body = HEADER.pack(*values.values()) + blob[HEADER.size : -CHECKSUM]
    return body + _checksum(body)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"count": 1}, "block count"),
        ({"count": 3}, "block count"),
        ({"n_values": 37}, "block count"),
        ({"n_values": 75}, "block count"),
        ({"n_values": 0}, "block count"),
        ({"slot_bits": 13}, "slot width"),
        ({"bound": 2048}, "bound exceeds the slot range"),
        ({"version": 2}, "supported version"),
    ],
)
def test_well_formed_but_wrong_headers_are_refused(
    setup: tuple[PackedPaillier, PackedCiphertext, bytes], fields: dict[str, int], message: str
) -> None:
    be, ct, blob = setup
    assert be.deserialize(_reheader(be, blob)) == ct  # the helper itself is faithful
    with pytest.raises(InvalidMessage, match=message):
        be.deserialize(_reheader(be, blob, **fields))


def test_wrong_slot_count_and_layout_are_refused(
    setup: tuple[PackedPaillier, PackedCiphertext, bytes], test_keypair: Keypair
) -> None:
    be, ct, blob = setup
    before = snapshot(ct)
    assert be.layout.slots == 37  # 45 values: 2 blocks; with 22 slots they would need 3
    narrower = backend(test_keypair[0], SlotLayout(12, 22))
    with pytest.raises(InvalidMessage, match="block count"):
        narrower.deserialize(blob)
    with pytest.raises(KeyMismatch, match="layout"):
        narrower.add(ct, ct)
    with pytest.raises(KeyMismatch, match="layout"):
        narrower.decrypt(ct, test_keypair[1])
    shorter = be.encrypt(np.zeros(44, dtype=np.int64))
    with pytest.raises(ValueError, match="vector lengths differ"):
        be.add(ct, shorter)
    assert snapshot(ct) == before


def test_overflow_is_refused_at_every_step(
    city: Catalog, setup: tuple[PackedPaillier, PackedCiphertext, bytes]
) -> None:
    be, ct, _ = setup
    top = be.layout.max_value  # 2047 for 12-bit slots
    # at layout time
    with pytest.raises(OverflowRisk, match="cannot rule out overflow"):
        SlotLayout.for_catalog(city, 512, slot_bits=12)
    # at encryption: a value above the declared bound, or a bound above the slot range
    state = pool_state(be.pool)
    with pytest.raises(OverflowRisk, match="exceeds the declared bound 3"):
        be.encrypt(np.array([1, -4], dtype=np.int64), bound=3)
    with pytest.raises(OverflowRisk, match="exceeds the slot range"):
        be.encrypt(np.array([1], dtype=np.int64), bound=top + 1)
    with pytest.raises(OverflowRisk, match="exceeds the slot range"):
        be.encrypt(np.array([top + 1], dtype=np.int64))
    assert pool_state(be.pool) == state  # no randomizer was spent on a refused encryption
    # at addition: bounds add up, and a sum that could leave the range is refused
    one = be.encrypt(np.ones(ct.n_values, dtype=np.int64))
    before, before_one = snapshot(ct), snapshot(one)
    with pytest.raises(OverflowRisk, match="could reach 2048"):
        be.add(ct, one)
    assert snapshot(ct) == before and snapshot(one) == before_one
    assert be.add(ct.with_bound(top - 1), one).bound == top
    with pytest.raises(OverflowRisk, match="exceeds the slot range"):
        ct.with_bound(top + 1)


def test_encrypt_refuses_malformed_vectors(
    setup: tuple[PackedPaillier, PackedCiphertext, bytes],
) -> None:
    be, _, _ = setup
    state = pool_state(be.pool)
    for bad in (np.zeros(0, dtype=np.int64), np.zeros((2, 2), dtype=np.int64)):
        with pytest.raises(ValueError, match="non-empty 1-d"):
            be.encrypt(bad)
    with pytest.raises(ValueError, match="at least one"):
        be.sum([])
    assert pool_state(be.pool) == state


def test_backend_refuses_insecure_keys_and_oversized_layouts(test_keypair: Keypair) -> None:
    pk = test_keypair[0]
    with pytest.raises(ParameterError, match="allow_insecure_key=True is for tests only"):
        PackedPaillier(pk, SlotLayout.for_key(pk.bits, 12))
    with pytest.raises(ParameterError, match="plaintext bits"):
        PackedPaillier(pk, SlotLayout(16, 32), allow_insecure_key=True)


# ----------------------------------------------------------------------------------------
# randomness pool


@pytest.mark.parametrize("kind", [RandomnessPool, ShortExponentPool])
@pytest.mark.parametrize(("ahead", "online"), [(0, 5), (7, 0), (20, 13)])
def test_randomness_pool_never_hands_out_a_value_twice(
    test_keypair: Keypair, ahead: int, online: int, kind: type[RandomnessPool]
) -> None:
    """Full-exponent and short-exponent pools alike."""
    pool = kind(test_keypair[0])
    pool.fill(ahead)
    assert len(pool) == ahead
    taken = [int(pool.take()) for _ in range(ahead + online)]
    assert len(set(taken)) == len(taken)
    assert (pool.made_ahead, pool.made_online, pool.taken, len(pool)) == (
        ahead,
        online,
        ahead + online,
        0,
    )
    assert pool.made_ahead + pool.made_online == pool.taken + len(pool)


def test_each_block_spends_exactly_one_fresh_randomizer(test_keypair: Keypair) -> None:
    be = small_backend(test_keypair, 12)
    be.pool.fill(3)
    v = np.arange(-50, 50, dtype=np.int64)  # 100 values: 3 blocks of 37 slots
    a, b = be.encrypt(v), be.encrypt(v)
    assert len(a.blocks) == 3
    assert (be.pool.made_ahead, be.pool.made_online, be.pool.taken, len(be.pool)) == (3, 3, 6, 0)
    # same plaintext, different ciphertexts: no randomizer was reused
    assert not set(map(int, a.blocks)) & set(map(int, b.blocks))
    assert (
        be.decrypt(a, test_keypair[1]).tolist()
        == be.decrypt(b, test_keypair[1]).tolist()
        == v.tolist()
    )


def test_an_injected_source_makes_encryption_reproducible(test_keypair: Keypair) -> None:
    v = np.array([3, -1, 4, -1, 5], dtype=np.int64)
    assert small_backend(test_keypair, 12, seed=9).encrypt(v) == small_backend(
        test_keypair, 12, seed=9
    ).encrypt(v)
    assert small_backend(test_keypair, 12, seed=9).encrypt(v) != small_backend(
        test_keypair, 12, seed=10
    ).encrypt(v)


# ----------------------------------------------------------------------------------------
# the real thing


@pytest.mark.slow
def test_end_to_end_with_a_real_2048_bit_key(city: Catalog) -> None:
    pk, sk = generate_keypair(2048)
    assert pk.bits == 2048
    layout = SlotLayout.for_catalog(city, pk.bits)
    be = PackedPaillier(pk, layout)  # secure key: no opt-out needed
    rng = np.random.default_rng(2026)
    n, p = 400, WINDOW.start
    k = 600
    subj = rng.integers(0, n, k)
    rule = rng.integers(0, len(city.rules), k)
    per = rng.integers(p, p + 6, k)
    # keep only events within max_per_period (drop excess duplicates)
    seen: dict[tuple[int, int, int], int] = defaultdict(int)
    keep = []
    for i in range(k):
        key = (int(subj[i]), int(rule[i]), int(per[i]))
        seen[key] += 1
        keep.append(seen[key] <= city.rules[int(rule[i])].max_per_period)
    table = EventTable.from_arrays(city, n, subj[keep], rule[keep], per[keep])
    raw, grades = encrypted_scores_real(table, be, sk, p + 5)
    assert raw.tolist() == oracle.raw_sums(table, p + 5).tolist()
    assert grades.tolist() == oracle.score(table, p + 5).grade.tolist()
    assert be.byte_size(be.encrypt(np.zeros(n, dtype=np.int64))) / n < 8


def encrypted_scores_real(
    table: EventTable, be: PackedPaillier, sk: PaillierPrivateKey, at: int
) -> tuple[np.ndarray, np.ndarray]:
    cat = table.catalog
    cts = []
    for agency in cat.agencies:
        mine = table.for_agency(agency)
        for p in range(WINDOW.start, at + 1):
            for cls, vec in mine.delta_vectors(p).items():
                if p + cat.retention[cls].months > at:
                    cts.append(
                        be.deserialize(
                            be.serialize(
                                be.encrypt(vec, bound=cat.agency_period_bound(agency, cls))
                            )
                        )
                    )
    raw = be.decrypt(be.sum(cts), sk)
    cap = oracle.cap_indices(table, at)
    return raw, oracle.grades_of(cat, cat.scheme.base_score + raw, cap)


@pytest.mark.parametrize("pool_kind", [RandomnessPool, ShortExponentPool])
def test_encrypt_with_openings_opens_every_block(pool_kind: type[RandomnessPool]) -> None:
    """Each opening (m, r) reproduces its block: c = (1 + m n) r^n mod n^2, and m unpacks
    to the encrypted values (what a prover relies on), with either kind of randomness."""
    from psc.testing import insecure_keypair

    public, _ = insecure_keypair(0, 512)
    layout = SlotLayout.for_key(public.bits, 16)
    rng = random.Random(7)
    backend = PackedPaillier(
        public,
        layout,
        pool=pool_kind(public, randbelow=rng.randrange),
        allow_insecure_key=True,
    )
    backend.pool.fill(1)  # one precomputed, the others made online
    values = np.array([rng.randrange(-300, 301) for _ in range(2 * layout.slots + 3)])
    ct, openings = backend.encrypt_with_openings(values, bound=300)
    assert len(openings) == len(ct.blocks)
    n, nsq = public.n, public.nsquare
    for j, (c, op) in enumerate(zip(ct.blocks, openings, strict=True)):
        assert c == (1 + op.plaintext * n) * pow(op.randomness, n, nsq) % nsq
        chunk = values[j * layout.slots : (j + 1) * layout.slots]
        got = layout.unpack(int(op.plaintext), int(n), len(chunk), 300)
        assert list(got) == list(chunk)


# ----------------------------------------------------------------------------------------
# short-exponent (Damgard-Jurik-Nielsen) randomness


def test_short_exponent_pool_openings_are_valid_pairs(test_keypair: Keypair) -> None:
    """take_opening() gives (r, r^n mod n^2) with r a unit, from precomputed exponents,
    plain pairs and online draws alike: the proofs of plaintext knowledge need exactly this."""
    pk, _ = test_keypair
    rng = random.Random(3)
    pool = ShortExponentPool(pk, randbelow=rng.randrange)
    pool.fill(2)
    pool.add_precomputed([pk.random_r_rn(rng.randrange)])
    z = pool.randomizer
    alphas = [z.draw(rng.randrange) for _ in range(2)]
    pool.add_exponents([(a, int(z.rn(a))) for a in alphas])
    pairs = [pool.take_opening() for _ in range(7)]  # 5 ahead, 2 online
    for r, rn in pairs:
        assert 0 < r < pk.n and gmpy2.gcd(r, pk.n) == 1
        assert gmpy2.powmod(r, pk.n, pk.nsquare) == rn
    assert len({int(rn) for _, rn in pairs}) == 7
    assert (pool.made_ahead, pool.made_online, pool.taken, len(pool)) == (5, 2, 7, 0)


def test_short_exponent_pool_is_seeded_through_its_seam_and_refuses_foreign_keys(
    test_keypair: Keypair, other_keypair: Keypair
) -> None:
    a = ShortExponentPool(test_keypair[0], randbelow=random.Random(5).randrange)
    b = ShortExponentPool(test_keypair[0], randbelow=random.Random(5).randrange)
    assert [int(a.take()) for _ in range(3)] == [int(b.take()) for _ in range(3)]
    with pytest.raises(KeyMismatch):
        ShortExponentPool(
            test_keypair[0], randomizer=ShortExponentPool(other_keypair[0]).randomizer
        )
    with pytest.raises(ParameterError):
        ShortExponentPool(test_keypair[0], exponent_bits=8)


@settings(max_examples=10)
@given(delta_vectors(size=120, bound=900, min_size=1), st.integers(0, 2**32))
def test_short_exponent_ciphertexts_decrypt_with_psc_and_phe(vector: np.ndarray, seed: int) -> None:
    """Same keys, same wire format: a short-exponent ciphertext round-trips through bytes
    and decrypts with psc's key and, block by block, with phe's."""
    from psc.testing import insecure_keypair

    pk, sk = insecure_keypair(0, 512)
    layout = SlotLayout.for_key(pk.bits, 12)
    be = PackedPaillier(
        pk,
        layout,
        pool=ShortExponentPool(pk, randbelow=random.Random(seed).randrange),
        allow_insecure_key=True,
    )
    ct = be.deserialize(be.serialize(be.encrypt(vector, bound=900)))
    assert be.decrypt(ct, sk).tolist() == vector.tolist()
    priv = sk.to_phe()
    for c in ct.blocks:
        assert priv.raw_decrypt(int(c)) == int(sk.raw_decrypt(c))


@pytest.mark.parametrize("workers", [1, 2])
def test_driver_precompute_gives_each_agency_its_own_valid_short_exponents(
    test_keypair: Keypair, workers: int
) -> None:
    from psc.sim.sources import PrecomputedPool, precompute

    pk = test_keypair[0]
    parts = precompute(pk, [3, 0, 5], workers)
    assert [len(p.exponents) for p in parts] == [3, 0, 5]
    assert len({p.base for p in parts}) == 3  # a secret base per agency
    for part in parts:
        pool = PrecomputedPool(pk, part)
        for _ in range(len(part.exponents)):
            r, rn = pool.take_opening()
            assert gmpy2.powmod(r, pk.n, pk.nsquare) == rn
        assert pool.made_online == 0 and len(pool) == 0
