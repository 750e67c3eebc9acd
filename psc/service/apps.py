"""The HTTP API of each served party: routes onto its transport-neutral core.

Normative: ``protocols/service.md`` (routes, statuses, limits).  Each route hands the
request body, unchanged, to one method of the party (:mod:`psc.parties`) and returns what
the method returns; the party verifies everything, so the HTTP layer adds no trust.  What
a route leaks is what the method leaks (see its docstring), plus the timing and size of
the exchange to anyone on the path (run it behind TLS outside loopback).
"""

from __future__ import annotations

from fastapi import FastAPI

from psc.parties.agency_desk import AgencyDesk
from psc.parties.committee.member import CommitteeMember
from psc.parties.reveal_desk import RevealDesk
from psc.parties.rights.aggregator import RightsAggregator
from psc.parties.rights.registry import RightsRegistry
from psc.service.http import cbor_get, cbor_post, new_app
from psc.service.log_routes import add_log_routes
from psc.service.rights_routes import (
    add_rights_agency_routes,
    add_rights_aggregator_routes,
    add_rights_registry_routes,
)


def aggregator_app(aggregator: RightsAggregator) -> FastAPI:
    """The aggregator's API: submissions, the log side of reveals, log inclusions.

    Retrying a submission is safe: an envelope already ingested returns its receipt again
    and changes nothing (``Aggregator.ingest``).  A grade request prepared twice is
    prepared again from the log (nothing is written).  A reveal notice is logged once: the
    same notice again returns the inclusion already logged (``Aggregator.release``).
    """
    app = new_app(
        "psc aggregator",
        "The scoring authority: verifies, logs and adds agencies' encrypted envelopes; "
        "never holds a decryption key.  Bodies are sealed canonical CBOR (protocols/).",
    )
    cbor_post(
        app,
        "/v1/submissions",
        aggregator.ingest,
        summary="ingest an agency's sealed envelope; returns the signed receipt",
        description="protocols/ingest.md.  Idempotent: the same envelope returns the same "
        "receipt.  400 malformed or unverifiable; 403 unknown agency or stale period; "
        "409 catalog mismatch, replayed nonce or another envelope for the period.",
        errors=(400, 403, 409),
    )
    cbor_post(
        app,
        "/v1/reveal-requests",
        aggregator.prepare_reveal,
        summary="turn a signed grade request into a reveal request for the key holder",
        description="protocols/reveal-baseline.md.  403 for a purpose the requester did not "
        "register or an unknown requester.",
        errors=(400, 403),
        max_body=1024 * 1024,
    )
    cbor_post(
        app,
        "/v1/reveal-notices",
        aggregator.release,
        summary="log the key holder's reveal notice; returns its log inclusion",
        description="protocols/reveal-baseline.md.",
        errors=(400, 403),
        max_body=1024 * 1024,
    )

    def inclusion(envelope_hash: str) -> bytes:
        try:
            h = bytes.fromhex(envelope_hash)
        except ValueError:
            raise ValueError("envelope_hash must be hexadecimal") from None
        return aggregator.log_inclusion(h)

    cbor_get(
        app,
        "/v1/log/inclusions/{envelope_hash}",
        inclusion,
        summary="the log inclusion of a logged envelope (hex SHA-256 of its sealed bytes)",
        description="protocols/access.md, protocols/log.md.",
        errors=(400, 404),
        patterns={"envelope_hash": "^[0-9a-f]{64}$"},
    )
    add_log_routes(app, aggregator)  # the public log for mirrors (protocols/service.md 8)
    add_rights_aggregator_routes(app, aggregator)  # adjustments (protocols/service.md 10)
    return app


