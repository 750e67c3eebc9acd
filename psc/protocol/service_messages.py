"""The asks that start a party's work over HTTP (normative: ``protocols/service.md`` §9).

Three parties act on behalf of someone outside the protocol: the registry on behalf of an
authenticated resident, an agency on behalf of its own operator.  What these people ask
is carried in small canonical-CBOR messages, **not signed**: the person is authenticated
by the channel (the residents' login in front of the registry; the agency's operator
console, on loopback here).  Every ask is decoded and value-checked
(:meth:`~psc.protocol.messages.Message.check`) before it touches anything, and what the
party answers is the usual sealed protocol message (a registry-signed request, an
aggregator-signed receipt).

What an ask leaks: to the party it is sent to, what the person asks for (which is what
the party must know to act); nothing to anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from psc.protocol.messages import Message, _need

#: Most identities one grade ask may name (one batched request of the registry).
MAX_IDENTITIES = 1_000_000
_MAX_IDENTITY = 128


def _identity(value: str) -> None:
    _need(
        0 < len(value) <= _MAX_IDENTITY and value.isprintable(),
        f"an identity is 1-{_MAX_IDENTITY} printable characters",
    )


@dataclass(frozen=True)
class GradeAsk(Message):
    """Resident(s) -> registry: each asks for its own grade in ``period``.

    The registry answers a registry-signed :class:`~psc.protocol.messages.GradeRequest`
    for the identities' slots (purpose ``self-access``), which the residents send to the
    key holder's reveal desk.
    """

    TYPE: ClassVar[str] = "grade-ask"

    identities: tuple[str, ...]  # the authenticated residents asking, distinct
    period: int  # the evaluation period

    def check(self) -> None:
        _need(0 < len(self.identities) <= MAX_IDENTITIES, "name 1 or more identities")
        for ident in self.identities:
            _identity(ident)
        _need(len(set(self.identities)) == len(self.identities), "identities must be distinct")
        _need(self.period >= 0, "period must be non-negative")


@dataclass(frozen=True)
class AccessAsk(Message):
    """A resident -> registry: a signed access request for its own events.

    The registry answers a registry-signed :class:`~psc.protocol.messages.AccessRequest`
    naming the resident's slot, which the resident sends to every agency.
    """

    TYPE: ClassVar[str] = "access-ask"

    identity: str  # the authenticated resident
    first_period: int  # earliest period asked for
    last_period: int  # latest period asked for

    def check(self) -> None:
        _identity(self.identity)
        _need(0 <= self.first_period <= self.last_period, "bad period range")


@dataclass(frozen=True)
class SubmitPeriod(Message):
    """An agency's operator -> its agency: encrypt and submit this period's records.

    The agency answers the aggregator-signed :class:`~psc.protocol.messages.IngestReceipt`
    of its envelope; asked again for a period it already submitted, the same receipt.
    """

    TYPE: ClassVar[str] = "submit-period"

    period: int  # the period whose records to submit

    def check(self) -> None:
        _need(self.period >= 0, "period must be non-negative")


__all__ = ["MAX_IDENTITIES", "AccessAsk", "GradeAsk", "SubmitPeriod"]
