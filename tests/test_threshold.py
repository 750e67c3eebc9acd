"""Threshold Paillier (psc.hazmat.threshold): k of n decrypt, fewer cannot, bad shares are caught.

Keys are dealt from the fixed INSECURE test safe primes shipped in
``protocols/vectors/threshold.json`` (512- and 1024-bit moduli; 2048 only in the slow
test), with seeded dealer randomness, so nothing here searches for safe primes.
"""

from __future__ import annotations

import itertools
import json
import random
from functools import cache
from pathlib import Path

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st

from psc.exceptions import InsufficientShares, InvalidMessage, KeyMismatch, ParameterError
from psc.hazmat.backends.paillier import PackedCiphertext, PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, _keypair_from_primes
from psc.hazmat.threshold.combine import (
    _combine_values,
    combine,
    decrypt_packed,
    decrypt_with_committee,
)
from psc.hazmat.threshold.dealer import _generate_safe_prime, deal
from psc.hazmat.threshold.encoding import (
    decode_packed_share,
    decode_share,
    encode_packed_share,
    encode_share,
)
from psc.hazmat.threshold.keys import (
    DecryptionShare,
    KeyShare,
    PackedDecryptionShare,
    ShareProof,
    ThresholdPublicKey,
)

VECTORS = Path(__file__).parent.parent / "protocols" / "vectors" / "threshold.json"


@cache
def primes(bits: int) -> tuple[int, int]:
    entry = json.loads(VECTORS.read_text())["test_safe_primes"][str(bits)]
    return int(entry["p"], 16), int(entry["q"], 16)


@cache
def dealt(k: int, parties: int, bits: int) -> tuple[ThresholdPublicKey, tuple[KeyShare, ...]]:
    rng = random.Random(f"dealer/{k}/{parties}/{bits}")
    pk, shares = deal(
        k, parties, bits=bits, randbelow=rng.randrange, allow_insecure=True, _primes=primes(bits)
    )
    return pk, tuple(shares)


CONFIGS = [(2, 3, 512), (3, 5, 1024)]


def encrypt(pk: ThresholdPublicKey, m: int, rng: random.Random) -> mpz:
    return pk.public.raw_encrypt(m, pk.public.random_rn(rng.randrange))


def all_shares(
    pk: ThresholdPublicKey, keys: tuple[KeyShare, ...], c: int, rng: random.Random
) -> list[DecryptionShare]:
    return [ks.decryption_share(c, randbelow=rng.randrange) for ks in keys]


def full_private_key(bits: int) -> PaillierPrivateKey:
    return _keypair_from_primes(*primes(bits), allow_insecure=True)[1]


# -- keygen ------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "parties", "bits"), CONFIGS)
def test_dealt_key_is_consistent(k: int, parties: int, bits: int) -> None:
    pk, keys = dealt(k, parties, bits)
    assert pk.public.bits == bits and pk.k == k and pk.parties == parties
    assert len(keys) == parties and [ks.index for ks in keys] == list(range(1, parties + 1))
    pk.check_verification_keys()
    for ks in keys:
        ks.check()
    # the public side is the ordinary Paillier key of the shipped primes
    assert full_private_key(bits).public == pk.public


def test_deal_is_deterministic_given_randomness() -> None:
    a = deal(2, 3, bits=512, randbelow=random.Random(7).randrange, allow_insecure=True)
    b = deal(2, 3, bits=512, randbelow=random.Random(7).randrange, allow_insecure=True)
    assert a[0] == b[0] and a[0].fingerprint == b[0].fingerprint
    assert [s.secret for s in a[1]] == [s.secret for s in b[1]]
    a[0].check_verification_keys()


