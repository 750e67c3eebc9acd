"""An in-process deployment of the exact reveal: the reference run of its phases, used by
the tests, the benchmark and the demo (keys, clock and randomness are arguments).

Phases (a comment per phase in :meth:`ExactDeployment.create` and :meth:`reveal`):
setup (dealer-free keys, known-answer check), submission (agencies encrypt and sign
BFV blocks, the aggregator logs them), request (the aggregator signs a request bound to
the log head), reveal (members recompute and decrypt, the combiner combines).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tenseal.sealapi as seal
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog
from psc.hazmat.exact import threshold
from psc.hazmat.exact.circuit import encode
from psc.hazmat.exact.polynomial import GradePolynomials, grade_polynomials
from psc.hazmat.exact.ring import U64, LatticeParams, RandBytes, Ring
from psc.parties.exact.combiner import ExactCombiner
from psc.parties.exact.inputs import InputLog, ciphertext_bytes
from psc.parties.exact.member import ExactMember, ExactParameters
from psc.parties.exact.setup import check_setup, run_setup
from psc.protocol.exact_messages import BfvContribution, ExactGrades, ExactRevealRequest
from psc.protocol.signing import new_signing_key, public_bytes
from psc.protocol.signing import seal as seal_message


@dataclass
class ExactDeployment:
    """Every party of the exact reveal in one process (see the module docstring)."""

    ring: Ring
    catalog: Catalog
    polys: GradePolynomials
    params: ExactParameters
    public_key: Any
    members: dict[int, ExactMember]
    combiner: ExactCombiner
    log: InputLog
    aggregator_key: Ed25519PrivateKey
    agency_keys: dict[str, Ed25519PrivateKey]
    noise_allowance: int
    god_secret: U64 | None = None
    setup_seconds: float = 0.0
    counter: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        catalog: Catalog,
        lattice: LatticeParams,
        k: int,
        n: int,
        session: bytes = b"psc-exact",
        randbytes: RandBytes = os.urandom,
        god_view: bool = False,
        decrypt_primes: int = 0,
    ) -> ExactDeployment:
        import time

        t0 = time.perf_counter()
        ring = Ring(lattice)
        polys = grade_polynomials(catalog, ring.t)
        # setup: dealer-free collective keys, Shamir re-sharing, known-answer check
        keys, secret = run_setup(ring, k, n, session, randbytes, keep_secret=god_view)
        # smudging sized for the level members decrypt at (they switch down to it first)
        bits, allowance = threshold.widest_smudging(
            ring.at_level(decrypt_primes or ring.levels), k, n
        )
        check_setup(keys, session, bits, randbytes)
        sign = {name: new_signing_key(randbytes) for name in ("aggregator", "combiner")}
        member_sign = {i: new_signing_key(randbytes) for i in range(1, n + 1)}
        agencies = {
            a: new_signing_key(randbytes) for a in sorted({r.agency for r in catalog.rules})
        }
        params = ExactParameters(
            k=k,
            n=n,
            smudging_bits=bits,
            aggregator_key=public_bytes(sign["aggregator"]),
            combiner_key=public_bytes(sign["combiner"]),
            member_keys={i: public_bytes(key) for i, key in member_sign.items()},
            decrypt_primes=decrypt_primes,
        )
        log = InputLog(ring, catalog, {a: public_bytes(key) for a, key in agencies.items()})
        members = {
            i: ExactMember(
                i, m.share, ring, keys.relin_keys, polys, params, log, member_sign[i], randbytes
            )
            for i, m in keys.members.items()
            if m.share is not None
        }
        combiner = ExactCombiner(ring, catalog, params, members, sign["combiner"])
        dep = cls(
            ring=ring,
            catalog=catalog,
            polys=polys,
            params=params,
            public_key=keys.public_key,
            members=members,
            combiner=combiner,
            log=log,
            aggregator_key=sign["aggregator"],
            agency_keys=agencies,
            noise_allowance=allowance,
            god_secret=secret,
        )
        dep.setup_seconds = time.perf_counter() - t0
        return dep

    def encrypt(self, values: np.ndarray) -> Any:
        ct = seal.Ciphertext()
        seal.Encryptor(self.ring.context, self.public_key).encrypt(encode(self.ring, values), ct)
        return ct

    def submit(
        self, agency: str, period: int, retention: str, label: str, block: int, values: np.ndarray
    ) -> int:
        """An agency encrypts one block under the collective key, signs it; the aggregator
        logs it.  Returns the log size."""
        msg = BfvContribution(
            agency=agency,
            period=period,
            retention=retention,
            label=label,
            block=block,
            ring=self.ring.fingerprint(),
            ciphertext=ciphertext_bytes(self.encrypt(values)),
            issued_at=period,
        )
        return self.log.append(seal_message(msg, self.agency_keys[agency]))

    def request(
        self, request_hash: bytes, period: int, block: int, slots: tuple[int, ...] = ()
    ) -> bytes:
        """The aggregator's signed request, bound to the current log head."""
        size, root = self.log.head()
        req = ExactRevealRequest(
            request_hash=request_hash,
            period=period,
            block=block,
            slots=slots,
            tree_size=size,
            tree_root=root,
            issued_at=period,
        )
        return seal_message(req, self.aggregator_key)

    def reveal(self, sealed_request: bytes, ask: tuple[int, ...] | None = None) -> ExactGrades:
        return self.combiner.reveal(sealed_request, ask)
