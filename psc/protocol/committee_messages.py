"""Messages of the committee reveal (normative: ``protocols/reveal-dp.md``, ``protocols/noise-shares.md``).

The k-of-n key committee's reveal runs between one **combiner** (the party that answers
grade requests; it holds no key share) and the ``n`` **members** (each holds one key
share of :mod:`psc.hazmat.threshold`).  Four messages, each sealed with
:func:`psc.protocol.signing.seal`, so each has its own signature label
(``psc/v1/committee-reveal-task`` ...) and can never be replayed as another type:

1. :class:`RevealTask`: combiner -> every member: which blocks, which target slots.
2. :class:`NoiseShare`: member -> combiner: one encrypted vector per task block
   (noise share at target slots, mask share elsewhere), bound to the task's hash.
3. :class:`DecryptionRequest`: combiner -> members: the task and the noise shares it
   will add (each member recomputes the noised blocks itself and checks its own share is in).
4. :class:`MemberDecryptionShare`: member -> combiner: one batched, NIZK-proved packed
   decryption share (:func:`psc.hazmat.threshold.encoding.encode_packed_share`) of the noised blocks.

The combiner's answer, :class:`CommitteeGrades`, is a signed grade list with the privacy
loss it cost; the noisy values are never in any message.

Plain frozen dataclasses, one comment per field, no logic beyond value checks; encoding
is :mod:`psc.protocol.codec` (canonical CBOR).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from psc.exceptions import InvalidMessage
from psc.protocol.messages import HASH_BYTES, BlockCiphertext, Message, SlotGrade

_RELEASE = re.compile(r"^(grade|statistic:[a-z0-9][a-z0-9._-]{0,63})$")
_FRACTION = re.compile(r"^(0|[1-9][0-9]*)(/[1-9][0-9]*)?$")


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidMessage(what)


def _hash(value: bytes, field: str) -> None:
    _need(len(value) == HASH_BYTES, f"{field} must be {HASH_BYTES} bytes")


def _blocks_sorted(blocks: tuple[BlockCiphertext, ...], field: str) -> None:
    keys = [(b.label, b.block) for b in blocks]
    _need(len(keys) >= 1 and keys == sorted(set(keys)), f"{field} must be sorted and unique")
    _need(all(b.block >= 0 for b in blocks), f"{field}: negative block index")


@dataclass(frozen=True)
class RevealTask(Message):
    """Combiner -> every member: decrypt these blocks with noise at ``targets`` only."""

    TYPE: ClassVar[str] = "committee-reveal-task"

    request_hash: bytes  # SHA-256 of the request this task serves
    release: str  # what is released: "grade", or "statistic:<name>" (cells instead of slots)
    period: int  # evaluation period; a member decrypts a (release, slot, period) at most once
    targets: tuple[int, ...]  # slots whose score is revealed (noised); every other slot is masked
    blocks: tuple[BlockCiphertext, ...]  # the live-sum blocks, sorted by (label, block)
    issued_at: int  # when the combiner made the task
    # the aggregator-signed RevealRequest (grade) or StatisticRequest (statistic) this task
    # serves, verbatim: members derive release, period and targets from it and recompute
    # the blocks from the log; the combiner's word counts for nothing
    authorization: bytes

    def check(self) -> None:
        _hash(self.request_hash, "request_hash")
        _need(bool(_RELEASE.match(self.release)), "release must be grade or statistic:<name>")
        _need(self.period >= 0 and self.issued_at >= 0, "period and issued_at are >= 0")
        _need(
            len(self.targets) >= 1 and list(self.targets) == sorted(set(self.targets)),
            "targets must be ascending, unique and non-empty",
        )
        _need(self.targets[0] >= 0, "targets must be slots (>= 0)")
        _blocks_sorted(self.blocks, "blocks")
        _need(len(self.authorization) >= 1, "authorization must not be empty")


@dataclass(frozen=True)
class StatisticRequest(Message):
    """Aggregator -> combiner -> members: release one published DP statistic for a period.

    Members release each (statistic, period) at most once and only for the statistics the
    committee's parameters publish.
    """

    TYPE: ClassVar[str] = "committee-statistic-request"

    name: str  # a statistic published in the committee parameters, e.g. "district-mean"
    period: int  # evaluation period
    cells: int  # how many cells (e.g. districts) the statistic has
    issued_at: int  # when the aggregator made the request

    def check(self) -> None:
        _need(bool(_RELEASE.match(f"statistic:{self.name}")), "bad statistic name")
        _need(self.period >= 0 and self.issued_at >= 0, "period and issued_at are >= 0")
        _need(self.cells >= 1, "a statistic has at least one cell")


@dataclass(frozen=True)
class NoiseShare(Message):
    """Member -> combiner: this member's encrypted noise and mask shares for one task."""

    TYPE: ClassVar[str] = "committee-noise-share"

    member: int  # the member's index, 1..n
    task_hash: bytes  # SHA-256 of the sealed RevealTask
    shares: tuple[BlockCiphertext, ...]  # one per task block, same (label, block) order
    # psc.hazmat.proofs.plaintext proof of knowledge of every share block's plaintext, in share
    # order, bound to (task hash, member): no share can be derived from another's ciphertext
    proof: bytes

    def check(self) -> None:
        _need(self.member >= 1, "member index must be >= 1")
        _hash(self.task_hash, "task_hash")
        _blocks_sorted(self.shares, "shares")
        _need(len(self.proof) >= 1, "proof must not be empty")


