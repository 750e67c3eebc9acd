"""Dealer-free setup of the exact-reveal committee (run by the ``n`` members together).

Each :class:`KeyMember` holds its ternary ``s_i`` (and the ephemeral ``u_i`` of RKG),
then its Shamir share ``S_l``; :func:`run_setup` is the reference run of the three
phases, passing every member's broadcast to the others (in a deployment: signed
broadcasts on the committee's channel; Shamir dealings on pairwise confidential
channels):

1. CKG: every member publishes ``p_i``; anyone sums them into the public key.
2. RKG round 1 then round 2 (:mod:`psc.hazmat.exact.keys`); anyone sums them into the
   relinearization key.
3. Re-sharing: member ``i`` sends ``f_i(l)`` to member ``l``; then ``s_i`` and ``u_i`` are
   erased and each member keeps only ``S_l``.
4. Known-answer check (:func:`check_setup`): the combiner decrypts a public known answer
   encrypted under the new key with every ``k``-subset of the members; a key that any
   subset fails to decrypt is refused before it is used.

The session label (e.g. the committee parameters' hash) seeds the common reference
string, so a key is bound to one committee.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as seal

from psc.exceptions import InsufficientShares
from psc.hazmat.exact import keys as K
from psc.hazmat.exact import threshold
from psc.hazmat.exact.circuit import encode
from psc.hazmat.exact.ring import U64, RandBytes, Ring


class KeyMember:
    """One member's side of the dealer-free key generation."""

    def __init__(self, ring: Ring, index: int, randbytes: RandBytes = os.urandom) -> None:
        self.ring = ring
        self.index = index
        self._randbytes = randbytes
        self._errors = K.ErrorSource(ring)
        self._s: U64 | None = K.fresh_secret(ring)
        self._u: U64 | None = K.fresh_secret(ring)
        self._received: dict[int, U64] = {}
        self.share: U64 | None = None

    def ckg(self, a: U64) -> U64:
        assert self._s is not None
        return K.ckg_share(self.ring, self._s, a, self._errors)

    def rkg1(self, crs: list[U64]) -> K.RkgRound1:
        assert self._s is not None and self._u is not None
        return K.rkg_round1(self.ring, self._s, self._u, crs, self._errors)

    def rkg2(self, h0: list[U64], h1: list[U64]) -> K.RkgRound2:
        assert self._s is not None and self._u is not None
        return K.rkg_round2(self.ring, self._s, self._u, h0, h1, self._errors)

    def deal(self, k: int, n: int) -> dict[int, U64]:
        assert self._s is not None
        return K.deal(self.ring, self._s, k, n, self._randbytes)

    def receive(self, dealer: int, value: U64) -> None:
        self._received[dealer] = value

    def finish(self, n: int) -> None:
        """Keep ``S_l`` and erase ``s_i``, ``u_i`` (a member keeps only its share)."""
        if sorted(self._received) != list(range(1, n + 1)):
            raise InsufficientShares(f"member {self.index}: dealings from {sorted(self._received)}")
        self.share = K.shamir_share(self.ring, [self._received[i] for i in sorted(self._received)])
        self._s = self._u = None
        self._received.clear()

    def god_secret(self) -> U64:  # pragma: no cover - tests read it before finish()
        assert self._s is not None
        return self._s


@dataclass
class CommitteeKeys:
    """The public outcome of setup plus (in process) the members holding the shares."""

    ring: Ring
    k: int
    n: int
    public_key: Any
    relin_keys: Any
    members: dict[int, KeyMember]


def run_setup(
    ring: Ring,
    k: int,
    n: int,
    session: bytes,
    randbytes: RandBytes = os.urandom,
    keep_secret: bool = False,
) -> tuple[CommitteeKeys, U64 | None]:
    """The reference run of setup phases 1-3 (see the module docstring).  With
    ``keep_secret`` the collective secret ``sum s_i`` is returned too (tests and the
    simulation's god view only)."""
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    members = {i: KeyMember(ring, i, randbytes) for i in range(1, n + 1)}
    secret: U64 | None = None
    if keep_secret:
        secret = members[1].god_secret()
        for i in range(2, n + 1):
            secret = ring.add(secret, members[i].god_secret(), True)
    # 1. CKG
    a = K.crs_public(ring, session)
    pk = K.ckg_combine(ring, [m.ckg(a) for m in members.values()], a)
    # 2. RKG
    crs = [K.crs_relin(ring, session, j) for j in range(ring.levels)]
    h0, h1 = K.sum_round(ring, [m.rkg1(crs) for m in members.values()])
    rk = K.rkg_combine(ring, [m.rkg2(h0, h1) for m in members.values()], h1)
    # 3. Shamir re-sharing on pairwise channels, then erase s_i, u_i
    for i, m in members.items():
        for ell, value in m.deal(k, n).items():
            members[ell].receive(i, value)
    for m in members.values():
        m.finish(n)
    return CommitteeKeys(ring, k, n, pk, rk, members), secret


def known_answer(ring: Ring, public_key: Any, session: bytes) -> tuple[Any, np.ndarray]:
    """A public known answer (slots derived from the session) encrypted under the key."""
    rng = np.random.default_rng(int.from_bytes(session[:8].ljust(8, b"\0"), "big"))
    values = rng.integers(0, ring.t, size=ring.n)
    ct = seal.Ciphertext()
    seal.Encryptor(ring.context, public_key).encrypt(encode(ring, values), ct)
    return ct, values


def check_setup(
    keys: CommitteeKeys, session: bytes, bits: int, randbytes: RandBytes = os.urandom
) -> None:
    """Phase 4: every ``k``-subset decrypts the known answer; raises
    :class:`~psc.exceptions.InsufficientShares` naming the members of failing subsets."""
    ring = keys.ring
    ct, values = known_answer(ring, keys.public_key, session)
    shares = {
        ell: threshold.decryption_share(ring, ct, m.share, keys.n, bits, randbytes)
        for ell, m in keys.members.items()
        if m.share is not None
    }
    bad: set[int] = set()
    for subset in itertools.combinations(sorted(shares), keys.k):
        got = threshold.combine(ring, ct, {ell: shares[ell] for ell in subset}, keys.n)
        if not np.array_equal(got, values % ring.t):
            bad.update(subset)
    if bad:
        raise InsufficientShares(
            f"the new key fails its known-answer check for members {sorted(bad)}; "
            "rerun setup without them",
            bad=sorted(bad),
        )
