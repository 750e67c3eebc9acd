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


@dataclass(frozen=True)
class HeLogReceipt(Message):
    """Grading authority -> agency: a submission is in the grading log (he-grading.md 3.5).

    Signed by the authority; a function of the log alone (the entry's position and the
    head after it), so the same submission sent again gets the same bytes back.
    """

    TYPE: ClassVar[str] = "he-log-receipt"

    authority: str  # the grading authority's id (the signer)
    entry: bytes  # SHA-256 of the sealed HeSubmission logged
    index: int  # its position in the grading log (0-based)
    head: bytes  # the grading log's head right after it

    def check(self) -> None:
        if not _ID.match(self.authority):
            raise InvalidMessage("authority is not a valid identifier")
        if len(self.entry) != HASH_BYTES or len(self.head) != HASH_BYTES:
            raise InvalidMessage(f"entry and head must be {HASH_BYTES} bytes")
        if self.index < 0:
            raise InvalidMessage("index must be non-negative")


@dataclass(frozen=True)
class HeGradeResponse(Message):
    """Grading authority -> requester: the rounded grades of a signed grade request
    (he-grading.md 3.5), bound to the request's hash; nothing but grade indices."""

    TYPE: ClassVar[str] = "he-grade-response"

    authority: str  # the grading authority's id (the signer)
    request_hash: bytes  # SHA-256 of the sealed GradeRequest it answers
    requester: str  # copied from the request
    period: int  # copied from the request
    slots: tuple[int, ...]  # the request's slots, strictly ascending
    grades: tuple[int, ...]  # one grade index per slot (as psc.oracle.grades_of counts)
    context: bytes  # fingerprint of the grading context that evaluated them
    index: int  # position of the request in the grading log
    head: bytes  # the grading log's head right after the request

    def check(self) -> None:
        if not _ID.match(self.authority) or not _ID.match(self.requester):
            raise InvalidMessage("authority and requester must be valid identifiers")
        if len(self.request_hash) != HASH_BYTES or len(self.head) != HASH_BYTES:
            raise InvalidMessage(f"request_hash and head must be {HASH_BYTES} bytes")
        if len(self.context) != FINGERPRINT_BYTES:
            raise InvalidMessage(f"context must be {FINGERPRINT_BYTES} bytes")
        if self.period < 0 or self.index < 0:
            raise InvalidMessage("period and index must be non-negative")
        if not self.slots or any(b <= a for a, b in zip(self.slots, self.slots[1:], strict=False)):
            raise InvalidMessage("slots must be non-empty and strictly ascending")
        if self.slots[0] < 0:
            raise InvalidMessage("slots must be non-negative")
        if len(self.grades) != len(self.slots) or any(g < 0 for g in self.grades):
            raise InvalidMessage("one non-negative grade index per slot")


def seal_submission(message: HeSubmission, key: Ed25519PrivateKey) -> bytes:
    """Encode and sign an :class:`HeSubmission` (agency).  Raises :class:`InvalidMessage` if
    a field is malformed, so nothing malformed is sent."""
    return seal(message, key)
