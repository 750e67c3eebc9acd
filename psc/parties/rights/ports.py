"""What the rights office uses of each party: small interfaces, in-process or remote.

Normative: ``protocols/rights.md`` (the workflows), ``protocols/service.md`` §10 (the same
calls over HTTP).  :class:`~psc.parties.rights.office.RightsOffice` talks to the registry,
the aggregator, the agencies and the key holder only through these methods, so it runs
unchanged whether a party is an object in its process (:class:`RightsRegistry`,
:class:`RightsAggregator`, :class:`RightsAgency`, :class:`KeyHolder`) or an HTTP client
(:mod:`psc.service.rights_client`).  Each method takes and returns sealed messages (or
public records), and the office verifies what it reads: an agency's answer against the
log, a logged adjustment against its signature and inclusion, a revealed grade against
the key holder's signature and the proven events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from psc.ledger.store import Ledger
from psc.parties.rights.aggregator import AdjustmentRecord
from psc.protocol.parameters import ProtocolParameters


class OfficeRegistry(Protocol):
    """The registry as the rights office uses it (it knows identities)."""

    def slot_of(self, identity: str) -> int:
        """The identity's slot; :class:`~psc.exceptions.UnknownParty` if not enrolled."""
        ...

    def access_request(self, identity: str, first_period: int, last_period: int) -> bytes:
        """A registry-signed access request for the identity's slot."""
        ...

    def grade_request(self, slots: Iterable[int], period: int) -> bytes:
        """A registry-signed grade request (purpose ``subject-self-access``) for slots."""
        ...

    def adjustment_order(
        self,
        identity: str,
        agency: str,
        kind: str,
        *,
        case: str,
        original: bytes = b"",
        leaves: Sequence[int] = (),
        rule: str = "",
    ) -> bytes:
        """A registry-signed adjustment order (``rights.md`` §3.2)."""
        ...


class OfficeAggregator(Protocol):
    """The aggregator as the rights office uses it: its log, and the adjustments' side."""

    @property
    def params(self) -> ProtocolParameters:
        """The registry-signed public parameters."""
        ...

    @property
    def ledger(self) -> Ledger:
        """The log's envelopes (the aggregator's ledger, or a verified replica of it)."""
        ...

    def log_inclusion(self, envelope_hash: bytes) -> bytes:
        """The encoded log inclusion of a logged envelope."""
        ...

    def adjustments(self, originals: Iterable[bytes] | None = None) -> list[AdjustmentRecord]:
        """Logged adjustments in log order (those amending ``originals``, if given)."""
        ...

    def adjustment_inclusion(self, adjustment_hash: bytes) -> bytes:
        """The encoded log inclusion of a logged adjustment."""
        ...

    def adjustments_for_order(self, order_hash: bytes) -> list[AdjustmentRecord]:
        """The adjustments logged for one registry order."""
        ...

    def check_adjustment(self, sealed: bytes) -> object:
        """Every ingest check on a sealed adjustment, writing nothing."""
        ...

    def ingest_adjustments(self, sealed: Sequence[bytes]) -> list[bytes]:
        """Check every adjustment, then log them all in one transaction; their inclusions."""
        ...

    def prepare_reveal(self, sealed_request: bytes) -> bytes:
        """A grade request turned into a reveal request for the key holder."""
        ...

    def release(self, sealed_notice: bytes) -> bytes:
        """The key holder's reveal notice logged; its inclusion."""
        ...


class OfficeAgency(Protocol):
    """An agency as the rights office uses it."""

    @property
    def id(self) -> str:
        """The agency's registered id."""
        ...

    def answer_access(self, sealed_request: bytes) -> bytes:
        """A registry-signed access request answered with the subject's events and proofs."""
        ...

    def compensate(self, sealed_order: bytes) -> list[bytes]:
        """The sealed adjustments carrying out a registry-signed order."""
        ...

    def recover(self, logged: Sequence[tuple[bytes, bytes]]) -> int:
        """Apply the logged adjustments it signed (verified by inclusion); how many were new."""
        ...


class GradeDesk(Protocol):
    """The key holder's reveal desk: a sealed grade request in, the sealed response out,
    once the desk has had the aggregator log the reveal notice (``RevealDesk.grades``)."""

    def grades(self, sealed_request: bytes) -> bytes:
        """The key holder's sealed grade response."""
        ...


__all__ = ["GradeDesk", "OfficeAgency", "OfficeAggregator", "OfficeRegistry"]
