"""k-of-n threshold decryption with smudging (psc.hazmat.exact.threshold): every k-subset decodes
the same shares, more than k shares are cross-checked and a bad share is named, and the
smudging width is refused when the modulus cannot carry it."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import tenseal.sealapi as seal

from psc.exceptions import InsufficientShares, ParameterError
from psc.hazmat.exact import threshold as T
from psc.hazmat.exact.circuit import encode
from psc.hazmat.exact.ring import LatticeParams, Ring
from tests._exact_fixtures import committee, seeded


@pytest.fixture(scope="module")
def setup():  # type: ignore[no-untyped-def]
    ring, keys, secret = committee(3, 5)
    values = np.random.default_rng(11).integers(0, ring.t, size=ring.n)
    ct = seal.Ciphertext()
    seal.Encryptor(ring.context, keys.public_key).encrypt(encode(ring, values), ct)
    bits = T.smudging_bits(ring, 3, 5, T.noise_bits(ring, ct, secret) + 2)
    shares = {
        ell: T.decryption_share(ring, ct, m.share, 5, bits, seeded(100 + ell))
        for ell, m in keys.members.items()
    }
    return ring, keys, ct, values, shares


def test_every_k_subset_decodes_the_same_shares(setup) -> None:  # type: ignore[no-untyped-def]
    ring, _, ct, values, shares = setup
    for subset in itertools.combinations(range(1, 6), 3):
        got = T.combine(ring, ct, {ell: shares[ell] for ell in subset}, 5)
        assert np.array_equal(got, values)
    assert np.array_equal(T.combine_checked(ring, ct, shares, 3, 5), values)


def test_fewer_than_k_shares_decrypt_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    ring, _, ct, _, shares = setup
    with pytest.raises(InsufficientShares, match="3 needed"):
        T.combine_checked(ring, ct, {1: shares[1], 2: shares[2]}, 3, 5)


def _tampered(ring, share, slot_shift: int):  # type: ignore[no-untyped-def]
    # add D * delta(X) for a plaintext polynomial: moves the decoded slots
    poly = np.zeros(ring.n, dtype=object)
    poly[0] = (ring.q // ring.t) * slot_shift
    return ring.add(share, ring.reduce_signed(poly))


def test_a_bad_share_among_k_plus_two_is_named(setup) -> None:  # type: ignore[no-untyped-def]
    ring, _, ct, _, shares = setup
    bad = dict(shares)
    bad[4] = _tampered(ring, shares[4], 1)
    with pytest.raises(InsufficientShares, match="suspects") as info:
        T.combine_checked(ring, ct, bad, 3, 5)
    assert info.value.bad == (4,)


def test_a_bad_share_among_k_plus_one_aborts_naming_every_sender(setup) -> None:  # type: ignore[no-untyped-def]
    ring, _, ct, _, shares = setup
    bad = {ell: shares[ell] for ell in (1, 2, 3, 5)}
    bad[2] = _tampered(ring, shares[2], 7)
    with pytest.raises(InsufficientShares) as info:
        T.combine_checked(ring, ct, bad, 3, 5)
    assert 2 in info.value.bad


def test_scaled_lagrange_coefficients_are_integers_that_interpolate() -> None:
    for n in range(1, 8):
        for k in range(1, n + 1):
            for subset in itertools.combinations(range(1, n + 1), k):
                lam = T.scaled_lagrange(subset, n)
                # sum_l (Delta lambda_l) f(ell) = Delta f(0) for f(x) = 5 + 3x^(k-1)
                f = (
                    {ell: Fraction(5 + 3 * ell ** (k - 1)) for ell in subset}
                    if k > 1
                    else {ell: Fraction(5) for ell in subset}
                )
                assert sum(lam[ell] * f[ell] for ell in subset) == 5 * T.delta(n)


def test_smudging_is_refused_when_the_modulus_cannot_carry_it() -> None:
    ring = Ring(LatticeParams(4096, (60, 60), secure=False))
    with pytest.raises(ParameterError, match="cannot carry the smudging"):
        T.smudging_bits(ring, 3, 5, 20)


def test_smudging_width_covers_the_simulation_bound(setup) -> None:  # type: ignore[no-untyped-def]
    ring = setup[0]
    b = T.smudging_bits(ring, 3, 5, 100)
    # 2^(b+1) >= 2^40 * N * n * factor * 2^100
    assert (1 << (b + 1)) >= (1 << 140) * ring.n * 5 * T.simulation_factor(3, 5)
