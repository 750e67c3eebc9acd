"""The rights office's HTTP API: residents' asks and the operator's decisions.

Normative: ``protocols/service.md`` §10, ``protocols/rights.md`` §4.  Each route decodes one
ask of :mod:`psc.protocol.rights_asks` (exact fields, value checks), runs one method of
:class:`~psc.parties.rights.office.RightsOffice` (which calls the other parties, over HTTP
in a deployment, and verifies their answers), and answers the request's record
(:class:`~psc.protocol.rights_asks.RightsRecord`).  The asks are not signed: the resident
and the operator are authenticated by the channel in front of the office (version 1 serves
loopback only, without it).

Retries: an ask that opens a request carries an ``ask_id``; the same ask again answers the
request it opened and opens nothing.  A decision on a request already decided answers its
record (nothing is done twice); a decision interrupted by a crash is completed by
:meth:`RightsOffice.recover` when the office restarts, or by the same ask again.

Leaks: to the caller, the request's record (the resident's own request); to the other
parties, what the office's workflows send them (``rights.md`` §5).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI

from psc.parties.rights.office import RightsOffice
from psc.policy.requests import RightsRequest
from psc.protocol import codec
from psc.protocol.rights_asks import (
    RightsAccessAsk,
    RightsAnswerAccess,
    RightsCorrectionAsk,
    RightsGrant,
    RightsRecord,
    RightsRepairAsk,
    RightsRepairDecision,
    RightsWithdrawalAsk,
)
from psc.service.http import cbor_get, cbor_post, new_app

_ACCESS = ("access", "explanation")
_CORRECTION = ("correction", "appeal", "deletion")


def record_of(office: RightsOffice, req: RightsRequest) -> bytes:
    """The encoded :class:`RightsRecord` of ``req`` with the adjustments logged for it."""
    logged = tuple(
        link.adjustment_hash
        for link in office.links(req.id)
        if link.action == "adjustment-logged" and link.adjustment_hash is not None
    )
    return codec.encode(
        RightsRecord(
            id=req.id,
            kind=req.kind,
            identity=req.subject,
            ref=req.ref or "",
            rule=req.rule or "",
            status=req.status,
            due=req.due.isoformat(),
            outcome=req.outcome or "",
            reason=req.reason or "",
            adjustments=logged,
        )
    )


def rights_office_app(office: RightsOffice) -> FastAPI:
    """The rights office's API over ``office`` (its parties are HTTP clients when served)."""
    app = new_app(
        "psc rights office",
        "Data-subject requests (access, correction, appeal, deletion, credit repair, consent "
        "withdrawal) run through the desk and the protocol.  Bodies are canonical CBOR "
        "(protocols/service.md §10).",
    )

    def opened(ask_id: bytes, open_it: Callable[[str], RightsRequest]) -> bytes:
        key = ask_id.hex()
        req = office.asked(key)
        return record_of(office, open_it(key) if req is None else req)

    def access_ask(data: bytes) -> bytes:
        a = codec.decode(data, RightsAccessAsk)
        return opened(a.ask_id, lambda k: office.open_access(a.identity, kind=a.kind, ask=k))

    def correction_ask(data: bytes) -> bytes:
        a = codec.decode(data, RightsCorrectionAsk)
        return opened(
            a.ask_id,
            lambda k: office.open_correction(a.identity, a.ref, kind=a.kind, note=a.note, ask=k),
        )

    def repair_ask(data: bytes) -> bytes:
        a = codec.decode(data, RightsRepairAsk)
        return opened(
            a.ask_id, lambda k: office.open_repair(a.identity, a.rule, a.ref, note=a.note, ask=k)
        )

    def withdrawal_ask(data: bytes) -> bytes:
        a = codec.decode(data, RightsWithdrawalAsk)
        return opened(
            a.ask_id,
            lambda k: office.withdraw_consent(a.identity, a.token_id, a.relying_party, ask=k),
        )

    def answer_access(data: bytes) -> bytes:
        a = codec.decode(data, RightsAnswerAccess)
        req = office.desk.get(a.request_id)
        if req.kind in _ACCESS and req.status != "open":
            return record_of(office, req)  # answered before: its record, nothing redone
        office.answer_access(a.request_id, first_period=a.first_period, at=a.at)
        return record_of(office, office.desk.get(a.request_id))

    def grant(data: bytes) -> bytes:
        a = codec.decode(data, RightsGrant)
        req = office.desk.get(a.request_id)
        if req.kind in _CORRECTION and req.status != "open":
            return record_of(office, req)
        office.grant_correction(a.request_id)
        return record_of(office, office.desk.get(a.request_id))

    def decide_repair(data: bytes) -> bytes:
        a = codec.decode(data, RightsRepairDecision)
        req = office.desk.get(a.request_id)
        if req.kind == "repair" and req.status != "open":
            return record_of(office, req)
        office.decide_repair(a.request_id, performance_proven=a.performance_proven)
        return record_of(office, office.desk.get(a.request_id))

    def get_request(request_id: str) -> bytes:
        if not request_id.isdigit() or len(request_id) > 18:
            raise ValueError("request_id is a decimal number")
        return record_of(office, office.desk.get(int(request_id)))

    for path, handler, summary in (
        ("/v1/rights/access-asks", access_ask, "a resident opens an access request"),
        ("/v1/rights/correction-asks", correction_ask, "a resident disputes one event"),
        ("/v1/rights/repair-asks", repair_ask, "a resident asks for credit repair"),
        ("/v1/rights/withdrawal-asks", withdrawal_ask, "a resident withdraws a consent token"),
    ):
        cbor_post(
            app,
            path,
            handler,
            summary=summary + "; the request's record",
            description="protocols/service.md §10, protocols/rights.md §4.  Idempotent on "
            "ask_id.  400 malformed or refused by the desk; 403 an identity not enrolled.",
            errors=(400, 403),
            max_body=64 * 1024,
        )
    for path, handler, summary in (
        ("/v1/rights/access-answers", answer_access, "answer an access request, verified"),
        ("/v1/rights/grants", grant, "grant a correction, appeal or deletion"),
        ("/v1/rights/repair-decisions", decide_repair, "decide a credit repair"),
    ):
        cbor_post(
            app,
            path,
            handler,
            summary="operator: " + summary + "; the request's record",
            description="protocols/service.md §10, protocols/rights.md §4.  A request "
            "already decided answers its record.  400 not such an open request, or a "
            "peer's answer that does not verify; the peers' refusals pass through.",
            errors=(400, 403, 409),
            max_body=64 * 1024,
        )
    cbor_get(
        app,
        "/v1/rights/requests/{request_id}",
        get_request,
        summary="a request's record",
        description="protocols/service.md §10.  400 no such request.",
        errors=(400,),
        patterns={"request_id": "^[1-9][0-9]{0,17}$"},
    )
    return app


__all__ = ["record_of", "rights_office_app"]
