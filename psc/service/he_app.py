"""The CKKS grading authority's HTTP API: routes onto its desk.

Normative: ``protocols/service.md`` §2-§4 and ``protocols/he-grading.md`` section 3.  Each
route hands the body, unchanged, to :class:`~psc.parties.grading_desk.GradingDesk`, which
has the :class:`~psc.parties.grading_authority.GradingAuthority` verify everything; HTTP
adds no trust.  What a route leaks is what the desk's method leaks, plus the timing and
size of the exchange to anyone on the path (run it behind TLS outside loopback).

Body limits (measured with ``psc.testing.he_small_deployment``, and from
``he-grading.md`` section 7): a submission is 1.89 MB per block of 8,192 subjects at the
small profile (N=16384, 230 bytes a slot) and about 8.1 MB per block of 16,384 at the city
profile (N=32768, 496 bytes a slot).  Its limit is 64 MiB, the codec's bound on any message:
about 130,000 subjects per submission at the city profile (a larger deployment needs
submissions split by block, not in version 1).  A grade request names at most one million
slots (about 5 MB): 16 MiB.
"""

from __future__ import annotations

from fastapi import FastAPI

from psc.parties.grading_desk import GradingDesk
from psc.service.http import DEFAULT_MAX_BODY, cbor_get, cbor_post, new_app

#: Limits per route (bytes).
SUBMISSION_MAX_BODY = DEFAULT_MAX_BODY
REQUEST_MAX_BODY = 16 * 1024 * 1024


def grading_authority_app(desk: GradingDesk) -> FastAPI:
    """The grading authority's API: its public context, submissions, grade requests.

    Retrying is safe: the same submission returns the same signed receipt and is logged
    once; the same signed request returns the stored signed response and charges nothing
    twice (:class:`GradingDesk`).
    """
    app = new_app(
        "psc grading authority",
        "The CKKS key holder: logs agencies' signed encrypted submissions, evaluates the "
        "published grading circuit itself on its log, floods, decrypts and releases only "
        "rounded grades, in a signed response bound to the request.  protocols/he-grading.md.",
    )
    cbor_get(
        app,
        "/v1/he/context",
        desk.public_context,
        summary="the published CKKS context agencies encrypt under (he-grading.md 3.1)",
        description="Public; its fingerprint (SHA-256 of these bytes, first 16) is what "
        "submissions cite.  Not CBOR: the context format of he-grading.md 3.1.",
    )
    cbor_post(
        app,
        "/v1/he/submissions",
        desk.log_submission,
        summary="log an agency's signed he-submission; returns the signed he-log-receipt",
        description="protocols/he-grading.md 3.3, 3.5.  Idempotent: the same submission "
        "returns the same receipt and is logged once.  400 malformed, another context or not a fresh "
        "encryption; 403 unregistered agency, a counter its rules cannot set, a period "
        "before the deployment's first; 409 another catalog, a reused nonce, a second "
        "submission for the same (agency, period, class, counter).",
        errors=(400, 403, 409),
        max_body=SUBMISSION_MAX_BODY,
    )
    cbor_post(
        app,
        "/v1/he/grade-requests",
        desk.grades,
        summary="a signed grade request; the signed he-grade-response with the grades",
        description="protocols/he-grading.md 3.4, 3.5.  The budget of every slot is charged "
        "before anything is decrypted.  Idempotent: the same request bytes return the "
        "stored response and charge nothing.  400 malformed or slots outside the subjects; "
        "403 unregistered requester, undeclared purpose, spent budget, an incomplete log; "
        "409 a replayed request nonce.",
        errors=(400, 403, 409),
        max_body=REQUEST_MAX_BODY,
    )
    return app


__all__ = ["REQUEST_MAX_BODY", "SUBMISSION_MAX_BODY", "grading_authority_app"]
