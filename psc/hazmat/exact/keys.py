"""Dealer-free threshold BFV keys (hazmat): collective key generation after Mouchet,
Troncoso-Pastoriza, Bossuat, Hubaux, "Multiparty Homomorphic Encryption from
Ring-Learning-With-Errors" (PETS 2021), with a ``k``-of-``n`` access structure by Shamir
re-sharing of the members' additive secret shares (after Mouchet, Bertrand, Hubaux, "An
Efficient Threshold Access-Structure for RLWE-Based Multiparty Homomorphic Encryption",
J. Cryptology 2023; here one Shamir sharing per RNS prime, pointwise in the NTT domain).

Notation (all polynomials in ``R_Q = Z_Q[X]/(X^N + 1)``, ``Q`` SEAL's key-level modulus,
NTT form, products pointwise per prime): member ``i`` holds a ternary ``s_i``; the
collective secret is ``s = sum_i s_i`` (never computed by anyone).  ``a``, ``a_j`` are
the common reference string (:func:`~psc.hazmat.exact.ring.shake_uniform`).

* **CKG** (collective public key): member ``i`` publishes ``p_i = -(a s_i + e_i)``; the
  key is ``(sum_i p_i, a) = (-(a s + e), a)``: SEAL's public-key form, so SEAL encrypts
  under it unchanged.
* **RKG** (relinearization key, two rounds), one component per data prime ``j`` with the
  SEAL gadget ``w_j`` (``P mod q_j`` on limb ``j``, 0 elsewhere)::

      round 1:  h0_i = -u_i a_j + s_i w_j + e0_i      h1_i = s_i a_j + e1_i
      round 2:  h0'_i = s_i h0 + e2_i                 h1'_i = (u_i - s_i) h1 + e3_i
      key_j  =  (h0' + h1', h1),  key_j[0] + key_j[1] s = s^2 w_j + s e0 + u e1 + e2 + e3

  which is exactly what SEAL's own key generation puts in a relinearization key (``s^2``
  times the gadget, plus noise), with a larger noise (measured in the tests).
* **Shamir re-sharing**: member ``i`` draws ``f_i(x) = s_i + r_1 x + ... + r_{k-1} x^{k-1}``
  (uniform ``r``, each limb modulo its prime) and sends ``f_i(l)`` to member ``l``, who keeps
  ``S_l = sum_i f_i(l)``.  ``S`` lies on ``F = sum_i f_i`` with ``F(0) = s``; any ``k``
  points give ``s``, any ``k - 1`` are uniformly distributed whatever ``s`` is.

Secrets and errors come from SEAL's own samplers (a fresh ``KeyGenerator`` per ternary
secret; an error as ``-(pk0 + a s)`` of a fresh SEAL public key), so psc samples no RLWE
distribution itself.  Shamir randomness is the ``randbytes`` argument (the seam).

What leaks: the published ``p_i``, ``h*_i`` are RLWE samples (pseudorandom under RLWE);
the Shamir shares sent to member ``l`` are uniform in any ``k - 1`` hands.  Not proven:
that a member's published shares are well formed (that needs lattice zero-knowledge
proofs psc does not have): a bad key is caught by :func:`~psc.hazmat.exact.threshold.check_setup`
(a known-answer decryption from every ``k``-subset) before any use, not prevented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as seal

from psc.hazmat.exact.ring import U64, RandBytes, Ring, shake_uniform
from psc.hazmat.exact.seal_io import pk_read, pk_write, rk_write, sk_read, sk_write

PK_LABEL = b"ckg"


def fresh_secret(ring: Ring) -> U64:
    """A ternary secret from SEAL's sampler (NTT form, key level)."""
    kg = seal.KeyGenerator(ring.context)
    return sk_read(ring, kg.secret_key())


class ErrorSource:
    """Error polynomials from SEAL's sampler (NTT form, key level): every SEAL public key
    is ``(-(a s + e), a)`` with fresh ``a`` and ``e``, so with ``s`` known (read once)
    ``e = -(pk0 + a s)``."""

    def __init__(self, ring: Ring) -> None:
        self._ring = ring
        self._kg = seal.KeyGenerator(ring.context)
        self._s = sk_read(ring, self._kg.secret_key())

    def __call__(self) -> U64:
        ring = self._ring
        pk = seal.PublicKey()
        self._kg.create_public_key(pk)
        p0, a = pk_read(ring, pk)
        return ring.neg(ring.add(p0, ring.mul(a, self._s, True), True), True)


def crs_public(ring: Ring, session: bytes) -> U64:
    return shake_uniform(ring, session + b"/" + PK_LABEL)


def crs_relin(ring: Ring, session: bytes, j: int) -> U64:
    return shake_uniform(ring, session + b"/rkg/" + j.to_bytes(2, "big"))


