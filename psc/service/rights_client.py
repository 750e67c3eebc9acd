"""HTTP clients for what the rights office calls on each party.

Normative: ``protocols/service.md`` §10.  Each class implements one interface of
:mod:`psc.parties.rights.ports`, so :class:`~psc.parties.rights.office.RightsOffice` runs
unchanged against parties in other processes.  Bytes in, bytes out; a refusal raises the
peer's exception class (:class:`~psc.service.client.HttpPeer`), and calls are retried only
where the route is idempotent or writes nothing (``service.md`` §4).

Nothing a peer says is believed beyond what it proves:

* :class:`HttpRightsAggregator` reads the log's envelopes and adjustments from a verified
  replica (:class:`~psc.service.replica.LogReplica`: signed heads, consistency proofs,
  every record hashed against its leaf), never from the aggregator's say-so; the office
  then verifies every adjustment's signature and inclusion itself;
* :class:`HttpRightsRegistry` reads a slot only from a registry-signed access request, and
  checks that a signed grade request names exactly the slots asked for;
* an agency's answers and the key holder's response are verified by the office as in
  process (inclusion proofs against the log; the key holder's signature, the request hash).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from psc.exceptions import InvalidMessage, RightsRequestError
from psc.ledger.store import Ledger, SQLiteLedger
from psc.parties.rights.aggregator import AdjustmentRecord
from psc.protocol import codec
from psc.protocol.heads import Prover
from psc.protocol.log_messages import ConsistencyProof
from psc.protocol.messages import AccessRequest, GradeRequest
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.rights_asks import (
    AdjustmentBatch,
    AdjustmentCount,
    AdjustmentOrderAsk,
    InclusionBatch,
    LoggedAdjustments,
)
from psc.protocol.service_messages import AccessAsk, GradeAsk
from psc.protocol.signing import open_signed
from psc.service.client import HttpAggregator, HttpPeer
from psc.service.replica import LogReplica

_ADJ = (
    "SELECT adjustment_hash, agency, kind, original, period, effective_period, log_index,"
    " adjustment FROM adjustments"
)


def _record(row: tuple[Any, ...]) -> AdjustmentRecord:
    h, agency, kind, orig, p, e, idx, blob = row
    return AdjustmentRecord(
        bytes(h), str(agency), str(kind), bytes(orig), int(p), int(e), int(idx), bytes(blob)
    )


class HttpRightsAggregator(HttpAggregator):
    """The aggregator behind HTTP as the rights office uses it (``OfficeAggregator``).

    ``replica``: a :class:`LogReplica` of the same aggregator's log, synced before every
    read (reads see everything logged before they were made).
    """

    def __init__(self, params: ProtocolParameters, peer: HttpPeer, replica: LogReplica) -> None:
        super().__init__(peer)
        self._params = params
        self.replica = replica

    @property
    def params(self) -> ProtocolParameters:
        return self._params

    def _synced(self) -> SQLiteLedger:
        self.replica.sync()
        return self.replica._replica()  # the verified copy; LogReplica's own reader

    @property
    def ledger(self) -> Ledger:
        """The verified replica's ledger, synced now (envelopes as the log proves them)."""
        return self._synced()

    def _rows(self, where: str = "", args: tuple[Any, ...] = ()) -> list[AdjustmentRecord]:
        led = self._synced()
        sql = _ADJ + where + " ORDER BY log_index"
        return [_record(r) for r in led.connection.execute(sql, args)]

    def adjustments(self, originals: Iterable[bytes] | None = None) -> list[AdjustmentRecord]:
        rows = self._rows()
        if originals is None:
            return rows
        want = set(originals)
        return [r for r in rows if r.original in want]

    def adjustments_for_order(self, order_hash: bytes) -> list[AdjustmentRecord]:
        return self._rows(" WHERE order_hash = ?", (order_hash,))

    def adjustment_inclusion(self, adjustment_hash: bytes) -> bytes:
        return self.peer.get(f"/v1/log/adjustment-inclusions/{adjustment_hash.hex()}")

    def check_adjustment(self, sealed: bytes) -> object:
        out = codec.decode(
            self.peer.post("/v1/adjustment-checks", codec.encode(AdjustmentBatch((sealed,)))),
            AdjustmentCount,
        )
        if out.count != 1:
            raise InvalidMessage("the aggregator's check answer does not match the ask")
        return out

    def ingest_adjustments(self, sealed: Sequence[bytes]) -> list[bytes]:
        body = codec.encode(AdjustmentBatch(tuple(sealed)))
        out = codec.decode(self.peer.post("/v1/adjustment-batches", body), InclusionBatch)
        if len(out.inclusions) != len(sealed):
            raise InvalidMessage("the aggregator answered another number of inclusions")
        return list(out.inclusions)


