"""Raw Paillier (hazmat): algebra, key checks and phe interoperability in both directions."""

from __future__ import annotations

import random
from collections.abc import Iterator

import gmpy2
import pytest
from gmpy2 import mpz
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from phe import paillier as phe

from psc.exceptions import KeyMismatch, ParameterError
from psc.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    _keypair_from_primes,
    generate_keypair,
)
from psc.testing import insecure_keypair, paillier_keypairs

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]


@pytest.fixture(scope="module")
def phe_keypair() -> tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey]:
    """A key made by phe's own generator (small, INSECURE: tests only)."""
    return phe.generate_paillier_keypair(n_length=512)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)


@settings(max_examples=40)
@given(paillier_keypairs(), st.data())
def test_encrypt_decrypt_and_homomorphism(keys: Keypair, data: st.DataObject) -> None:
    pk, sk = keys
    n = int(pk.n)
    a = data.draw(st.integers(0, n - 1), label="a")
    b = data.draw(st.integers(0, n - 1), label="b")
    k = data.draw(st.integers(0, n - 1), label="k")
    rng = seeded(data.draw(st.integers(0, 2**32)))
    ca = pk.raw_encrypt(a, pk.random_rn(rng.randrange))
    cb = pk.raw_encrypt(b, pk.random_rn(rng.randrange))
    assert sk.raw_decrypt(ca) == a
    assert sk.raw_decrypt(ca * cb % pk.nsquare) == (a + b) % n  # E(a) * E(b) = E(a + b)
    assert sk.raw_decrypt(gmpy2.powmod(ca, k, pk.nsquare)) == a * k % n  # E(a)^k = E(k a)


@settings(max_examples=20)
@given(paillier_keypairs(seeds=8))
def test_insecure_test_keys_are_well_formed(keys: Keypair) -> None:
    pk, sk = keys
    assert pk.bits == 512
    assert sk.p < sk.q and sk.p * sk.q == pk.n
    assert gmpy2.is_prime(sk.p) and gmpy2.is_prime(sk.q)
    assert insecure_keypair(0) == insecure_keypair(0)  # deterministic


def test_random_rn_retries_until_r_is_a_unit(test_keypair: Keypair) -> None:
    pk, sk = test_keypair
    script: Iterator[int] = iter([0, int(sk.p), int(sk.q) * 3, 12345])
    rn = pk.random_rn(lambda bound: next(script))
    assert rn == gmpy2.powmod(12345, pk.n, pk.nsquare)


def test_key_fingerprints_tell_keys_apart(test_keypair: Keypair, other_keypair: Keypair) -> None:
    assert test_keypair[0].fingerprint != other_keypair[0].fingerprint
    assert len(test_keypair[0].fingerprint) == 16
    assert PaillierPublicKey(test_keypair[0].n).fingerprint == test_keypair[0].fingerprint


# ----------------------------------------------------------------------------------------
# refusals


def test_generate_keypair_refuses_short_keys() -> None:
    for bits in (512, 1024, MIN_KEY_BITS - 1):
        with pytest.raises(ParameterError, match=r"insecure; use at least 2048.*paillier_keypairs"):
            generate_keypair(bits)


def test_keys_from_primes_are_checked(test_keypair: Keypair) -> None:
    _, sk = test_keypair
    p, q = int(sk.p), int(sk.q)
    with pytest.raises(ParameterError, match="below the 2048-bit minimum"):
        _keypair_from_primes(p, q)
    with pytest.raises(ParameterError, match="must be prime"):
        _keypair_from_primes(p, q + 2, allow_insecure=True)
    with pytest.raises(ParameterError, match="gcd"):
        _keypair_from_primes(3, 7, allow_insecure=True)  # 3 divides (7 - 1)
    with pytest.raises(KeyMismatch, match="does not equal the public modulus"):
        PaillierPrivateKey(test_keypair[0], mpz(p), mpz(int(gmpy2.next_prime(q))))
    with pytest.raises(ParameterError, match="odd composite"):
        PaillierPublicKey(mpz(2 * p))


def test_raw_decrypt_refuses_elements_outside_z_n2(test_keypair: Keypair) -> None:
    pk, sk = test_keypair
    for c in (0, int(pk.nsquare), int(pk.nsquare) + 5, -1):
        with pytest.raises(KeyMismatch, match="not an element"):
            sk.raw_decrypt(c)


# ----------------------------------------------------------------------------------------
# phe interoperability


@settings(max_examples=30)
@given(paillier_keypairs(), st.data())
def test_phe_decrypts_psc_ciphertexts(keys: Keypair, data: st.DataObject) -> None:
    pk, sk = keys
    ppk, psk = pk.to_phe(), sk.to_phe()
    assert ppk.n == pk.n and ppk.g == pk.n + 1 and {psk.p, psk.q} == {sk.p, sk.q}
    v = data.draw(st.integers(-ppk.max_int, ppk.max_int), label="v")
    rng = seeded(data.draw(st.integers(0, 2**32)))
    c = pk.raw_encrypt(v % int(pk.n), pk.random_rn(rng.randrange))
    # phe's signed integer encoding: negative values live at the top of Z_n
    assert psk.decrypt(phe.EncryptedNumber(ppk, int(c), 0)) == v
    assert psk.raw_decrypt(int(c)) == v % int(pk.n)


@settings(max_examples=30)
@given(st.data())
def test_psc_accepts_phe_keys_and_decrypts_phe_ciphertexts(
    phe_keypair: tuple[phe.PaillierPublicKey, phe.PaillierPrivateKey], data: st.DataObject
) -> None:
    ppk, psk = phe_keypair
    pk = PaillierPublicKey.from_phe(ppk)
    sk = PaillierPrivateKey.from_phe(psk)
    assert pk.n == ppk.n and sk.public == pk
    v = data.draw(st.integers(-ppk.max_int, ppk.max_int), label="v")
    c = ppk.encrypt(v).ciphertext(be_secure=True)
    assert sk.raw_decrypt(c) == v % ppk.n
    # and the other way round on the same keys
    rng = seeded(data.draw(st.integers(0, 2**32)))
    assert (
        psk.decrypt(
            phe.EncryptedNumber(ppk, int(pk.raw_encrypt(v % ppk.n, pk.random_rn(rng.randrange))), 0)
        )
        == v
    )


def test_phe_key_round_trip_and_refusal(test_keypair: Keypair) -> None:
    pk, sk = test_keypair
    assert PaillierPublicKey.from_phe(pk.to_phe()) == pk
    back = PaillierPrivateKey.from_phe(sk.to_phe())
    assert (back.p, back.q) == (sk.p, sk.q)
    odd = pk.to_phe()
    odd.g = odd.n + 2
    with pytest.raises(KeyMismatch, match="g = n \\+ 1"):
        PaillierPublicKey.from_phe(odd)


def test_key_strategies_check_their_arguments() -> None:
    with pytest.raises(InvalidArgument, match=r"bits must be in 128\.\.8192"):
        paillier_keypairs(bits=64)
    with pytest.raises(InvalidArgument, match=r"seeds must be in 1\.\.1024"):
        paillier_keypairs(seeds=0)
