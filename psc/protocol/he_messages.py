"""Messages of the CKKS grading path (normative: ``protocols/he-grading.md`` section 3).

An agency's encrypted contribution travels as a signed :class:`HeSubmission` (canonical CBOR
and a domain-separated Ed25519 signature, :mod:`psc.protocol.signing`); a grade is asked for
with the protocol's signed :class:`~psc.protocol.messages.GradeRequest`.  Nothing else
reaches the grading authority: it never decrypts a ciphertext another party computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.exceptions import InvalidMessage
from psc.protocol.messages import HASH_BYTES, NONCE_BYTES, Message
from psc.protocol.signing import seal

#: 16-byte context fingerprints (:class:`psc.hazmat.he.contexts.PublicContext`)
FINGERPRINT_BYTES = 16
_ID = re.compile(r"^[a-z0-9][a-z0-9._#:-]{0,127}$")
_COUNTER = re.compile(r"^(score|cap:[A-Za-z0-9+-]{1,16})$")


@dataclass(frozen=True)
class HeSubmission(Message):
    """Agency -> aggregator -> grading log: one encrypted dense vector for one period.

    ``counter`` is ``"score"`` (the deltas of the agency's rules in ``retention``, unit
    ``H``) or ``"cap:<label>"`` (the count of its capping events at ``label`` in
    ``retention``, unit ``Hc``).  One submission per (agency, period, retention, counter).
    """

    TYPE: ClassVar[str] = "he-submission"

    agency: str  # registered agency instance id (the signer)
    period: int  # period index the records belong to
    retention: str  # retention class of the rules counted
    counter: str  # "score" or "cap:<grade label>"
    context: bytes  # fingerprint of the grading public context the vector is encrypted under
    catalog_version: bytes  # SHA-256 version hash of the catalog in force
    nonce: bytes  # 16 fresh random bytes; never reused by this agency
    ciphertext: bytes  # CkksBackend.serialize of the dense vector (full parts)

    def check(self) -> None:
        if not _ID.match(self.agency):
            raise InvalidMessage("agency is not a valid identifier")
        if self.period < 0:
            raise InvalidMessage("period must be non-negative")
        if not _ID.match(self.retention):
            raise InvalidMessage("retention is not a valid identifier")
        if not _COUNTER.match(self.counter):
            raise InvalidMessage('counter must be "score" or "cap:<grade label>"')
        if len(self.context) != FINGERPRINT_BYTES:
            raise InvalidMessage(f"context must be {FINGERPRINT_BYTES} bytes")
        if len(self.catalog_version) != HASH_BYTES:
            raise InvalidMessage(f"catalog_version must be {HASH_BYTES} bytes")
        if len(self.nonce) != NONCE_BYTES:
            raise InvalidMessage(f"nonce must be {NONCE_BYTES} bytes")
        if not self.ciphertext:
            raise InvalidMessage("ciphertext is empty")

    @property
    def cap(self) -> str | None:
        """The cap label counted, or ``None`` for score deltas."""
        return self.counter[4:] if self.counter.startswith("cap:") else None


def seal_submission(message: HeSubmission, key: Ed25519PrivateKey) -> bytes:
    """Encode and sign an :class:`HeSubmission` (agency).  Raises :class:`InvalidMessage` if
    a field is malformed, so nothing malformed is sent."""
    return seal(message, key)
