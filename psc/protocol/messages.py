"""Every message of the psc protocol, typed, one comment per field (normative: ``protocols/``).

Messages are plain frozen dataclasses: no logic, no encoding.  Encoding lives in
:mod:`psc.protocol.codec` (canonical CBOR) and signatures in :mod:`psc.protocol.signing`.
Every message travels inside a :class:`SignedMessage` whose signature label names the
message type and the protocol version, so a signature on one type can never be replayed as
another.

Field conventions: hashes are raw 32-byte SHA-256 digests; Ed25519 public keys are the raw
32 bytes; times are whole seconds since the Unix epoch (UTC); periods are
``year * 12 + month - 1`` (:func:`psc.catalog.period_index`); subjects are pseudonymous slot
indices ``0 .. n_subjects - 1``.

Value checks (:meth:`Message.check`) run on every decoded message and raise
:class:`~psc.exceptions.InvalidMessage`; the codec already guarantees the types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from psc.exceptions import InvalidMessage

#: The protocol version every message carries (``"@v"`` in the encoding, and in each label).
PROTOCOL_VERSION = 1

HASH_BYTES = 32
NONCE_BYTES = 16
KEY_BYTES = 32
SIG_BYTES = 64
SALT_BYTES = 32

_NAME = re.compile(r"^[a-z0-9][a-z0-9._#:-]{0,127}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidMessage(what)


def _name(value: str, field: str) -> None:
    _need(bool(_NAME.match(value)), f"{field} is not a valid identifier")


def _len(value: bytes, n: int, field: str) -> None:
    _need(len(value) == n, f"{field} must be {n} bytes")


def _nonneg(value: int, field: str) -> None:
    _need(value >= 0, f"{field} must be non-negative")


class Message:
    """Base of every message.  ``TYPE`` names it on the wire and in its signature label."""

    TYPE: ClassVar[str]

    def check(self) -> None:
        """Value checks beyond types; raises :class:`InvalidMessage`.  Default: none."""


# -- setup -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicParameters(Message):
    """Published by the registry at setup: everything a party needs to talk to the others."""

    TYPE: ClassVar[str] = "public-parameters"

    scheme: str  # catalog scheme name, informative
    catalog_version: bytes  # SHA-256 of the canonical catalog (Catalog.version_hash)
    paillier_n: bytes  # the key holder's Paillier modulus n, big-endian
    slot_bits: int  # packed slot width w (SlotLayout.for_catalog)
    slots: int  # slots per plaintext S
    n_subjects: int  # number of subject slots; every dense vector has this length
    multiplicity: int  # most instances of one catalog agency (sizes the slots)
    registry_key: bytes  # Ed25519 key of the registry (signs registrations, subject requests)
    aggregator_key: bytes  # Ed25519 key of the aggregator (signs receipts, reveal requests)
    key_holder_key: bytes  # Ed25519 key of the key holder (signs grade responses)
    issued_at: int  # when the parameters were published

    def check(self) -> None:
        _name(self.scheme, "scheme")
        _len(self.catalog_version, HASH_BYTES, "catalog_version")
        _need(len(self.paillier_n) > 0 and self.paillier_n[0] != 0, "paillier_n not minimal")
        _need(2 <= self.slot_bits <= 62 and self.slots >= 1, "bad slot layout")
        _need(self.n_subjects >= 1 and self.multiplicity >= 1, "bad subject count")
        for f in ("registry_key", "aggregator_key", "key_holder_key"):
            _len(getattr(self, f), KEY_BYTES, f)
        _nonneg(self.issued_at, "issued_at")


@dataclass(frozen=True)
class AgencyRegistration(Message):
    """Signed by the registry: an agency instance, the catalog agency it acts as, its key."""

    TYPE: ClassVar[str] = "agency-registration"

    agency: str  # instance id, e.g. "intermediate-court" or "intermediate-court#2"
    catalog_agency: str  # the catalog agency whose rules (and bounds) this instance applies
    public_key: bytes  # the agency's Ed25519 public key (signs submissions, access answers)
    catalog_version: bytes  # the catalog this registration is for
    issued_at: int  # when the registry registered the agency

    def check(self) -> None:
        _name(self.agency, "agency")
        _name(self.catalog_agency, "catalog_agency")
        _len(self.public_key, KEY_BYTES, "public_key")
        _len(self.catalog_version, HASH_BYTES, "catalog_version")
        _nonneg(self.issued_at, "issued_at")


@dataclass(frozen=True)
class RelyingPartyRegistration(Message):
    """Signed by the registry: a relying party (bank, landlord...) and its declared purposes."""

    TYPE: ClassVar[str] = "relying-party-registration"

    party: str  # relying-party id
    purposes: tuple[str, ...]  # purposes it may ask for (each in the catalog's scheme.purposes)
    public_key: bytes  # its Ed25519 public key (signs grade requests)
    issued_at: int  # when the registry registered it

    def check(self) -> None:
        _name(self.party, "party")
        _need(len(self.purposes) >= 1, "a relying party needs a purpose")
        for p in self.purposes:
            _name(p, "purpose")
        _len(self.public_key, KEY_BYTES, "public_key")
        _nonneg(self.issued_at, "issued_at")


# -- submit and ingest -------------------------------------------------------------------


@dataclass(frozen=True)
class ClassCiphertext(Message):
    """One encrypted dense delta vector of a retention class (inside a :class:`Submission`)."""

    TYPE: ClassVar[str] = "class-ciphertext"

    retention: str  # retention class name
    ciphertext: bytes  # PackedPaillier.serialize of the dense delta vector of this class


@dataclass(frozen=True)
class CapCiphertext(Message):
    """One encrypted dense cap counter (inside a :class:`Submission`)."""

    TYPE: ClassVar[str] = "cap-ciphertext"

    retention: str  # retention class of the capping rules counted
    cap: str  # grade label the rules cap at
    ciphertext: bytes  # PackedPaillier.serialize of the dense event counts


@dataclass(frozen=True)
class Submission(Message):
    """Agency -> aggregator: one agency's encrypted contribution for one period.

    ``deltas`` holds exactly the retention classes in which the agency's catalog agency has
    rules, sorted by class; ``caps`` exactly the (class, cap label) pairs its capping rules
    use, sorted.  Both sets are public (derived from the catalog).  ``proofs[i]`` proves that
    every slot of the ``i``-th ciphertext (deltas first, then caps) lies in the range the
    catalog allows the agency (:mod:`psc.protocol.validity`), bound to this envelope.
    """

    TYPE: ClassVar[str] = "submission"

    agency: str  # registered agency instance id (the signer)
    period: int  # period index the records belong to
    catalog_version: bytes  # SHA-256 version hash of the catalog the deltas follow
    nonce: bytes  # 16 fresh random bytes; never reused by this agency
    n_subjects: int  # length of every dense vector (must equal the public parameters)
    deltas: tuple[ClassCiphertext, ...]  # per retention class: encrypted dense delta vector
    caps: tuple[CapCiphertext, ...]  # per (class, cap label): encrypted dense cap counter
    commitment_root: bytes  # Merkle root over salted (subject, rule, evidence, date) leaves
    commitment_size: int  # number of leaves under commitment_root (padded, see submit.md)
    created_at: int  # when the agency sealed the envelope
    proofs: tuple[bytes, ...]  # one validity proof per ciphertext: deltas, then caps (proofs.md 3)

    def check(self) -> None:
        _need(
            len(self.proofs) == len(self.deltas) + len(self.caps),
            "an envelope carries exactly one validity proof per ciphertext",
        )
        _name(self.agency, "agency")
        _nonneg(self.period, "period")
        _len(self.catalog_version, HASH_BYTES, "catalog_version")
        _len(self.nonce, NONCE_BYTES, "nonce")
        _need(self.n_subjects >= 1, "n_subjects must be positive")
        classes = [d.retention for d in self.deltas]
        _need(classes == sorted(set(classes)), "deltas must be sorted by class, no repeats")
        caps = [(c.retention, c.cap) for c in self.caps]
        _need(caps == sorted(set(caps)), "caps must be sorted by (class, cap), no repeats")
        _len(self.commitment_root, HASH_BYTES, "commitment_root")
        _nonneg(self.commitment_size, "commitment_size")
        _nonneg(self.created_at, "created_at")


@dataclass(frozen=True)
class IngestReceipt(Message):
    """Aggregator -> agency: the envelope was verified, logged and added (signed).

    Issued once per accepted envelope and returned unchanged when the same envelope is
    submitted again, so a receipt proves exactly one effect.
    """

    TYPE: ClassVar[str] = "ingest-receipt"

    envelope_hash: bytes  # SHA-256 of the signed envelope's wire bytes
    agency: str  # who submitted it
    period: int  # the period it counts for
    log_index: int  # index of its entry in the transparency log
    tree_size: int  # log size right after it was appended
    tree_root: bytes  # log root at tree_size
    issued_at: int  # when the aggregator accepted it

    def check(self) -> None:
        _len(self.envelope_hash, HASH_BYTES, "envelope_hash")
        _name(self.agency, "agency")
        _nonneg(self.period, "period")
        _need(0 <= self.log_index < self.tree_size, "log_index must be below tree_size")
        _len(self.tree_root, HASH_BYTES, "tree_root")
        _nonneg(self.issued_at, "issued_at")


@dataclass(frozen=True)
class LogEntry(Message):
    """What the transparency log stores per event: hashes and public metadata only.

    No personal data: no slot, no grade, no ciphertext (only its envelope's hash).
    """

    TYPE: ClassVar[str] = "log-entry"

    kind: str  # "registration", "submission" or "reveal"
    party: str  # the registered party, the agency (submission) or the requester (reveal)
    period: int  # period registered in, submitted for, or evaluated at
    digest: bytes  # SHA-256 of the signed registration, envelope or grade response
    commitment_root: bytes  # the envelope's event commitment (submission); b"" otherwise
    commitment_size: int  # leaves under commitment_root (submission); 0 otherwise
    catalog_version: bytes  # the catalog in force

    def check(self) -> None:
        _need(self.kind in ("registration", "submission", "reveal"), "unknown log entry kind")
        _name(self.party, "party")
        _nonneg(self.period, "period")
        _len(self.digest, HASH_BYTES, "digest")
        _need(len(self.commitment_root) in (0, HASH_BYTES), "commitment_root length")
        _nonneg(self.commitment_size, "commitment_size")
        _len(self.catalog_version, HASH_BYTES, "catalog_version")


@dataclass(frozen=True)
class TreeHead(Message):
    """A signed tree head of the transparency log (:class:`psc.ledger.translog.SignedTreeHead`).

    Self-authenticating: the signature is the log's own (``protocols/log.md``), made by the
    aggregator's key over ``tree_head_bytes(size, root, timestamp_ms)``.
    """

    TYPE: ClassVar[str] = "tree-head"

    size: int  # leaves covered
    root: bytes  # Merkle root of the first size leaves
    timestamp_ms: int  # signing time, ms since the epoch
    signature: bytes  # Ed25519 signature of the log

    def check(self) -> None:
        _nonneg(self.size, "size")
        _len(self.root, HASH_BYTES, "root")
        _nonneg(self.timestamp_ms, "timestamp_ms")
        _len(self.signature, SIG_BYTES, "signature")


@dataclass(frozen=True)
class LogInclusion(Message):
    """Aggregator -> anyone: a log entry, its index and audit path under a signed tree head.

    Self-authenticating through ``tree_head``; subjects use it to learn the commitment root
    an agency's envelope put on record.
    """

    TYPE: ClassVar[str] = "log-inclusion"

    entry: bytes  # the encoded LogEntry, verbatim as logged
    index: int  # its leaf index
    proof: tuple[bytes, ...]  # RFC 9162 audit path to tree_head.root
    tree_head: TreeHead  # signed tree head the proof is against

    def check(self) -> None:
        _need(0 <= self.index < self.tree_head.size, "index beyond the tree head")
        for p in self.proof:
            _len(p, HASH_BYTES, "proof node")


# -- baseline reveal ---------------------------------------------------------------------


@dataclass(frozen=True)
class GradeRequest(Message):
    """Relying party (or the registry, for a subject) -> aggregator: grades for slots.

    ``consent`` carries the subject's consent token where the key holder requires one
    (``protocols/consent-token.md``); it is empty for the registry's self-access requests
    and under the baseline gate, where the purpose check is the only one.
    """

    TYPE: ClassVar[str] = "grade-request"

    requester: str  # registered relying party, or the registry acting for subjects
    purpose: str  # declared purpose; must be in the catalog's scheme.purposes
    period: int  # evaluate at the close of this period
    slots: tuple[int, ...]  # subject slots asked for, ascending, no repeats
    nonce: bytes  # 16 fresh random bytes
    consent: bytes  # the subject's encoded consent token, or empty (see above)
    issued_at: int  # when the request was made

    def check(self) -> None:
        _name(self.requester, "requester")
        _name(self.purpose, "purpose")
        _nonneg(self.period, "period")
        _need(len(self.slots) >= 1, "a grade request needs at least one slot")
        _need(
            list(self.slots) == sorted(set(self.slots)) and self.slots[0] >= 0,
            "slots must be ascending, non-negative, without repeats",
        )
        _len(self.nonce, NONCE_BYTES, "nonce")
        _nonneg(self.issued_at, "issued_at")


@dataclass(frozen=True)
class BlockCiphertext(Message):
    """One packed block of a live sum (inside a :class:`RevealRequest`)."""

    TYPE: ClassVar[str] = "block-ciphertext"

    label: str  # "score" for the sum of live deltas, else the cap label counted
    block: int  # block index j: slots j*S .. j*S + S - 1
    ciphertext: bytes  # PackedPaillier.serialize of that one block (bound set by aggregator)


@dataclass(frozen=True)
class RevealRequest(Message):
    """Aggregator -> key holder: a verified grade request and the blocks it needs.

    The aggregator sums the live accumulators (the score over every class, and one counter
    per cap label) and sends only the blocks holding requested slots.
    """

    TYPE: ClassVar[str] = "reveal-request"

    request: bytes  # the requester's signed GradeRequest, wire bytes, verbatim
    period: int  # evaluation period (equals the request's)
    blocks: tuple[BlockCiphertext, ...]  # sorted by (label, block)
    tree_size: int  # log size the accumulators reflect
    tree_root: bytes  # log root at tree_size

    def check(self) -> None:
        _nonneg(self.period, "period")
        keys = [(b.label, b.block) for b in self.blocks]
        _need(keys == sorted(set(keys)) and len(keys) >= 1, "blocks must be sorted, unique")
        _nonneg(self.tree_size, "tree_size")
        _len(self.tree_root, HASH_BYTES, "tree_root")


@dataclass(frozen=True)
class SlotGrade(Message):
    """One subject's grade (inside a :class:`GradeResponse`)."""

    TYPE: ClassVar[str] = "slot-grade"

    slot: int  # subject slot
    grade: str  # grade label after caps


@dataclass(frozen=True)
class GradeResponse(Message):
    """Key holder -> requester (directly, never via the aggregator): grades only, never scores."""

    TYPE: ClassVar[str] = "grade-response"

    request_hash: bytes  # SHA-256 of the signed GradeRequest it answers
    requester: str  # copied from the request
    purpose: str  # copied from the request
    period: int  # evaluation period
    grades: tuple[SlotGrade, ...]  # one per requested slot, ascending by slot
    tree_size: int  # log size the grades reflect
    issued_at: int  # when the key holder answered

    def check(self) -> None:
        _len(self.request_hash, HASH_BYTES, "request_hash")
        _nonneg(self.period, "period")
        slots = [g.slot for g in self.grades]
        _need(slots == sorted(set(slots)), "grades must be ascending by slot")
        _nonneg(self.tree_size, "tree_size")
        _nonneg(self.issued_at, "issued_at")


@dataclass(frozen=True)
class RevealNotice(Message):
    """Key holder -> aggregator: a grade response was released (for the log; no grades).

    The response itself goes to the requester only, so the aggregator never sees a grade.
    """

    TYPE: ClassVar[str] = "reveal-notice"

    request_hash: bytes  # SHA-256 of the signed GradeRequest answered
    response_hash: bytes  # SHA-256 of the signed GradeResponse released
    requester: str  # who received it
    purpose: str  # the purpose it was released for
    period: int  # evaluation period
    slots: int  # how many grades it carried
    issued_at: int  # when the key holder released it

    def check(self) -> None:
        _len(self.request_hash, HASH_BYTES, "request_hash")
        _len(self.response_hash, HASH_BYTES, "response_hash")
        _name(self.requester, "requester")
        _name(self.purpose, "purpose")
        _nonneg(self.period, "period")
        _need(self.slots >= 1, "a notice covers at least one grade")
        _nonneg(self.issued_at, "issued_at")


# -- subject access ----------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRequest(Message):
    """Registry (for an authenticated subject) -> agency: the subject's events, with proofs."""

    TYPE: ClassVar[str] = "access-request"

    requester: str  # the registry, which authenticated the subject and holds identity->slot
    subject: int  # the subject's slot
    first_period: int  # earliest period asked for
    last_period: int  # latest period asked for
    nonce: bytes  # 16 fresh random bytes
    issued_at: int  # when the request was made

    def check(self) -> None:
        _name(self.requester, "requester")
        _nonneg(self.subject, "subject")
        _need(0 <= self.first_period <= self.last_period, "bad period range")
        _len(self.nonce, NONCE_BYTES, "nonce")
        _nonneg(self.issued_at, "issued_at")


@dataclass(frozen=True)
class EventOpening(Message):
    """One of the subject's events with its salt and Merkle inclusion proof."""

    TYPE: ClassVar[str] = "event-opening"

    rule: str  # catalog rule id
    date: str  # ISO date YYYY-MM-DD of the record
    evidence: str  # lowercase hex SHA-256 of the official document
    salt: bytes  # the leaf's 32-byte salt (hides the leaf from anyone without it)
    index: int  # leaf index under the commitment root
    proof: tuple[bytes, ...]  # RFC 9162 inclusion path, leaf to root

    def check(self) -> None:
        _name(self.rule, "rule")
        _need(bool(_DATE.match(self.date)), "date must be YYYY-MM-DD")
        _need(bool(_HEX64.match(self.evidence)), "evidence must be 64 lowercase hex digits")
        _len(self.salt, SALT_BYTES, "salt")
        _nonneg(self.index, "index")
        for p in self.proof:
            _len(p, HASH_BYTES, "proof node")


@dataclass(frozen=True)
class PeriodEvents(Message):
    """The subject's events of one period, against one logged envelope."""

    TYPE: ClassVar[str] = "period-events"

    period: int  # period of the envelope
    envelope_hash: bytes  # SHA-256 of the logged envelope holding the commitment
    commitment_size: int  # leaves under the commitment root
    events: tuple[EventOpening, ...]  # the subject's events, ascending by index

    def check(self) -> None:
        _nonneg(self.period, "period")
        _len(self.envelope_hash, HASH_BYTES, "envelope_hash")
        idx = [e.index for e in self.events]
        _need(idx == sorted(set(idx)), "events must be ascending by index")
        _need(all(i < self.commitment_size for i in idx), "leaf index beyond the commitment")


@dataclass(frozen=True)
class AccessResponse(Message):
    """Agency -> subject: every event it scored for the subject, with inclusion proofs."""

    TYPE: ClassVar[str] = "access-response"

    agency: str  # the answering agency (the signer)
    subject: int  # the subject's slot
    request_hash: bytes  # SHA-256 of the signed AccessRequest it answers
    periods: tuple[PeriodEvents, ...]  # one per submitted period in range, ascending

    def check(self) -> None:
        _name(self.agency, "agency")
        _nonneg(self.subject, "subject")
        _len(self.request_hash, HASH_BYTES, "request_hash")
        ps = [p.period for p in self.periods]
        _need(ps == sorted(set(ps)), "periods must be ascending")


# -- the signed wrapper ------------------------------------------------------------------


@dataclass(frozen=True)
class SignedMessage(Message):
    """Any message on the wire: its canonical encoding and the sender's signature.

    The signature covers the domain-separated label of the body's type and version and
    the body bytes exactly as sent (:mod:`psc.protocol.signing`).
    """

    TYPE: ClassVar[str] = "signed"

    body: bytes  # canonical CBOR of the message (psc.protocol.codec.encode)
    signature: bytes  # Ed25519 signature over label || body

    def check(self) -> None:
        _len(self.signature, SIG_BYTES, "signature")


#: Every top-level message type, by its wire name.
MESSAGE_TYPES: dict[str, type[Message]] = {
    m.TYPE: m
    for m in (
        PublicParameters,
        AgencyRegistration,
        RelyingPartyRegistration,
        Submission,
        IngestReceipt,
        LogEntry,
        TreeHead,
        LogInclusion,
        GradeRequest,
        RevealRequest,
        GradeResponse,
        RevealNotice,
        AccessRequest,
        AccessResponse,
        SignedMessage,
    )
}