def member_app(member: CommitteeMember) -> FastAPI:
    """A committee member's API: noise shares, decryption shares, the setup check.

    Retrying is safe: the member keeps what it sent and what it helped release
    (:class:`~psc.parties.committee.member_store.MemberStore`) before an answer leaves, and
    answers a repeated request with the same share.
    """
    app = new_app(
        f"psc committee member {member.index}",
        "One of the k-of-n key committee: proved noise shares and proved decryption shares, "
        "only for tasks bound to an aggregator-signed request and the public log.",
    )
    cbor_post(
        app,
        "/v1/noise-shares",
        member.noise_share,
        summary="a proved, encrypted noise share for a sealed reveal task",
        description="protocols/reveal-dp.md, protocols/noise-shares.md.  403 when the "
        "member's policy refuses the task; 503 when its log source does not answer.",
        errors=(400, 403, 503),
        max_body=16 * 1024 * 1024,
    )
    cbor_post(
        app,
        "/v1/decryption-shares",
        member.decryption_share,
        summary="a proved decryption share of the noised, masked blocks of a request",
        description="protocols/reveal-dp.md, protocols/decryption-shares.md.  403 when the "
        "slots were already released for the period; 503 when its log source does not answer.",
        errors=(400, 403, 503),
        max_body=64 * 1024 * 1024,
    )
    cbor_get(
        app,
        "/v1/known-answer-share",
        member.known_answer_share,
        summary="the member's sealed share of the known-answer setup check",
        description="protocols/keygen.md.",
    )
    return app


def registry_app(registry: RightsRegistry) -> FastAPI:
    """The registry's API for residents authenticated by the channel (the residents' login
    in a deployment; loopback here): signed grade and access requests for their slots.

    Nothing is stored, so a retry signs a fresh request (a new nonce) and changes nothing.
    Leaks: to the caller, the signed request, which names the slots asked for (a resident
    learns its own pseudonymous slot).
    """
    app = new_app(
        "psc registry",
        "The scheme operator: signs requests on behalf of authenticated residents.  "
        "Bodies are canonical CBOR (protocols/service.md).",
    )
    cbor_post(
        app,
        "/v1/grade-asks",
        registry.answer_grade_ask,
        summary="residents ask for their own grades: a registry-signed grade request",
        description="protocols/service.md §9.  400 malformed; 403 an identity not enrolled.",
        errors=(400, 403),
        max_body=64 * 1024 * 1024,
    )
    cbor_post(
        app,
        "/v1/access-asks",
        registry.answer_access_ask,
        summary="a resident asks for its events: a registry-signed access request",
        description="protocols/service.md §9, protocols/access.md.  403 not enrolled.",
        errors=(400, 403),
        max_body=64 * 1024,
    )
    add_rights_registry_routes(app, registry)  # adjustment orders (protocols/service.md 10)
    return app


def agency_app(desk: AgencyDesk) -> FastAPI:
    """An agency's API: its operator's submissions, and subjects' access requests.

    Retrying a submission returns the stored receipt (``AgencyDesk.submit_period``).
    """
    app = new_app(
        f"psc agency {desk.agency.id}",
        "An official data source: encrypts, commits and signs its records per period; "
        "answers subjects' registry-signed access requests with proofs.",
    )
    cbor_post(
        app,
        "/v1/period-submissions",
        desk.submit_period,
        summary="operator: encrypt and submit a period's records; the aggregator's receipt",
        description="protocols/service.md §9, protocols/submit.md.  400 malformed ask or a "
        "record that is not the agency's; the aggregator's refusals pass through (403, 409); "
        "503 when the aggregator does not answer (the same ask again resends the stored "
        "envelope).",
        errors=(400, 403, 409, 503),
        max_body=1024,
    )
    cbor_post(
        app,
        "/v1/access-requests",
        desk.answer_access,
        summary="a subject's registry-signed access request: its events with proofs",
        description="protocols/access.md.",
        errors=(400,),
        max_body=64 * 1024,
    )
    add_rights_agency_routes(app, desk)  # orders carried out (protocols/service.md 10)
    return app


def key_holder_app(desk: RevealDesk) -> FastAPI:
    """The key holder's reveal desk: a sealed grade request in, the logged response out.

    Retrying the same request returns the same response (``RevealDesk.grades``).
    """
    app = new_app(
        "psc key holder",
        "Answers lawful grade requests with grades only, through the trusted key or the "
        "k-of-n committee, after the aggregator logged the reveal notice.",
    )
    cbor_post(
        app,
        "/v1/grade-requests",
        desk.grades,
        summary="a signed grade request; the grade response, once its notice is logged",
        description="protocols/reveal-baseline.md, protocols/reveal-dp.md.  403 purpose, "
        "consent, budget or unknown requester; 409 stale; 503 too few committee members.",
        errors=(400, 403, 409, 503),
        max_body=64 * 1024 * 1024,
    )
    return app
