"""The rights workflows' routes on the parties that own a side of them.

Normative: ``protocols/service.md`` §10, ``protocols/rights.md``.  One route per method the
rights office (:class:`~psc.parties.rights.office.RightsOffice`) calls on a party; the body
is the sealed message the method takes, or a carrier of :mod:`psc.protocol.rights_asks`
where the method takes or returns several.  The party verifies everything (the HTTP layer
adds no trust and checks nothing the core does not): the aggregator every adjustment's
signature, links, ranges and proofs; the agency the registry's signature and freshness on
an order, and every logged adjustment's inclusion; the registry the identity's enrolment.

Retries (``service.md`` §4): the aggregator's adjustment routes are idempotent (the same
adjustment, or another one carrying out the same order on the same envelope, returns the
inclusion of the entry logged first and logs nothing); the checks route writes nothing;
an agency's ``compensate`` changes no state (a retry seals fresh adjustments for the same
order, which the aggregator logs at most once); ``recover`` is idempotent; the registry
signs a fresh order (a new nonce) and stores nothing.

What a route leaks is what its method leaks (see the party's docstring), plus timing and
sizes to anyone on the path.
"""

from __future__ import annotations

from fastapi import FastAPI

from psc.parties.agency_desk import AgencyDesk
from psc.parties.rights.agency import RightsAgency
from psc.parties.rights.aggregator import RightsAggregator
from psc.parties.rights.registry import RightsRegistry
from psc.protocol import codec
from psc.protocol.rights_asks import (
    AdjustmentBatch,
    AdjustmentCount,
    AdjustmentOrderAsk,
    InclusionBatch,
    LoggedAdjustments,
)
from psc.service.http import cbor_get, cbor_post

_MIB = 1024 * 1024


def _hash(text: str, what: str) -> bytes:
    try:
        h = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{what} must be hexadecimal") from None
    if len(h) != 32:
        raise ValueError(f"{what} must be 64 hex digits")
    return h


def add_rights_aggregator_routes(app: FastAPI, aggregator: RightsAggregator) -> None:
    """The aggregator's side: adjustments checked, logged, and their inclusions."""

    def batch(data: bytes) -> bytes:
        msg = codec.decode(data, AdjustmentBatch)
        return codec.encode(InclusionBatch(tuple(aggregator.ingest_adjustments(msg.adjustments))))

    def check(data: bytes) -> bytes:
        msg = codec.decode(data, AdjustmentBatch)
        for s in msg.adjustments:
            aggregator.check_adjustment(s)
        return codec.encode(AdjustmentCount(len(msg.adjustments)))

    def inclusion(adjustment_hash: str) -> bytes:
        return aggregator.adjustment_inclusion(_hash(adjustment_hash, "adjustment_hash"))

    cbor_post(
        app,
        "/v1/adjustments",
        aggregator.ingest_adjustment,
        summary="ingest an agency's sealed adjustment; returns its log inclusion",
        description="protocols/rights.md §3.4.  Idempotent: the same adjustment (or another "
        "carrying out the same order on the same envelope) returns the inclusion of the "
        "entry logged first.  400 malformed, unverifiable or a bad proof; 403 unknown "
        "agency; 409 stale, replayed nonce, catalog mismatch or a leaf cancelled before.",
        errors=(400, 403, 409),
        max_body=64 * _MIB,
    )
    cbor_post(
        app,
        "/v1/adjustment-batches",
        batch,
        summary="ingest an adjustment-batch all or nothing; an inclusion-batch",
        description="protocols/service.md §10, protocols/rights.md §3.4, §7.  Every "
        "adjustment is checked before any is logged, then all in one ledger transaction.  "
        "Idempotent as /v1/adjustments.",
        errors=(400, 403, 409),
        max_body=64 * _MIB,
    )
    cbor_post(
        app,
        "/v1/adjustment-checks",
        check,
        summary="every ingest check on an adjustment-batch, writing nothing",
        description="protocols/service.md §10, protocols/rights.md §4.3 (a repair is "
        "checked before it is decided).  Answers an adjustment-count.",
        errors=(400, 403, 409),
        max_body=64 * _MIB,
    )
    cbor_get(
        app,
        "/v1/log/adjustment-inclusions/{adjustment_hash}",
        inclusion,
        summary="the log inclusion of a logged adjustment (hex SHA-256 of its sealed bytes)",
        description="protocols/rights.md §3.4, §4.1.  404 unknown.",
        errors=(400, 404),
        patterns={"adjustment_hash": "^[0-9a-f]{64}$"},
    )


def add_rights_agency_routes(app: FastAPI, desk_or_agency: AgencyDesk | RightsAgency) -> None:
    """An agency's side: an order carried out (sealed adjustments), the log applied.

    Raises ``TypeError`` at start-up unless the agency is a :class:`RightsAgency`.
    """
    agency = desk_or_agency.agency if isinstance(desk_or_agency, AgencyDesk) else desk_or_agency
    if not isinstance(agency, RightsAgency):
        raise TypeError("the rights routes need a RightsAgency")

    def compensate(data: bytes) -> bytes:
        return codec.encode(AdjustmentBatch(tuple(agency.compensate(data))))

    def recover(data: bytes) -> bytes:
        msg = codec.decode(data, LoggedAdjustments)
        pairs = list(zip(msg.adjustments, msg.inclusions, strict=True))
        return codec.encode(AdjustmentCount(agency.recover(pairs)))

    cbor_post(
        app,
        "/v1/adjustment-orders",
        compensate,
        summary="a registry-signed adjustment order; the adjustment-batch carrying it out",
        description="protocols/rights.md §3.2-3.3.  Changes no state.  400 an order that "
        "is not the registry's, not fresh, not for this agency, or names a leaf that is "
        "not the subject's or was cancelled; a repair with nothing left to cancel.",
        errors=(400,),
        max_body=64 * 1024,
    )
    cbor_post(
        app,
        "/v1/logged-adjustments",
        recover,
        summary="logged adjustments with inclusions; the agency applies those it signed",
        description="protocols/rights.md §7 (RightsAgency.recover).  Idempotent; answers an "
        "adjustment-count of those newly applied.  400 an inclusion that does not verify.",
        errors=(400,),
        max_body=64 * _MIB,
    )


def add_rights_registry_routes(app: FastAPI, registry: RightsRegistry) -> None:
    """The registry's side: a signed adjustment order for the rights office."""

    def order(data: bytes) -> bytes:
        ask = codec.decode(data, AdjustmentOrderAsk)
        return registry.adjustment_order(
            ask.identity,
            ask.agency,
            ask.kind,
            case=ask.case,
            original=ask.original,
            leaves=ask.leaves,
            rule=ask.rule,
        )

    cbor_post(
        app,
        "/v1/adjustment-order-asks",
        order,
        summary="the rights office asks for a registry-signed adjustment order",
        description="protocols/service.md §10, protocols/rights.md §3.2.  Nothing is "
        "stored: a retry signs a fresh order.  400 malformed; 403 an identity not enrolled.",
        errors=(400, 403),
        max_body=64 * 1024,
    )


__all__ = [
    "add_rights_agency_routes",
    "add_rights_aggregator_routes",
    "add_rights_registry_routes",
]