class HttpRightsRegistry:
    """The registry behind HTTP as the rights office uses it (``OfficeRegistry``).

    Slots are learnt from registry-signed access requests; :meth:`grade_request` asks for
    the identities whose slots this client learnt (the office always resolves a slot
    first), so the registry still decides whom a request is for.
    """

    def __init__(self, params: ProtocolParameters, peer: HttpPeer) -> None:
        self.params = params
        self.peer = peer
        self._identity_of: dict[int, str] = {}

    def access_request(self, identity: str, first_period: int, last_period: int) -> bytes:
        ask = codec.encode(AccessAsk(identity, first_period, last_period))
        sealed = self.peer.post("/v1/access-asks", ask)
        req = open_signed(sealed, AccessRequest, lambda m: self.params.registry_key)
        if (req.first_period, req.last_period) != (first_period, last_period):
            raise InvalidMessage("the registry signed an access request for other periods")
        self._identity_of[req.subject] = identity
        return sealed

    def slot_of(self, identity: str) -> int:
        """The identity's slot, read from a registry-signed access request (nothing is
        stored by the registry; :class:`~psc.exceptions.UnknownParty` if not enrolled)."""
        sealed = self.access_request(identity, 0, 0)
        return open_signed(sealed, AccessRequest, lambda m: self.params.registry_key).subject

    def grade_request(self, slots: Iterable[int], period: int) -> bytes:
        want = tuple(sorted(set(slots)))
        unknown = [s for s in want if s not in self._identity_of]
        if unknown:
            raise RightsRequestError(f"slots {unknown} were not resolved through the registry")
        ask = GradeAsk(tuple(self._identity_of[s] for s in want), period)
        sealed = self.peer.post("/v1/grade-asks", codec.encode(ask))
        req = open_signed(sealed, GradeRequest, lambda m: self.params.registry_key)
        if req.slots != want or req.period != period:
            raise InvalidMessage("the registry signed a grade request for other slots")
        return sealed

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
        ask = AdjustmentOrderAsk(identity, agency, kind, case, original, tuple(leaves), rule)
        return self.peer.post("/v1/adjustment-order-asks", codec.encode(ask))


class HttpRightsAgency:
    """An agency behind HTTP as the rights office uses it (``OfficeAgency``)."""

    def __init__(self, agency_id: str, peer: HttpPeer) -> None:
        self._id = agency_id
        self.peer = peer

    @property
    def id(self) -> str:
        return self._id

    def answer_access(self, sealed_request: bytes) -> bytes:
        return self.peer.post("/v1/access-requests", sealed_request)

    def compensate(self, sealed_order: bytes) -> list[bytes]:
        out = self.peer.post("/v1/adjustment-orders", sealed_order)
        return list(codec.decode(out, AdjustmentBatch).adjustments)

    def recover(self, logged: Sequence[tuple[bytes, bytes]]) -> int:
        msg = LoggedAdjustments(tuple(a for a, _ in logged), tuple(i for _, i in logged))
        out = self.peer.post("/v1/logged-adjustments", codec.encode(msg))
        return codec.decode(out, AdjustmentCount).count


def consistency_prover(peer: HttpPeer) -> Prover:
    """Consistency proofs from the aggregator's log route (``service.md`` §8), for a
    party's :class:`~psc.protocol.heads.HeadKeeper`, which verifies each one between the
    two signed roots it holds (a proof for other sizes is refused here)."""

    def prove(old_size: int, new_size: int) -> list[bytes]:
        got = codec.decode(peer.get(f"/v1/log/consistency/{old_size}/{new_size}"), ConsistencyProof)
        if (got.old_size, got.new_size) != (old_size, new_size):
            raise InvalidMessage("the aggregator proved consistency for other sizes")
        return list(got.proof)

    return prove


class HttpGradeDesk:
    """The key holder's reveal desk behind HTTP (``GradeDesk``)."""

    def __init__(self, peer: HttpPeer) -> None:
        self.peer = peer

    def grades(self, sealed_request: bytes) -> bytes:
        return self.peer.post("/v1/grade-requests", sealed_request)


__all__ = [
    "HttpGradeDesk",
    "HttpRightsAgency",
    "HttpRightsAggregator",
    "HttpRightsRegistry",
    "consistency_prover",
]
