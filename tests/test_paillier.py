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
from psc.hazmat.paillier import (
    MIN_KEY_BITS,
    FixedBaseTable,
    PaillierPrivateKey,
    PaillierPublicKey,
    ShortExponentRandomizer,
    _keypair_from_primes,
    best_window,
    generate_keypair,
    security_bits,
    short_exponent_bits,
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


# ----------------------------------------------------------------------------------------
# short-exponent (Damgard-Jurik-Nielsen) randomizers and fixed-base tables


@settings(max_examples=30)
@given(
    st.integers(1, 200),
    st.integers(1, 10),
    st.integers(2, 2**61 - 1),
    st.data(),
)
def test_fixed_base_table_equals_powmod(
    bits: int, window: int, base: int, data: st.DataObject
) -> None:
    modulus = mpz(2**127 - 1) * mpz(2**89 - 1)
    table = FixedBaseTable(base, modulus, bits, window)
    for e in (0, 1, 2**bits - 1, data.draw(st.integers(0, 2**bits - 1), label="e")):
        assert table.pow(e) == gmpy2.powmod(base, e, modulus)


def test_fixed_base_table_refuses_exponents_out_of_range() -> None:
    table = FixedBaseTable(3, 1009 * 1013, 16, 4)
    for bad in (-1, 2**16):
        with pytest.raises(ParameterError, match="outside"):
            table.pow(bad)
    with pytest.raises(ParameterError):
        FixedBaseTable(3, 101, 0)
    with pytest.raises(ParameterError):
        FixedBaseTable(3, 101, 8, 17)


def test_short_exponent_lengths_follow_the_security_level() -> None:
    assert [security_bits(b) for b in (1024, 2048, 3072, 4096, 7680, 15360)] == [
        80,
        112,
        128,
        128,
        192,
        256,
    ]
    assert short_exponent_bits(2048) == 448 and short_exponent_bits(3072) == 512


@settings(max_examples=15)
@given(paillier_keypairs(seeds=8), st.integers(0, 2**32))
def test_short_exponent_opening_is_a_paillier_opening(keys: Keypair, seed: int) -> None:
    """(h^alpha mod n)^n = h_s^alpha mod n^2: the pair is a valid (r, r^n), so the
    ciphertext is an ordinary Paillier ciphertext that psc and phe decrypt."""
    pk, sk = keys
    rng = seeded(seed)
    z = ShortExponentRandomizer.generate(pk, rng.randrange)
    assert z.exponent_bits == short_exponent_bits(pk.bits)
    alpha = z.draw(rng.randrange)
    assert 1 <= alpha < 2**z.exponent_bits
    r, rn = z.r(alpha), z.rn(alpha)
    assert 0 < r < pk.n and gmpy2.gcd(r, pk.n) == 1
    assert gmpy2.powmod(r, pk.n, pk.nsquare) == rn
    assert r == gmpy2.powmod(z.base, alpha, pk.n)
    m = rng.randrange(int(pk.n))
    c = pk.raw_encrypt(m, rn)
    assert sk.raw_decrypt(c) == m
    assert sk.to_phe().raw_decrypt(int(c)) == m


def test_short_exponent_randomizer_refuses_weak_parameters(test_keypair: Keypair) -> None:
    pk = test_keypair[0]
    floor = 2 * security_bits(pk.bits)
    with pytest.raises(ParameterError, match="lambda method"):
        ShortExponentRandomizer(pk, 4, exponent_bits=floor - 1)
    with pytest.raises(ParameterError, match="outside"):
        ShortExponentRandomizer(pk, 4, exponent_bits=pk.bits + 1)
    for h in (0, 1, int(pk.n) - 1, int(test_keypair[1].p)):
        with pytest.raises(ParameterError, match="unit"):
            ShortExponentRandomizer(pk, h)
    # generate() skips a draw that is not a unit and never returns alpha = 0
    script: Iterator[int] = iter([0, int(test_keypair[1].q), 5])
    z = ShortExponentRandomizer.generate(pk, lambda _b: next(script))
    assert z.base == (-25) % pk.n
    assert z.draw(lambda _b: 0) == 1


def test_best_window_trades_table_size_for_powers() -> None:
    assert best_window(448, 0) == 1  # no powers: the smallest table
    assert best_window(448, 76) == 5  # one 10k-subject vector at 132 slots per block
    assert best_window(448, 1000) == 8
    assert best_window(448, 10**9) == 10  # capped: tables stay small
    # prepare() only resizes tables not built yet, and never changes a value
    from psc.testing import insecure_keypair

    pk = insecure_keypair(0, 512)[0]
    a = ShortExponentRandomizer.generate(pk, seeded(1).randrange)
    b = ShortExponentRandomizer(pk, int(a.base))
    b.prepare(10)
    for e in (1, 2**100 + 12345, 2**a.exponent_bits - 1):
        assert a.rn(e) == b.rn(e) and a.r(e) == b.r(e)
