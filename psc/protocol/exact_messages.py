"""Messages of the exact reveal (normative: ``protocols/exact-reveal.md``).

Every message is sealed with :func:`psc.protocol.signing.seal` (Ed25519 over canonical
CBOR, the signature label naming the type), so none can be replayed as another:

1. :class:`BfvContribution`: agency -> aggregator (logged): one block of BFV-encrypted live
   deltas or cap counts under the committee's collective key.
2. :class:`ExactRevealRequest`: aggregator -> combiner -> members: reveal the grades of
   these slots of one block at one period, against this log head.
3. :class:`ExactRevealTask`: combiner -> every member: the request verbatim.
4. :class:`ExactDecryptionShare`: member -> combiner: one smudged decryption share of the
   grade ciphertext the member computed itself, bound to the task and that ciphertext.
5. :class:`ExactGrades`: combiner -> requester: grades only.

Plain frozen dataclasses, one comment per field, value checks only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from psc.exceptions import InvalidMessage
from psc.protocol.messages import HASH_BYTES, Message, SlotGrade

_LABEL = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$|^[A-Z][A-Za-z0-9+-]{0,15}$")


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidMessage(what)


@dataclass(frozen=True)
class BfvContribution(Message):
    """Agency -> aggregator: one encrypted block, logged and summed by whoever decrypts."""

    TYPE: ClassVar[str] = "exact-bfv-contribution"

    agency: str  # the registered agency id
    period: int  # the period of the events it encrypts
    retention: str  # retention class of the events (decides which periods it counts in)
    label: str  # "score" for live deltas, or a cap label for live cap-event counts
    block: int  # block index: slots block * N .. block * N + N - 1
    ring: bytes  # the lattice parameters' fingerprint (16 bytes)
    ciphertext: bytes  # SEAL ciphertext stream, encrypted under the collective public key
    issued_at: int  # when the agency made it

    def check(self) -> None:
        _need(self.period >= 0 and self.block >= 0 and self.issued_at >= 0, "negative field")
        _need(bool(_LABEL.match(self.label)), "bad label")
        _need(len(self.ring) == 16, "ring fingerprint must be 16 bytes")
        _need(len(self.ciphertext) > 0, "empty ciphertext")


@dataclass(frozen=True)
class ExactRevealRequest(Message):
    """Aggregator -> combiner -> members: the exact grades of ``slots`` of ``block``."""

    TYPE: ClassVar[str] = "exact-reveal-request"

    request_hash: bytes  # SHA-256 of the requester's signed grade request it serves
    period: int  # evaluation period
    block: int  # the block holding the slots
    slots: tuple[int, ...]  # slot offsets within the block, ascending; empty = every slot
    tree_size: int  # log size the inputs are summed over
    tree_root: bytes  # log root at tree_size
    issued_at: int  # when the aggregator made it

    def check(self) -> None:
        _need(len(self.request_hash) == HASH_BYTES, "request_hash must be 32 bytes")
        _need(len(self.tree_root) == HASH_BYTES, "tree_root must be 32 bytes")
        _need(min(self.period, self.block, self.tree_size, self.issued_at) >= 0, "negative field")
        _need(list(self.slots) == sorted(set(self.slots)), "slots must be ascending and unique")
        _need(all(s >= 0 for s in self.slots), "slots must be >= 0")


@dataclass(frozen=True)
class ExactRevealTask(Message):
    """Combiner -> every member: decrypt the grade ciphertext of this request."""

    TYPE: ClassVar[str] = "exact-reveal-task"

    authorization: bytes  # the sealed ExactRevealRequest, verbatim (aggregator-signed)
    issued_at: int  # when the combiner made the task

    def check(self) -> None:
        _need(len(self.authorization) > 0 and self.issued_at >= 0, "bad task")


@dataclass(frozen=True)
class ExactDecryptionShare(Message):
    """Member -> combiner: ``Delta S_l c1 + e_l`` for the ciphertext the member computed."""

    TYPE: ClassVar[str] = "exact-decryption-share"

    member: int  # the member's index, 1..n
    task_hash: bytes  # SHA-256 of the sealed ExactRevealTask
    ciphertext_digest: bytes  # psc.hazmat.exact.circuit.digest of the ciphertext it decrypts
    share: bytes  # little-endian uint64 words, one limb per ciphertext prime

    def check(self) -> None:
        _need(self.member >= 1, "member index must be >= 1")
        _need(len(self.task_hash) == HASH_BYTES, "task_hash must be 32 bytes")
        _need(len(self.ciphertext_digest) == HASH_BYTES, "ciphertext_digest must be 32 bytes")
        _need(len(self.share) > 0 and len(self.share) % 8 == 0, "share must be uint64 words")


@dataclass(frozen=True)
class ExactGrades(Message):
    """Combiner -> requester: exact grades, never a score."""

    TYPE: ClassVar[str] = "exact-grades"

    request_hash: bytes  # SHA-256 of the requester's grade request
    period: int  # evaluation period
    grades: tuple[SlotGrade, ...]  # one per requested slot (absolute slot numbers), ascending
    members: tuple[int, ...]  # members whose shares were combined, ascending
    issued_at: int  # when the combiner answered

    def check(self) -> None:
        _need(len(self.request_hash) == HASH_BYTES, "request_hash must be 32 bytes")
        slots = [g.slot for g in self.grades]
        _need(slots == sorted(set(slots)), "grades ascending by slot")
        _need(list(self.members) == sorted(set(self.members)), "members ascending")
