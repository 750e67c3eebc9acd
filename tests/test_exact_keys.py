"""Dealer-free collective keys (psc.hazmat.exact.keys, psc.parties.exact.setup) against their definitions
(Mouchet et al., PETS 2021): the collective public key encrypts to the sum of the members'
secrets, the collective relinearization key relinearizes, and the Shamir re-sharing gives
shares any k of which reconstruct the secret while any k-1 are uniform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tenseal.sealapi as seal

from psc.hazmat.exact import keys as K
from psc.hazmat.exact import threshold as T
from psc.hazmat.exact.circuit import encode
from psc.parties.exact.setup import check_setup
from tests._exact_fixtures import committee, seeded


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    return committee(3, 5)


def _decrypt(ring, secret, ct):  # type: ignore[no-untyped-def]
    out = seal.Plaintext()
    seal.Decryptor(ring.context, K.secret_key_from(ring, secret)).decrypt(ct, out)
    return np.array(ring.encoder.decode_uint64(out), dtype=np.int64)


def test_collective_public_key_encrypts_to_the_sum_of_member_secrets(setup) -> None:  # type: ignore[no-untyped-def]
    ring, keys, secret = setup
    values = np.random.default_rng(3).integers(0, ring.t, size=ring.n)
    ct = seal.Ciphertext()
    seal.Encryptor(ring.context, keys.public_key).encrypt(encode(ring, values), ct)
    assert np.array_equal(_decrypt(ring, secret, ct), values)
    # and a wrong secret (one member's share missing) does not decrypt it
    assert not np.array_equal(_decrypt(ring, K.fresh_secret(ring), ct), values)


def test_collective_relinearization_key_relinearizes(setup) -> None:  # type: ignore[no-untyped-def]
    ring, keys, secret = setup
    x = np.random.default_rng(4).integers(0, ring.t, size=ring.n)
    ct = seal.Ciphertext()
    seal.Encryptor(ring.context, keys.public_key).encrypt(encode(ring, x), ct)
    fresh = T.noise_bits(ring, ct, secret)
    out = seal.Ciphertext()
    ring.evaluator.square(ct, out)
    ring.evaluator.relinearize_inplace(out, keys.relin_keys)
    assert out.size() == 2
    assert np.array_equal(_decrypt(ring, secret, out), x * x % ring.t)
    # the RKG key's larger noise still leaves a product within t*N*fresh noise, give or take
    assert T.noise_bits(ring, out, secret) <= fresh + math.log2(ring.t * ring.n) + 12


def test_any_k_shamir_shares_reconstruct_the_secret(setup) -> None:  # type: ignore[no-untyped-def]
    ring, keys, secret = setup
    for subset in [(1, 2, 3), (2, 4, 5), (1, 3, 5)]:
        lam = T.scaled_lagrange(subset, keys.n)
        acc = np.zeros_like(secret[: ring.levels])
        for ell in subset:
            acc = ring.add(acc, ring.mul_scalar(keys.members[ell].share, lam[ell]))
        assert np.array_equal(acc, ring.mul_scalar(secret[: ring.levels], T.delta(keys.n)))


def test_k_minus_one_shares_are_uniform_residues(setup) -> None:  # type: ignore[no-untyped-def]
    # Each limb of a share should be uniform modulo its prime.  Count residues in the
    # lower half: Binomial(M, ~1/2); Hoeffding: P(|X/M - p| > 0.02) <= 2 exp(-2 M 0.02^2),
    # below 1e-6 for M = 2 * 7 * 4096 = 57344 (2 exp(-45.9)).
    ring, keys, _ = setup
    counts = total = 0
    for ell in (1, 2):
        share = keys.members[ell].share
        for j, qj in enumerate(ring.primes):
            counts += int(np.sum(share[j] < np.uint64(qj // 2)))
            total += ring.n
    assert abs(counts / total - 0.5) < 0.02


def test_known_answer_check_passes_and_catches_a_corrupted_share(setup) -> None:  # type: ignore[no-untyped-def]
    ring, keys, _ = setup
    bits = T.smudging_bits(ring, keys.k, keys.n, 40)
    check_setup(keys, b"test-session", bits, seeded(5))
    saved = keys.members[4].share
    keys.members[4].share = ring.add(saved, ring.uniform(seeded(6)))
    try:
        with pytest.raises(Exception, match="known-answer check") as info:
            check_setup(keys, b"test-session", bits, seeded(7))
        assert 4 in info.value.bad  # type: ignore[attr-defined]
    finally:
        keys.members[4].share = saved


def test_session_binds_the_common_reference_string(setup) -> None:  # type: ignore[no-untyped-def]
    ring, _, _ = setup
    assert np.array_equal(K.crs_public(ring, b"a"), K.crs_public(ring, b"a"))
    assert not np.array_equal(K.crs_public(ring, b"a"), K.crs_public(ring, b"b"))