def gadget(ring: Ring, j: int, x: U64) -> U64:
    """``x * w_j``: ``(P mod q_j) x`` on limb ``j``, zero on every other limb (SEAL's RNS
    gadget for key switching)."""
    out = np.zeros_like(x)
    qj = ring.key_primes[j]
    out[j] = (x[j].astype(object) * (ring.special % qj) % qj).astype(np.uint64)
    return out


# -- CKG -----------------------------------------------------------------------------------
def ckg_share(ring: Ring, s_i: U64, a: U64, errors: ErrorSource) -> U64:
    """Member ``i``'s public-key share ``p_i = -(a s_i + e_i)``."""
    return ring.neg(ring.add(ring.mul(a, s_i, True), errors(), True), True)


def ckg_combine(ring: Ring, shares: list[U64], a: U64) -> Any:
    """The collective public key ``(sum p_i, a)`` as a SEAL ``PublicKey``."""
    kg = seal.KeyGenerator(ring.context)
    pk = seal.PublicKey()
    kg.create_public_key(pk)  # a container of the right shape; every word is overwritten
    acc = shares[0]
    for sh in shares[1:]:
        acc = ring.add(acc, sh, True)
    return pk_write(ring, pk, np.stack([acc, a]))


# -- RKG -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RkgRound1:
    h0: list[U64]  # one per data prime j
    h1: list[U64]


@dataclass(frozen=True)
class RkgRound2:
    h0: list[U64]
    h1: list[U64]


def rkg_round1(ring: Ring, s_i: U64, u_i: U64, crs: list[U64], errors: ErrorSource) -> RkgRound1:
    """Member ``i``'s first-round shares ``(-u_i a_j + s_i w_j + e0, s_i a_j + e1)``."""
    h0, h1 = [], []
    for j, a in enumerate(crs):
        t0 = ring.sub(gadget(ring, j, s_i), ring.mul(u_i, a, True), True)
        h0.append(ring.add(t0, errors(), True))
        h1.append(ring.add(ring.mul(s_i, a, True), errors(), True))
    return RkgRound1(h0, h1)


def sum_round(ring: Ring, rounds: list[RkgRound1] | list[RkgRound2]) -> tuple[list[U64], list[U64]]:
    levels = len(rounds[0].h0)
    h0, h1 = [], []
    for j in range(levels):
        a, b = rounds[0].h0[j], rounds[0].h1[j]
        for r in rounds[1:]:
            a = ring.add(a, r.h0[j], True)
            b = ring.add(b, r.h1[j], True)
        h0.append(a)
        h1.append(b)
    return h0, h1


def rkg_round2(
    ring: Ring, s_i: U64, u_i: U64, h0: list[U64], h1: list[U64], errors: ErrorSource
) -> RkgRound2:
    """Member ``i``'s second-round shares ``(s_i h0 + e2, (u_i - s_i) h1 + e3)``."""
    d = ring.sub(u_i, s_i, True)
    out0 = [ring.add(ring.mul(s_i, x, True), errors(), True) for x in h0]
    out1 = [ring.add(ring.mul(d, x, True), errors(), True) for x in h1]
    return RkgRound2(out0, out1)


def rkg_combine(ring: Ring, r2: list[RkgRound2], h1: list[U64]) -> Any:
    """The relinearization key ``(h0' + h1', h1)`` per component, as SEAL ``RelinKeys``."""
    g0, g1 = sum_round(ring, r2)
    kg = seal.KeyGenerator(ring.context)
    rk = seal.RelinKeys()
    kg.create_relin_keys(rk)  # container only: every component is overwritten below
    comps = [np.stack([ring.add(g0[j], g1[j], True), h1[j]]) for j in range(ring.levels)]
    return rk_write(ring, rk, comps)


# -- Shamir re-sharing ---------------------------------------------------------------------
def deal(ring: Ring, s_i: U64, k: int, n: int, randbytes: RandBytes) -> dict[int, U64]:
    """Member ``i``'s Shamir dealing of the data-level limbs of ``s_i``: ``{ell: f_i(l)}`` for
    ``l = 1..n``, degree ``k - 1``, one sharing per RNS prime."""
    base = s_i[: ring.levels]
    coeffs = [ring.uniform(randbytes) for _ in range(k - 1)]
    out: dict[int, U64] = {}
    for x in range(1, n + 1):
        acc = base
        for m, r in enumerate(coeffs, start=1):
            acc = ring.add(acc, ring.mul_scalar(r, pow(x, m)))
        out[x] = acc
    return out


def shamir_share(ring: Ring, received: list[U64]) -> U64:
    """``S_l = sum_i f_i(l)``: member ``l``'s threshold key share."""
    acc = received[0]
    for r in received[1:]:
        acc = ring.add(acc, r)
    return acc


def secret_key_from(ring: Ring, s: U64) -> Any:
    """A SEAL ``SecretKey`` holding ``s`` (tests and the simulation's god view only: no
    party ever holds the collective secret)."""
    kg = seal.KeyGenerator(ring.context)
    return sk_write(ring, kg.secret_key(), s)