def test_generated_safe_primes_are_safe_and_exact_size() -> None:
    rng = random.Random(3)
    for bits in (64, 128, 200):
        p = _generate_safe_prime(bits, rng.randrange)
        assert p.bit_length() == bits and p >> (bits - 2) == 3
        assert gmpy2.is_prime(p) and gmpy2.is_prime((p - 1) // 2)


def test_deal_refuses_bad_parameters() -> None:
    p, q = primes(512)
    with pytest.raises(ParameterError, match="insecure"):
        deal(2, 3, bits=1024, _primes=primes(1024))
    with pytest.raises(ParameterError, match="threshold k"):
        deal(4, 3, bits=512, allow_insecure=True, _primes=(p, q))
    with pytest.raises(ParameterError, match="threshold k"):
        deal(0, 3, bits=512, allow_insecure=True, _primes=(p, q))
    with pytest.raises(ParameterError, match="parties"):
        deal(2, 65, bits=512, allow_insecure=True, _primes=(p, q))
    with pytest.raises(ParameterError, match="not 1024"):
        deal(2, 3, bits=1024, allow_insecure=True, _primes=(p, q))
    with pytest.raises(ParameterError, match="distinct"):
        deal(2, 3, bits=512, allow_insecure=True, _primes=(p, p))
    # 2p + 1 for the safe prime p is not a safe prime here: any non-safe prime is refused
    not_safe = int(gmpy2.next_prime(p))
    with pytest.raises(ParameterError, match="safe primes"):
        deal(2, 3, bits=512, allow_insecure=True, _primes=(not_safe, q))


def test_tampered_keys_are_detected() -> None:
    pk, keys = dealt(3, 5, 1024)
    nsq = pk.public.nsquare
    vks = list(pk.verification_keys)
    vks[3] = vks[3] * pk.v % nsq
    bad_pk = ThresholdPublicKey(pk.public, pk.k, pk.parties, pk.v, tuple(vks))
    assert bad_pk.fingerprint != pk.fingerprint
    with pytest.raises(InvalidMessage, match="party 4"):
        bad_pk.check_verification_keys()
    with pytest.raises(InvalidMessage, match="party 2"):
        KeyShare(pk, 2, keys[1].secret + 1).check()
    # a dealer whose secret is not 0 mod m: consistent polynomial, but it cannot decrypt
    rng = random.Random(5)
    s = [mpz(rng.randrange(int(pk.public.n))) for _ in range(2)]
    line = [s[0] + s[1] * i for i in range(1, 6)]
    wrong = tuple(gmpy2.powmod(pk.v, pk.delta * x, nsq) for x in line)
    with pytest.raises(InvalidMessage, match="0 mod m"):
        ThresholdPublicKey(pk.public, 2, 5, pk.v, wrong).check_verification_keys()


def test_public_key_json_roundtrip_and_validation() -> None:
    pk, _ = dealt(2, 3, 512)
    again = ThresholdPublicKey.from_json(json.loads(json.dumps(pk.to_json())))
    assert again == pk and again.fingerprint == pk.fingerprint
    with pytest.raises(ParameterError, match="verification keys"):
        ThresholdPublicKey(pk.public, 2, 3, pk.v, pk.verification_keys[:2])
    with pytest.raises(ParameterError, match="units"):
        ThresholdPublicKey(pk.public, 2, 3, pk.public.n, pk.verification_keys)


# -- any k of n decrypt ------------------------------------------------------------------
@pytest.mark.parametrize(("k", "parties", "bits"), CONFIGS)
def test_every_k_subset_decrypts(k: int, parties: int, bits: int) -> None:
    pk, keys = dealt(k, parties, bits)
    rng = random.Random(11)
    m = rng.randrange(int(pk.public.n))
    c = encrypt(pk, m, rng)
    shares = all_shares(pk, keys, c, rng)
    for size in range(k, parties + 1):
        for subset in itertools.combinations(shares, size):
            assert combine(pk, c, list(subset)) == m
    assert full_private_key(bits).raw_decrypt(c) == m


@settings(max_examples=15)
@given(
    config=st.sampled_from(CONFIGS),
    data=st.data(),
    plaintext=st.integers(min_value=0, max_value=2**1024),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_any_k_of_n_decrypts_property(
    config: tuple[int, int, int], data: st.DataObject, plaintext: int, seed: int
) -> None:
    k, parties, bits = config
    pk, keys = dealt(k, parties, bits)
    order = data.draw(st.permutations(range(parties)), label="order")
    size = data.draw(st.integers(min_value=k, max_value=parties), label="size")
    rng = random.Random(seed)
    m = int(plaintext % pk.public.n)
    c = encrypt(pk, m, rng)
    shares = [keys[i].decryption_share(c, randbelow=rng.randrange) for i in order[:size]]
    assert combine(pk, c, shares) == m
    result = decrypt_with_committee(pk, c, shares)
    assert result.plaintext == m and result.bad == ()
    assert result.used == tuple(sorted(s.index for s in shares)[:k])


# -- fewer than k cannot -----------------------------------------------------------------
@pytest.mark.parametrize(("k", "parties", "bits"), CONFIGS)
def test_fewer_than_k_shares_cannot_decrypt(k: int, parties: int, bits: int) -> None:
    pk, keys = dealt(k, parties, bits)
    rng = random.Random(13)
    m = rng.randrange(int(pk.public.n))
    c = encrypt(pk, m, rng)
    shares = all_shares(pk, keys, c, rng)
    for size in range(k):
        for subset in itertools.combinations(shares, size):
            with pytest.raises(InsufficientShares, match=f"{k} needed"):
                combine(pk, c, list(subset))
            with pytest.raises(InsufficientShares):
                decrypt_with_committee(pk, c, subset)
            if size == 0:
                continue
            # interpolating k-1 shares as if they were enough: garbage, never m
            values = {s.index: s.value for s in subset}
            assert _combine_values(pk, values, check=False) != m
            with pytest.raises(InvalidMessage, match="power of 1 \\+ n"):
                _combine_values(pk, values)


@pytest.mark.parametrize(("k", "parties", "bits"), CONFIGS)
def test_k_minus_1_key_shares_fit_every_secret(k: int, parties: int, bits: int) -> None:
    """Information-theoretic hiding: k-1 shares are consistent with *any* secret d*.

    For every d* there is a polynomial of degree k-1 over Z_{nm} through (0, d*) and the
    coalition's k-1 shares (Lagrange over Z_{nm}: the index differences are units), so
    the shares alone say nothing about d.
    """
    _, keys = dealt(k, parties, bits)
    p, q = (mpz(x) for x in primes(bits))
    nm = p * q * ((p - 1) // 2) * ((q - 1) // 2)
    rng = random.Random(17)
    for coalition in itertools.combinations(keys, k - 1):
        xs = [0] + [ks.index for ks in coalition]
        for d_star in (mpz(0), mpz(1), mpz(rng.randrange(int(nm)))):
            ys = [d_star] + [ks.secret for ks in coalition]

            def f(x: int, xs: list[int] = xs, ys: list[mpz] = ys) -> mpz:
                acc = mpz(0)
                for j, (xj, yj) in enumerate(zip(xs, ys, strict=True)):
                    num, den = mpz(1), mpz(1)
                    for t, xt in enumerate(xs):
                        if t != j:
                            num, den = num * (x - xt), den * (xj - xt)
                    acc += yj * num * gmpy2.invert(den % nm, nm)
                return acc % nm

            assert f(0) == d_star
            assert all(f(ks.index) == ks.secret for ks in coalition)


# -- wrong shares are caught and their holder identified ---------------------------------
def _tamper(
    kind: str, pk: ThresholdPublicKey, s: DecryptionShare, other: DecryptionShare
) -> DecryptionShare:
    n, nsq = pk.public.n, pk.public.nsquare
    e, z = s.proof.challenge, s.proof.response
    if kind == "value":
        return DecryptionShare(s.index, s.value * (n + 1) % nsq, s.proof)
    if kind == "value_doubled":
        return DecryptionShare(s.index, s.value * 2 % nsq, s.proof)
    if kind == "value_negated":  # same square, but the proof binds the exact value
        return DecryptionShare(s.index, nsq - s.value, s.proof)
    if kind == "challenge":
        return DecryptionShare(s.index, s.value, ShareProof(e ^ (1 << 100), z))
    if kind == "response":
        return DecryptionShare(s.index, s.value, ShareProof(e, z + 1))
    if kind == "response_too_large":
        return DecryptionShare(s.index, s.value, ShareProof(e, z + (mpz(1) << (pk.nonce_bits + 1))))
    if kind == "other_ciphertext":
        return other
    if kind == "not_a_unit":
        return DecryptionShare(s.index, n, s.proof)
    raise AssertionError(kind)


TAMPERINGS = [
    "value",
    "value_doubled",
    "value_negated",
    "challenge",
    "response",
    "response_too_large",
    "other_ciphertext",
    "not_a_unit",
]


@pytest.mark.parametrize("kind", TAMPERINGS)
@pytest.mark.parametrize(("k", "parties", "bits"), CONFIGS)
def test_wrong_share_is_caught_and_holder_identified(
    kind: str, k: int, parties: int, bits: int
) -> None:
    pk, keys = dealt(k, parties, bits)
    rng = random.Random(19)
    m = rng.randrange(int(pk.public.n))
    c, c2 = encrypt(pk, m, rng), encrypt(pk, m, rng)  # same plaintext, fresh randomness
    shares = all_shares(pk, keys, c, rng)
    cheater = parties  # the last party cheats
    forged = _tamper(
        kind,
        pk,
        shares[cheater - 1],
        keys[cheater - 1].decryption_share(c2, randbelow=rng.randrange),
    )
    with pytest.raises(InvalidMessage, match=f"party {cheater}"):
        pk.verify_share(c, forged)
    mixed = [forged, *shares[: k - 1]]
    with pytest.raises(InvalidMessage, match=f"party {cheater}"):
        combine(pk, c, mixed)
    result = decrypt_with_committee(pk, c, [*shares[:-1], forged])
    assert result.plaintext == m and result.bad == (cheater,)
    assert cheater not in result.used and len(result.used) == k


@pytest.mark.parametrize(("k", "parties", "bits"), CONFIGS)
def test_relabelled_share_is_caught(k: int, parties: int, bits: int) -> None:
    pk, keys = dealt(k, parties, bits)
    rng = random.Random(23)
    c = encrypt(pk, 42, rng)
    s1 = keys[0].decryption_share(c, randbelow=rng.randrange)
    relabelled = DecryptionShare(2, s1.value, s1.proof)
    with pytest.raises(InvalidMessage, match="party 2"):
        pk.verify_share(c, relabelled)
    out_of_range = DecryptionShare(parties + 1, s1.value, s1.proof)
    with pytest.raises(InvalidMessage, match=f"party {parties + 1}"):
        pk.verify_share(c, out_of_range)


def test_committee_with_many_bad_shares() -> None:
    pk, keys = dealt(3, 5, 1024)
    rng = random.Random(29)
    m = rng.randrange(int(pk.public.n))
    c, c2 = encrypt(pk, m, rng), encrypt(pk, m + 1, rng)
    good = all_shares(pk, keys, c, rng)
    wrong = all_shares(pk, keys, c2, rng)
    # parties 2 and 4 cheat; 1, 3, 5 are honest; duplicates of valid shares are harmless
    sent = [good[0], wrong[1], good[2], good[2], _tamper("response", pk, good[3], good[3]), good[4]]
    result = decrypt_with_committee(pk, c, sent)
    assert (result.plaintext, result.used, result.bad) == (m, (1, 3, 5), (2, 4))
    # a party that sends one good and one bad share is excluded entirely
    result = decrypt_with_committee(pk, c, [*good, wrong[0]])
    assert result.bad == (1,) and result.used == (2, 3, 4)
    # three cheaters leave two good shares: refused, cheaters named
    with pytest.raises(InsufficientShares, match="2 valid") as info:
        decrypt_with_committee(pk, c, [good[0], wrong[1], wrong[2], wrong[3], good[4]])
    assert info.value.bad == (2, 3, 4)


def test_combine_rejects_duplicate_indices() -> None:
    pk, keys = dealt(2, 3, 512)
    rng = random.Random(31)
    c = encrypt(pk, 7, rng)
    s = keys[0].decryption_share(c, randbelow=rng.randrange)
    with pytest.raises(ValueError, match="duplicate decryption share index 1"):
        combine(pk, c, [s, s])


def test_ciphertext_outside_the_group_is_refused() -> None:
    pk, keys = dealt(2, 3, 512)
    for bad in (0, pk.public.n, pk.public.nsquare, 3 * pk.public.n):
        with pytest.raises(InvalidMessage, match="Z_"):
            keys[0].decryption_share(bad)
        with pytest.raises(InvalidMessage, match="Z_"):
            decrypt_with_committee(pk, bad, [])


# -- encoding ----------------------------------------------------------------------------
def test_share_encoding_roundtrip_and_framing() -> None:
    pk, keys = dealt(2, 3, 512)
    rng = random.Random(37)
    c = encrypt(pk, 99, rng)
    s = keys[1].decryption_share(c, randbelow=rng.randrange)
    data = encode_share(pk, s)
    assert len(data) == 12 + pk.element_bytes + 32 + pk.response_bytes
    assert decode_share(pk, data) == s
    for bad in (
        data[:-1],
        data + b"\0",
        b"XXXX" + data[4:],
        data[:5] + b"\x02" + data[6:],
        data[:3],
    ):
        with pytest.raises(InvalidMessage):
            decode_share(pk, bad)
    ct = PackedPaillier(pk.public, SlotLayout.for_key(512, 16), allow_insecure_key=True).encrypt(
        np.arange(5, dtype=np.int64)
    )
    ps = keys[0].packed_decryption_share(ct, randbelow=rng.randrange)
    pdata = encode_packed_share(pk, ps)
    assert decode_packed_share(pk, pdata) == ps
    with pytest.raises(InvalidMessage, match="kind"):
        decode_share(pk, pdata)


# -- packed ciphertexts and phe ----------------------------------------------------------
@pytest.mark.parametrize(("k", "parties", "bits"), CONFIGS)
def test_packed_sum_decrypts_like_the_full_key(k: int, parties: int, bits: int) -> None:
    pk, keys = dealt(k, parties, bits)
    rng = random.Random(41)
    layout = SlotLayout.for_key(bits, 20)
    backend = PackedPaillier(
        pk.public,
        layout,
        pool=RandomnessPool(pk.public, randbelow=rng.randrange),
        allow_insecure_key=True,
    )
    n_values = 2 * layout.slots + 5  # three blocks, the last one partial
    gen = np.random.default_rng(41)
    vectors = [gen.integers(-1000, 1001, n_values, dtype=np.int64) for _ in range(4)]
    total = backend.sum(backend.encrypt(v, bound=1000) for v in vectors)
    expected = np.sum(vectors, axis=0)
    shares = [ks.packed_decryption_share(total, randbelow=rng.randrange) for ks in keys]
    for subset in itertools.combinations(shares, k):
        result = decrypt_packed(pk, total, subset)
        assert result.plaintext.dtype == np.int64
        np.testing.assert_array_equal(result.plaintext, expected)
        assert result.bad == () and result.used == tuple(s.index for s in subset)
    np.testing.assert_array_equal(backend.decrypt(total, full_private_key(bits)), expected)
    # a cheater is identified, the others still decrypt
    swapped = PackedDecryptionShare(1, shares[0].values[::-1], shares[0].proof)
    one_block = list(shares[1].values)
    one_block[2] = one_block[2] * (pk.public.n + 1) % pk.public.nsquare
    altered = PackedDecryptionShare(2, tuple(one_block), shares[1].proof)
    for bad in (swapped, altered):
        with pytest.raises(InvalidMessage, match=f"party {bad.index}"):
            pk.verify_packed_share(total.blocks, bad)
    if parties - 2 >= k:
        result = decrypt_packed(pk, total, [swapped, altered, *shares[2:]])
        assert result.bad == (1, 2) and result.used == tuple(range(3, 3 + k))
        np.testing.assert_array_equal(result.plaintext, expected)
    else:
        with pytest.raises(InsufficientShares) as info:
            decrypt_packed(pk, total, [swapped, altered, *shares[2:]])
        assert info.value.bad == (1, 2)
        result = decrypt_packed(pk, total, [swapped, *shares[1:]])
        assert result.bad == (1,)
        np.testing.assert_array_equal(result.plaintext, expected)
    with pytest.raises(InsufficientShares):
        decrypt_packed(pk, total, shares[: k - 1])
    # a share for another packed ciphertext (one block fewer) is refused by name
    short = PackedCiphertext(
        total.key_fingerprint, layout, layout.slots, total.bound, total.blocks[:1]
    )
    malformed = PackedCiphertext(
        total.key_fingerprint, layout, n_values, total.bound, total.blocks[:1]
    )
    with pytest.raises(ValueError, match="1 blocks for"):
        decrypt_packed(pk, malformed, shares)
    with pytest.raises(InvalidMessage, match="party 3"):
        pk.verify_packed_share(short.blocks, shares[2])


def test_packed_ciphertext_under_another_key_is_refused() -> None:
    pk, keys = dealt(2, 3, 512)
    other, _ = dealt(3, 5, 1024)
    ct = PackedPaillier(
        other.public, SlotLayout.for_key(1024, 16), allow_insecure_key=True
    ).encrypt(np.arange(3, dtype=np.int64))
    with pytest.raises(KeyMismatch):
        decrypt_packed(pk, ct, [])
    with pytest.raises(KeyMismatch):
        keys[0].packed_decryption_share(ct)


def test_phe_ciphertexts_decrypt_with_the_committee() -> None:
    pk, keys = dealt(3, 5, 1024)
    phe_pk = pk.public.to_phe()
    a, b = phe_pk.encrypt(123456789), phe_pk.encrypt(-23456789)
    total = a + b
    rng = random.Random(43)
    c = total.ciphertext(be_secure=True)
    result = decrypt_with_committee(pk, c, all_shares(pk, keys, c, rng)[1:4])
    from phe.paillier import EncodedNumber

    assert EncodedNumber(phe_pk, result.plaintext, total.exponent).decode() == 100000000
    raw = phe_pk.raw_encrypt(31337)
    assert combine(pk, raw, all_shares(pk, keys, raw, rng)[:3]) == 31337


@pytest.mark.slow
def test_2048_bit_committee_decrypts_packed() -> None:
    rng = random.Random(47)
    pk, keys = deal(
        3, 5, bits=2048, randbelow=rng.randrange, allow_insecure=True, _primes=primes(2048)
    )
    pk.check_verification_keys()
    layout = SlotLayout.for_key(2048, 24)
    backend = PackedPaillier(
        pk.public, layout, pool=RandomnessPool(pk.public, randbelow=rng.randrange)
    )
    vec = np.random.default_rng(47).integers(-10_000, 10_001, layout.slots + 1, dtype=np.int64)
    ct = backend.encrypt(vec, bound=10_000)
    shares = [ks.packed_decryption_share(ct, randbelow=rng.randrange) for ks in keys[1:4]]
    np.testing.assert_array_equal(decrypt_packed(pk, ct, shares).plaintext, vec)
    with pytest.raises(InsufficientShares):
        decrypt_packed(pk, ct, shares[:2])
