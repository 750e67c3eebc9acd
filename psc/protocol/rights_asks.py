"""Messages of the rights workflows over HTTP (normative: ``protocols/service.md`` §10).

Two kinds, both canonical CBOR (``setup.md`` §2), **not signed**:

* **carriers** between protocol parties, for a method that takes or returns more than one
  sealed message: :class:`AdjustmentBatch` (sealed adjustments, verbatim),
  :class:`InclusionBatch` (encoded log inclusions, verbatim), :class:`LoggedAdjustments`
  (pairs of both), :class:`AdjustmentCount`, and :class:`AdjustmentOrderAsk` (the rights
  office asking the registry to sign an order).  A carrier vouches for nothing: every
  sealed message it carries is verified by the receiving party exactly as when it arrives
  alone (signatures, inclusion proofs, freshness);
* **asks** of people outside the protocol to the rights office (a resident opening a
  request; the office's operator deciding one), and the office's answer, the request
  record :class:`RightsRecord`.  As in §9, the person is authenticated by the channel in
  front of the route, not by the message.

Every message is decoded with exact fields and types and value-checked (:meth:`check`)
before it touches anything; a refusal is :class:`~psc.exceptions.InvalidMessage`.

What they leak: to the party they are sent to, what it must know to act (an ask names
the resident and what it asks about; an order ask names the slot's identity to the
registry, which knows it).  Nothing to anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from psc.protocol.messages import HASH_BYTES, Message, _need

#: Most sealed adjustments one carrier holds (a repair makes one per live envelope).
MAX_ADJUSTMENTS = 256
#: Most logged adjustments an agency is sent to recover from in one message.
MAX_LOGGED = 65_536
_MAX_TEXT = 128
_MAX_NOTE = 1024
_ACCESS_KINDS = ("access", "explanation")
_CORRECTION_KINDS = ("correction", "appeal", "deletion")
_ORDER_KINDS = ("correction", "appeal", "deletion", "repair")
ASK_ID_BYTES = 16


def _text(value: str, what: str, *, empty: bool = False, limit: int = _MAX_TEXT) -> None:
    _need(
        (empty or len(value) > 0) and len(value) <= limit and value.isprintable(),
        f"{what} is {'0' if empty else '1'}-{limit} printable characters",
    )


def _blobs(values: tuple[bytes, ...], what: str, *, least: int, most: int) -> None:
    _need(least <= len(values) <= most, f"{what}: {least} to {most} entries")
    _need(all(len(v) > 0 for v in values), f"{what}: no empty entry")


# -- carriers between parties ------------------------------------------------------------


@dataclass(frozen=True)
class AdjustmentBatch(Message):
    """Sealed :class:`~psc.parties.rights.messages.Adjustment` s, verbatim, in order.

    Agency -> rights office (what ``compensate`` seals for one order); rights office ->
    aggregator (ingest all of them in one ledger transaction, or check them all).
    """

    TYPE: ClassVar[str] = "adjustment-batch"

    adjustments: tuple[bytes, ...]  # sealed adjustments, 1..256, distinct

    def check(self) -> None:
        _blobs(self.adjustments, "adjustments", least=1, most=MAX_ADJUSTMENTS)
        _need(len(set(self.adjustments)) == len(self.adjustments), "adjustments repeat")


@dataclass(frozen=True)
class InclusionBatch(Message):
    """Aggregator -> rights office: the encoded log inclusion of each adjustment of an
    :class:`AdjustmentBatch`, in the batch's order."""

    TYPE: ClassVar[str] = "inclusion-batch"

    inclusions: tuple[bytes, ...]  # encoded LogInclusion, 1..256

    def check(self) -> None:
        _blobs(self.inclusions, "inclusions", least=1, most=MAX_ADJUSTMENTS)