@dataclass(frozen=True)
class DecryptionRequest(Message):
    """Combiner -> members: decrypt the task's blocks plus exactly these noise shares."""

    TYPE: ClassVar[str] = "committee-decryption-request"

    task: bytes  # the sealed RevealTask, verbatim
    noise_shares: tuple[bytes, ...]  # sealed NoiseShare messages, ascending by member

    def check(self) -> None:
        _need(len(self.noise_shares) >= 1, "at least one noise share")


@dataclass(frozen=True)
class MemberDecryptionShare(Message):
    """Member -> combiner: a proved packed decryption share of the noised task blocks."""

    TYPE: ClassVar[str] = "committee-decryption-share"

    member: int  # the member's index, 1..n (equals the share's index)
    task_hash: bytes  # SHA-256 of the sealed RevealTask
    request_hash: bytes  # SHA-256 of the sealed DecryptionRequest it answers
    share: bytes  # psc.hazmat.threshold.encoding.encode_packed_share over the noised blocks, in task order

    def check(self) -> None:
        _need(self.member >= 1, "member index must be >= 1")
        _hash(self.task_hash, "task_hash")
        _hash(self.request_hash, "request_hash")
        _need(len(self.share) > 0, "share must not be empty")


@dataclass(frozen=True)
class KnownAnswerShare(Message):
    """Member -> combiner, at setup: a proved decryption share of the public known-answer
    ciphertext (:func:`psc.parties.committee.known_answer.known_answer`)."""

    TYPE: ClassVar[str] = "committee-known-answer-share"

    member: int  # the member's index, 1..n (equals the share's index)
    share: bytes  # psc.hazmat.threshold.encoding.encode_share of the known-answer ciphertext

    def check(self) -> None:
        _need(self.member >= 1, "member index must be >= 1")
        _need(len(self.share) >= 1, "share must not be empty")


@dataclass(frozen=True)
class CommitteeGrades(Message):
    """Combiner -> requester (and its own store): grades and the privacy loss, never scores."""

    TYPE: ClassVar[str] = "committee-grades"

    request_hash: bytes  # SHA-256 of the signed grade request
    period: int  # evaluation period
    grades: tuple[SlotGrade, ...]  # one per requested slot, ascending by slot
    mechanism: str  # e.g. "distributed-discrete-laplace"
    epsilon: str  # per-subject epsilon of this period's release, exact fraction "p/q"
    delta: str  # per-subject delta (tail truncation of the shares), exact fraction
    members: tuple[int, ...]  # members whose decryption shares were combined
    excluded: tuple[int, ...]  # members excluded for a bad noise or decryption share
    stored: tuple[int, ...]  # slots answered from an earlier release (nothing spent)
    issued_at: int  # when the combiner answered

    def check(self) -> None:
        _hash(self.request_hash, "request_hash")
        _need(self.period >= 0 and self.issued_at >= 0, "period and issued_at are >= 0")
        slots = [g.slot for g in self.grades]
        _need(len(slots) >= 1 and slots == sorted(set(slots)), "grades ascending by slot")
        _need(set(self.stored) <= set(slots), "stored slots must be graded slots")
        _need(bool(_FRACTION.match(self.epsilon)), "epsilon must be an exact fraction")
        _need(bool(_FRACTION.match(self.delta)), "delta must be an exact fraction")
        _need(list(self.members) == sorted(set(self.members)), "members ascending")
        _need(list(self.excluded) == sorted(set(self.excluded)), "excluded ascending")


__all__ = [
    "CommitteeGrades",
    "DecryptionRequest",
    "MemberDecryptionShare",
    "NoiseShare",
    "RevealTask",
]
