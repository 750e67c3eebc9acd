"""The encrypted exact grade circuit (psc.hazmat.exact.circuit) under the collective keys, decrypted
by k members, equals the oracle on every point of the toy catalog's domain; evaluation is
deterministic (the digest members bind their shares to)."""

from __future__ import annotations

import numpy as np
import pytest
import tenseal.sealapi as seal

from psc import oracle
from psc.hazmat.exact import threshold as T
from psc.hazmat.exact.circuit import baby_size, digest, encode, grade_ciphertext
from psc.hazmat.exact.polynomial import grade_polynomials
from tests._exact_fixtures import committee, seeded, toy_catalog


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    return committee(2, 3)


def _encrypt(ring, keys, values):  # type: ignore[no-untyped-def]
    ct = seal.Ciphertext()
    seal.Encryptor(ring.context, keys.public_key).encrypt(encode(ring, values), ct)
    return ct


def test_encrypted_grades_equal_the_oracle_on_the_whole_toy_domain(setup) -> None:  # type: ignore[no-untyped-def]
    ring, keys, secret = setup
    cat = toy_catalog()
    polys = grade_polynomials(cat, ring.t)
    lo, hi = polys.v_domain
    grid_v, grid_c = np.meshgrid(np.arange(lo, hi + 1), np.arange(0, polys.cap_domain[0] + 1))
    v = np.resize(grid_v.ravel(), ring.n)
    c = np.resize(grid_c.ravel(), ring.n)
    out, products = grade_ciphertext(
        ring, keys.relin_keys, polys, _encrypt(ring, keys, v), {"B": _encrypt(ring, keys, c)}
    )
    assert products > 0
    noise = T.noise_bits(ring, out, secret)
    bits = T.smudging_bits(ring, keys.k, keys.n, noise + 4)
    shares = {
        ell: T.decryption_share(ring, out, m.share, keys.n, bits, seeded(ell))
        for ell, m in keys.members.items()
    }
    got = T.combine_checked(ring, out, shares, keys.k, keys.n)
    want = oracle.grades_of(
        cat, cat.scheme.base_score + v, oracle.caps_from_counts(cat, {"B": c}, ring.n)
    )
    assert np.array_equal(got, want.astype(np.int64))


def test_evaluation_is_deterministic(setup) -> None:  # type: ignore[no-untyped-def]
    ring, keys, _ = setup
    polys = grade_polynomials(toy_catalog(), ring.t)
    v = _encrypt(ring, keys, np.arange(ring.n) % 11 - 8)
    c = _encrypt(ring, keys, np.zeros(ring.n, dtype=np.int64))
    a, _ = grade_ciphertext(ring, keys.relin_keys, polys, v, {"B": c})
    b, _ = grade_ciphertext(ring, keys.relin_keys, polys, v, {"B": c})
    assert digest(ring, a) == digest(ring, b)
    other = _encrypt(ring, keys, np.arange(ring.n) % 11 - 8)  # same slots, fresh randomness
    d, _ = grade_ciphertext(ring, keys.relin_keys, polys, other, {"B": c})
    assert digest(ring, d) != digest(ring, a)


def test_baby_step_size_minimises_products() -> None:
    assert baby_size(4380) == 64
    assert baby_size(10) in (2, 4)
    assert baby_size(0) == 1


@pytest.mark.slow
def test_city_grades_on_a_full_ciphertext_at_the_secure_parameters(city) -> None:  # type: ignore[no-untyped-def]
    # N = 32768, 14 x 60-bit primes (128-bit security): a 3-of-5 dealer-free key, every
    # live sum of the city's domain (cycled over the 32,768 slots) with cap counts 0..2,
    # decrypted by 4 members (cross-checked) and compared with the oracle; the circuit's
    # noise stays below the smudging allowance.  About 10 minutes on 2 cores.
    from psc.hazmat.exact.ring import CITY_PARAMS, Ring
    from psc.parties.exact.setup import run_setup

    ring = Ring(CITY_PARAMS)
    keys, secret = run_setup(ring, 3, 5, b"slow-city", seeded(3), keep_secret=True)
    polys = grade_polynomials(city, ring.t)
    lo, hi = polys.v_domain
    v = np.resize(np.arange(lo, hi + 1), ring.n)
    c = np.random.default_rng(8).integers(0, 3, size=ring.n)
    out, products = grade_ciphertext(
        ring, keys.relin_keys, polys, _encrypt(ring, keys, v), {"C": _encrypt(ring, keys, c)}
    )
    assert products > 200  # 219 measured: band, cap reduction and indicator
    bits, allowance = T.widest_smudging(ring, 3, 5)
    assert T.noise_bits(ring, out, secret) + 64 <= allowance
    shares = {
        ell: T.decryption_share(ring, out, keys.members[ell].share, 5, bits, seeded(ell))
        for ell in (1, 2, 4, 5)
    }
    got = T.combine_checked(ring, out, shares, 3, 5)
    want = oracle.grades_of(
        city, city.scheme.base_score + v, oracle.caps_from_counts(city, {"C": c}, ring.n)
    )
    assert np.array_equal(got, want.astype(np.int64))