@dataclass(frozen=True)
class LoggedAdjustments(Message):
    """Rights office -> agency: logged adjustments with their inclusions (the agency
    applies those it signed and the log proves: ``RightsAgency.recover``)."""

    TYPE: ClassVar[str] = "logged-adjustments"

    adjustments: tuple[bytes, ...]  # sealed adjustments, 0..65536
    inclusions: tuple[bytes, ...]  # the encoded LogInclusion of each, same order

    def check(self) -> None:
        _blobs(self.adjustments, "adjustments", least=0, most=MAX_LOGGED)
        _blobs(self.inclusions, "inclusions", least=0, most=MAX_LOGGED)
        _need(len(self.adjustments) == len(self.inclusions), "one inclusion per adjustment")


@dataclass(frozen=True)
class AdjustmentCount(Message):
    """A count: adjustments an aggregator checked (writing nothing), or an agency newly
    applied from the log."""

    TYPE: ClassVar[str] = "adjustment-count"

    count: int  # >= 0

    def check(self) -> None:
        _need(self.count >= 0, "count must be non-negative")


@dataclass(frozen=True)
class AdjustmentOrderAsk(Message):
    """Rights office -> registry: sign an ``adjustment-order`` (``rights.md`` §3.2) for the
    identity's slot.  The registry resolves the identity; everything else is the order's."""

    TYPE: ClassVar[str] = "adjustment-order-ask"

    identity: str  # the resident the order is about
    agency: str  # the agency that must compensate
    kind: str  # correction, appeal, deletion or repair
    case: str  # the desk's request reference, rights-<id>
    original: bytes  # envelope hash (32 bytes), empty for repair
    leaves: tuple[int, ...]  # leaf indices, empty for repair
    rule: str  # repair only

    def check(self) -> None:
        _text(self.identity, "identity")
        _text(self.agency, "agency")
        _text(self.case, "case")
        _need(self.kind in _ORDER_KINDS, f"kind is one of {', '.join(_ORDER_KINDS)}")
        if self.kind == "repair":
            _need(not self.original and not self.leaves, "a repair names no envelope or leaf")
            _text(self.rule, "rule")
        else:
            _need(len(self.original) == HASH_BYTES, "original is a 32-byte envelope hash")
            _need(len(self.leaves) == 1 and self.leaves[0] >= 0, "name exactly one leaf")
            _need(not self.rule, "only a repair names a rule")


# -- asks to the rights office -------------------------------------------------------------


@dataclass(frozen=True)
class RightsAccessAsk(Message):
    """A resident -> rights office: open an access (or explanation) request."""

    TYPE: ClassVar[str] = "rights-access-ask"

    ask_id: bytes  # 16 bytes the resident's client draws: the same ask again opens nothing new
    identity: str  # the authenticated resident
    kind: str  # access or explanation

    def check(self) -> None:
        _need(len(self.ask_id) == ASK_ID_BYTES, "ask_id is 16 bytes")
        _text(self.identity, "identity")
        _need(self.kind in _ACCESS_KINDS, "kind is access or explanation")


@dataclass(frozen=True)
class RightsCorrectionAsk(Message):
    """A resident -> rights office: open a correction, appeal or deletion of one event."""

    TYPE: ClassVar[str] = "rights-correction-ask"

    ask_id: bytes  # as in RightsAccessAsk
    identity: str  # the authenticated resident
    kind: str  # correction, appeal or deletion
    ref: str  # ENVELOPE#LEAF from the access answer
    note: str  # the resident's grounds, may be empty

    def check(self) -> None:
        _need(len(self.ask_id) == ASK_ID_BYTES, "ask_id is 16 bytes")
        _text(self.identity, "identity")
        _need(self.kind in _CORRECTION_KINDS, "kind is correction, appeal or deletion")
        _text(self.ref, "ref", limit=96)
        _text(self.note, "note", empty=True, limit=_MAX_NOTE)


@dataclass(frozen=True)
class RightsRepairAsk(Message):
    """A resident -> rights office: open a credit repair of one rule's record class."""

    TYPE: ClassVar[str] = "rights-repair-ask"

    ask_id: bytes  # as in RightsAccessAsk
    identity: str  # the authenticated resident
    rule: str  # the rule (record class) to remove early
    ref: str  # ENVELOPE#LEAF of the event cited
    note: str  # may be empty

    def check(self) -> None:
        _need(len(self.ask_id) == ASK_ID_BYTES, "ask_id is 16 bytes")
        _text(self.identity, "identity")
        _text(self.rule, "rule")
        _text(self.ref, "ref", limit=96)
        _text(self.note, "note", empty=True, limit=_MAX_NOTE)


