"""Helpers for the exact-reveal attack tests: a small INSECURE deployment and the
combiner's view of one reveal."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from psc.hazmat.exact import threshold as T
from psc.hazmat.exact.circuit import encode
from psc.hazmat.exact.seal_io import ct_read, pt_read
from psc.parties.exact.inputs import SCORE
from psc.parties.exact.member import decode_share
from psc.protocol.exact_messages import ExactDecryptionShare, ExactRevealTask
from psc.protocol.signing import open_signed, seal
from psc.sim.exact_deployment import ExactDeployment
from tests._exact_fixtures import TEST_PARAMS, seeded, toy_catalog

RH = hashlib.sha256(b"attack grade request").digest()


def deployment(k: int = 3, n: int = 5) -> ExactDeployment:
    return ExactDeployment.create(
        toy_catalog(), TEST_PARAMS, k, n, randbytes=seeded(9), god_view=True
    )


def task_for(dep: ExactDeployment, sealed_request: bytes) -> bytes:
    return seal(ExactRevealTask(authorization=sealed_request, issued_at=0), dep.combiner._key)


def view(
    dep: ExactDeployment, sealed_request: bytes, members: tuple[int, ...]
) -> tuple[Any, dict[int, Any]]:
    """What the combiner receives: the decrypted ciphertext and the members' shares."""
    task = task_for(dep, sealed_request)
    shares: dict[int, Any] = {}
    digest = b""
    for i in members:
        msg = open_signed(
            dep.members[i].decryption_share(task),
            ExactDecryptionShare,
            lambda m: dep.params.member_keys[m.member],
        )
        shares[i] = decode_share(dep.ring, msg)
        digest = msg.ciphertext_digest
    ct = dep.members[members[0]]._decrypted[digest]
    return ct, shares


def residues(dep: ExactDeployment, ct: Any, shares: dict[int, Any]) -> list[int]:
    """``x - Delta^2 floor(q/t) m`` per coefficient (centred): everything the combined
    shares show beyond the output ``m``: ``Delta^2 v + sum_l Delta lambda_l e_l``."""
    ring, n = dep.ring, dep.params.n
    subset = tuple(sorted(shares))[: dep.params.k]
    lam = T.scaled_lagrange(subset, n)
    d2 = T.delta(n) ** 2
    x = ring.mul_scalar(ct_read(ring, ct)[0], d2)
    for ell in subset:
        x = ring.add(x, ring.mul_scalar(shares[ell], lam[ell]))
    m = T.combine(ring, ct, {ell: shares[ell] for ell in subset}, n)
    coeffs = pt_read(ring, encode(ring, m)).astype(object)
    xs = T.crt_signed(ring, x)
    q, big = ring.q, d2 * (ring.q // ring.t)
    out = []
    for xi, mi in zip(xs, coeffs, strict=True):
        r = (xi - big * int(mi)) % q
        out.append(r - q if r > q // 2 else r)
    return out


def submit_uniform(dep: ExactDeployment, period: int, value: int) -> None:
    """Every slot of block 0 gets live sum ``value`` at ``period`` (one fresh encryption)."""
    dep.submit("tax-bureau", period, "short", SCORE, 0, np.full(dep.ring.n, value))


def median_test_bound(samples: int, failure: float = 1e-7) -> float:
    """Hoeffding for sampling without replacement: ``P(|X/M - 1/2| >= eps) <= 2 exp(-2 M eps^2)``."""
    return math.sqrt(math.log(2 / failure) / (2 * samples))
