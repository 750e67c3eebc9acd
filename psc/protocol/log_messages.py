"""Messages of the public log's read routes (normative: ``protocols/service.md`` section 8).

The aggregator serves its transparency log to anyone who mirrors it (committee members,
auditors).  Two answers are new message types; the others are messages that already
exist, served verbatim (a :class:`~psc.protocol.messages.TreeHead`, a sealed envelope, a
sealed registration, a sealed adjustment):

1. :class:`LogLeaves`: aggregator -> reader: leaves ``start .. start + len(entries) - 1``
   of the log, each the exact logged bytes (leaf ``i`` hashes to ``SHA-256(0x00 || entry)``).
2. :class:`ConsistencyProof`: aggregator -> reader: the RFC 9162 consistency proof that
   the first ``old_size`` leaves are a prefix of the first ``new_size`` leaves.

Neither is signed: a reader trusts neither.  It recomputes the Merkle root of the leaves
and compares it with a signed tree head, and verifies the proof against two signed roots
(:mod:`psc.service.replica`).  Plain frozen dataclasses, one comment per field, no logic
beyond value checks; encoding is :mod:`psc.protocol.codec` (canonical CBOR).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from psc.exceptions import InvalidMessage
from psc.protocol.messages import HASH_BYTES, Message

#: Most leaves one :class:`LogLeaves` page carries (the route refuses a wider range).
MAX_PAGE_LEAVES = 256
#: Most bytes of entries one page carries; a page ends early rather than exceed it
#: (it always carries at least one leaf, whatever its size).
MAX_PAGE_BYTES = 4 * 1024 * 1024


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidMessage(what)


@dataclass(frozen=True)
class LogLeaves(Message):
    """Aggregator -> anyone: consecutive leaves of the public log, verbatim as logged."""

    TYPE: ClassVar[str] = "log-leaves"

    start: int  # index of the first leaf carried
    entries: tuple[bytes, ...]  # the logged bytes of leaves start, start + 1, ...

    def check(self) -> None:
        _need(self.start >= 0, "start must be non-negative")
        _need(1 <= len(self.entries) <= MAX_PAGE_LEAVES, "a page carries 1 to 256 leaves")


@dataclass(frozen=True)
class ConsistencyProof(Message):
    """Aggregator -> anyone: the log's first ``old_size`` leaves are a prefix of its first
    ``new_size`` (RFC 9162 section 2.1.4; ``protocols/log.md`` section 6)."""

    TYPE: ClassVar[str] = "consistency-proof"

    old_size: int  # the smaller tree size
    new_size: int  # the larger tree size
    proof: tuple[bytes, ...]  # node hashes, as PROOF(old_size, D[new_size])

    def check(self) -> None:
        _need(0 <= self.old_size <= self.new_size, "sizes must satisfy 0 <= old <= new")
        _need(len(self.proof) <= 128, "a consistency proof has at most 128 nodes")
        for p in self.proof:
            _need(len(p) == HASH_BYTES, "proof node must be 32 bytes")


__all__ = ["MAX_PAGE_BYTES", "MAX_PAGE_LEAVES", "ConsistencyProof", "LogLeaves"]