@dataclass(frozen=True)
class RightsWithdrawalAsk(Message):
    """A resident -> rights office: withdraw a consent token (effective at once)."""

    TYPE: ClassVar[str] = "rights-withdrawal-ask"

    ask_id: bytes  # as in RightsAccessAsk
    identity: str  # the authenticated resident
    token_id: str  # the consent token's id
    relying_party: str  # the relying party holding it

    def check(self) -> None:
        _need(len(self.ask_id) == ASK_ID_BYTES, "ask_id is 16 bytes")
        _text(self.identity, "identity")
        _text(self.token_id, "token_id")
        _text(self.relying_party, "relying_party")


@dataclass(frozen=True)
class RightsAnswerAccess(Message):
    """The office's operator -> rights office: answer an open access request with the
    verified access protocol, evaluated at ``at``, events from ``first_period`` on."""

    TYPE: ClassVar[str] = "rights-answer-access"

    request_id: int  # > 0
    first_period: int  # >= 0
    at: int  # evaluation period, >= first_period

    def check(self) -> None:
        _need(self.request_id > 0, "request_id must be positive")
        _need(0 <= self.first_period <= self.at, "bad period range")


@dataclass(frozen=True)
class RightsGrant(Message):
    """The office's operator -> rights office: grant an open correction, appeal or deletion."""

    TYPE: ClassVar[str] = "rights-grant"

    request_id: int  # > 0

    def check(self) -> None:
        _need(self.request_id > 0, "request_id must be positive")


@dataclass(frozen=True)
class RightsRepairDecision(Message):
    """The office's operator -> rights office: decide an open repair."""

    TYPE: ClassVar[str] = "rights-repair-decision"

    request_id: int  # > 0
    performance_proven: bool  # the resident proved performance (rights.md §4.3)

    def check(self) -> None:
        _need(self.request_id > 0, "request_id must be positive")


@dataclass(frozen=True)
class RightsRecord(Message):
    """Rights office -> asker: one request as the desk holds it, after the ask."""

    TYPE: ClassVar[str] = "rights-record"

    id: int  # the desk's request id
    kind: str  # access, explanation, correction, appeal, deletion, repair, consent-withdrawal
    identity: str  # the resident
    ref: str  # ENVELOPE#LEAF or token id; empty if none
    rule: str  # repair only; empty otherwise
    status: str  # open, granted, refused, ...
    due: str  # the deadline, ISO date
    outcome: str  # the recorded outcome (JSON text, e.g. the verified access answer); empty if none
    reason: str  # a refusal's reason; empty if none
    adjustments: tuple[bytes, ...]  # hashes of the adjustments logged for it, in log order

    def check(self) -> None:
        _need(self.id > 0, "id must be positive")
        _need(all(len(h) == HASH_BYTES for h in self.adjustments), "32-byte adjustment hashes")


CARRIERS: tuple[type[Message], ...] = (
    AdjustmentBatch,
    InclusionBatch,
    LoggedAdjustments,
    AdjustmentCount,
    AdjustmentOrderAsk,
)
ASKS: tuple[type[Message], ...] = (
    RightsAccessAsk,
    RightsCorrectionAsk,
    RightsRepairAsk,
    RightsWithdrawalAsk,
    RightsAnswerAccess,
    RightsGrant,
    RightsRepairDecision,
    RightsRecord,
)

__all__ = [
    "ASKS",
    "ASK_ID_BYTES",
    "CARRIERS",
    "MAX_ADJUSTMENTS",
    "AdjustmentBatch",
    "AdjustmentCount",
    "AdjustmentOrderAsk",
    "InclusionBatch",
    "LoggedAdjustments",
    "RightsAccessAsk",
    "RightsAnswerAccess",
    "RightsCorrectionAsk",
    "RightsGrant",
    "RightsRecord",
    "RightsRepairAsk",
    "RightsRepairDecision",
    "RightsWithdrawalAsk",
]
