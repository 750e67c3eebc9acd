"""A member of the exact-reveal committee (normative: ``protocols/exact-reveal.md``).

Role: holds one Shamir share ``S_l`` of the collective BFV secret (from the dealer-free
setup, :mod:`psc.parties.exact.setup`) and an Ed25519 signing key.  On a task it

1. verifies the combiner's signature on the task and the **aggregator's** signature on the
   request inside it (the combiner's word counts for nothing);
2. recomputes the inputs itself from the public log at the request's tree head
   (:meth:`psc.parties.exact.inputs.InputLog.live_inputs`), refusing a head that does not match;
3. evaluates the published grade circuit deterministically (cached per period, head and
   block), then, for a request naming slots, multiplies by the public 0/1 mask of those
   slots, so every other slot decrypts to 0;
4. returns one smudged decryption share of **that** ciphertext, signed and bound to the
   task hash and the ciphertext's digest.

Sees: ciphertexts and public metadata, never a plaintext.  Pre-conditions: setup's
known-answer check passed.  Raises :class:`~psc.exceptions.InvalidMessage` for any
message that fails a check (nothing is computed for it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as seal
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.exceptions import InvalidMessage
from psc.hazmat.exact import threshold
from psc.hazmat.exact.circuit import digest, encode, grade_ciphertext
from psc.hazmat.exact.polynomial import GradePolynomials
from psc.hazmat.exact.ring import U64, RandBytes, Ring
from psc.parties.exact.inputs import SCORE, InputLog
from psc.protocol import codec
from psc.protocol.exact_messages import ExactDecryptionShare, ExactRevealRequest, ExactRevealTask
from psc.protocol.signing import digest as sha256
from psc.protocol.signing import open_signed
from psc.protocol.signing import seal as seal_message


@dataclass(frozen=True)
class ExactParameters:
    """What every party of the exact reveal agrees on at setup (published)."""

    k: int
    n: int
    smudging_bits: int  # b of psc.hazmat.exact.threshold (sized from the circuit's noise bound)
    aggregator_key: bytes  # Ed25519 key that signs ExactRevealRequest
    combiner_key: bytes  # Ed25519 key that signs ExactRevealTask
    member_keys: Mapping[int, bytes]  # Ed25519 key of each member, 1..n
    # ciphertext primes kept for decryption: members switch the grade ciphertext down to
    # this level first (noise shrinks with the modulus; smudging_bits is sized for it);
    # 0 keeps every prime
    decrypt_primes: int = 0


def slot_mask(ring: Ring, slots: tuple[int, ...]) -> Any:
    if slots and slots[-1] >= ring.n:
        raise InvalidMessage(f"slot offset {slots[-1]} is outside a block of {ring.n}")
    m = np.zeros(ring.n, dtype=np.int64)
    m[list(slots)] = 1
    return encode(ring, m)


def open_request(params: ExactParameters, sealed: bytes) -> ExactRevealRequest:
    req = open_signed(sealed, ExactRevealRequest, lambda _m: params.aggregator_key)
    req.check()
    return req


def open_task(params: ExactParameters, sealed: bytes) -> tuple[ExactRevealTask, ExactRevealRequest]:
    task = open_signed(sealed, ExactRevealTask, lambda _m: params.combiner_key)
    task.check()
    return task, open_request(params, task.authorization)


class ExactMember:
    """One committee member (see the module docstring)."""

    def __init__(
        self,
        index: int,
        share: U64,
        ring: Ring,
        relin_keys: Any,
        polys: GradePolynomials,
        params: ExactParameters,
        log: InputLog,
        signing_key: Ed25519PrivateKey,
        randbytes: RandBytes = os.urandom,
    ) -> None:
        self.index = index
        self._share = share
        self.ring = ring
        self._rk = relin_keys
        self.polys = polys
        self.params = params
        self.log = log
        self._key = signing_key
        self._randbytes = randbytes
        self._grades: dict[tuple[int, int, bytes, int], Any] = {}
        self._decrypted: dict[bytes, Any] = {}
        self.products = 0  # ciphertext products this member computed (benchmark)

    def grade_ciphertext(self, req: ExactRevealRequest) -> Any:
        """Step 2-3: the ciphertext this member will decrypt for ``req``."""
        key = (req.period, req.tree_size, req.tree_root, req.block)
        if key not in self._grades:
            inputs = self.log.live_inputs(req.period, req.block, req.tree_size, req.tree_root)
            if SCORE not in inputs:
                raise InvalidMessage("no live score contribution for this block")
            caps = {lab: ct for lab, ct in inputs.items() if lab != SCORE}
            ct, products = grade_ciphertext(self.ring, self._rk, self.polys, inputs[SCORE], caps)
            self.products += products
            self._grades[key] = ct
        ct = self._grades[key]
        if req.slots:
            masked = seal.Ciphertext()
            self.ring.evaluator.multiply_plain(ct, slot_mask(self.ring, req.slots), masked)
            ct = masked
        if self.params.decrypt_primes:
            low = seal.Ciphertext()
            level = self.ring.parms_id_at(self.params.decrypt_primes)
            self.ring.evaluator.mod_switch_to(ct, level, low)
            ct = low
        return ct

    def decryption_share(self, sealed_task: bytes) -> bytes:
        """Steps 1-4: a sealed :class:`ExactDecryptionShare` for the task."""
        _task, req = open_task(self.params, sealed_task)
        ct = self.grade_ciphertext(req)
        d = digest(self.ring, ct)
        self._decrypted[d] = ct
        h = threshold.decryption_share(
            self.ring, ct, self._share, self.params.n, self.params.smudging_bits, self._randbytes
        )
        msg = ExactDecryptionShare(
            member=self.index,
            task_hash=sha256(sealed_task),
            ciphertext_digest=d,
            share=np.ascontiguousarray(h, dtype="<u8").tobytes(),
        )
        return seal_message(msg, self._key)

    def ciphertext(self, ciphertext_digest: bytes) -> bytes:
        """The ciphertext this member decrypted under ``ciphertext_digest`` (for the
        combiner, which checks the digest)."""
        from psc.parties.exact.inputs import ciphertext_bytes

        if ciphertext_digest not in self._decrypted:
            raise InvalidMessage("no such ciphertext")
        return ciphertext_bytes(self._decrypted[ciphertext_digest])


def decode_share(ring: Ring, msg: ExactDecryptionShare) -> U64:
    """The share's limbs; raises :class:`InvalidMessage` for a wrong size or a word not
    below its prime."""
    words = np.frombuffer(msg.share, dtype="<u8").astype(np.uint64)
    if words.size != ring.levels * ring.n:
        raise InvalidMessage("a decryption share has one limb per ciphertext prime")
    limbs = words.reshape(ring.levels, ring.n)
    if np.any(limbs >= ring.qcol(False)):
        raise InvalidMessage("a decryption share word is not reduced")
    return limbs


__all__ = ["ExactMember", "ExactParameters", "codec", "decode_share", "open_request", "open_task"]
