"""The grading authority behind HTTP, with its message methods (agencies, requesters).

Normative: ``protocols/service.md`` §5 and ``protocols/he-grading.md`` 3.5.
:class:`HttpGradingAuthority` has what the reference run (:mod:`psc.sim.he_driver`) uses of
:class:`~psc.parties.grading_authority.GradingAuthority`: ``catalog``, ``circuit``,
``public``, ``grader``, ``log_submission`` and ``reveal``, so the run's agencies and
requester cannot tell whether the authority is in process or remote.  Nothing it answers
is trusted as served:

* the public context is loaded and checked (:func:`~psc.hazmat.he.contexts.load_public`:
  no secret key, within the security bound) and MUST have the fingerprint the caller
  expects when one is given, and the parameters of the catalog's circuit;
* a receipt MUST verify under the authority's key and name the submission's hash;
* a grade response MUST verify under the authority's key, name the SHA-256 of the exact
  request sent, its requester, period and slots, and carry grade indices of the catalog;
  anything else raises :class:`~psc.exceptions.InvalidMessage` and no grade is returned.

Refusals raise the authority's exception class (:mod:`psc.service.client`); no answer
after the retries raises :class:`~psc.service.client.PeerUnavailable`.
"""

from __future__ import annotations

from psc.catalog import Catalog
from psc.exceptions import InvalidMessage
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.contexts import PublicContext, load_public
from psc.hazmat.he.evaluator import HomomorphicGrader
from psc.protocol import codec
from psc.protocol.he_messages import HeGradeResponse, HeLogReceipt
from psc.protocol.messages import GradeRequest, SignedMessage
from psc.protocol.signing import digest, open_signed
from psc.service.client import HttpPeer


def check_receipt(sealed_receipt: bytes, sealed_submission: bytes, authority_key: bytes) -> int:
    """The log position a signed receipt gives ``sealed_submission``; raises
    :class:`InvalidMessage` unless it verifies and names that submission."""
    receipt = open_signed(sealed_receipt, HeLogReceipt, lambda _: authority_key)
    if receipt.entry != digest(sealed_submission):
        raise InvalidMessage("the receipt is for another submission")
    return receipt.index


def check_grade_response(
    sealed_response: bytes, sealed_request: bytes, authority_key: bytes, n_grades: int
) -> dict[int, int]:
    """``{slot: grade index}`` of a signed response to ``sealed_request`` (requester).

    Raises :class:`InvalidMessage` unless it verifies under ``authority_key``, is bound to
    the SHA-256 of ``sealed_request``, names its requester, period and slots, and every
    grade index is below ``n_grades``."""
    resp = open_signed(sealed_response, HeGradeResponse, lambda _: authority_key)
    req = codec.decode(codec.decode(sealed_request, SignedMessage).body, GradeRequest)
    if resp.request_hash != digest(sealed_request):
        raise InvalidMessage("the grade response answers another request")
    if (resp.requester, resp.period, resp.slots) != (req.requester, req.period, req.slots):
        raise InvalidMessage("the grade response names another requester, period or slots")
    if any(g >= n_grades for g in resp.grades):
        raise InvalidMessage("the grade response carries a grade index the catalog lacks")
    return dict(zip(resp.slots, resp.grades, strict=True))


class HttpGradingAuthority:
    """The grading authority at ``peer``, checked against ``authority_key`` (its Ed25519
    public key, from the deployment) and ``catalog``.  ``fingerprint``: the public
    context's expected fingerprint (else the first one fetched is pinned)."""

    def __init__(
        self,
        peer: HttpPeer,
        authority_key: bytes,
        catalog: Catalog,
        *,
        fingerprint: bytes | None = None,
    ) -> None:
        self.peer = peer
        self.catalog = catalog
        self.circuit = GradingCircuit.for_catalog(catalog)
        self._key = bytes(authority_key)
        self._fingerprint = fingerprint
        self._public: PublicContext | None = None

    @property
    def public(self) -> PublicContext:
        """The authority's public context, fetched once and checked (module doc)."""
        if self._public is None:
            ctx = load_public(self.peer.get("/v1/he/context"))
            if self._fingerprint is not None and ctx.fingerprint != self._fingerprint:
                raise InvalidMessage("the served context is not the expected one")
            if ctx.params != self.circuit.params:
                raise InvalidMessage("the served context is not the catalog circuit's")
            self._public = ctx
        return self._public

    @property
    def grader(self) -> HomomorphicGrader:
        return HomomorphicGrader(self.circuit, self.public)

    def log_submission(self, sealed: bytes) -> bytes:
        """Send a signed submission; the checked, signed receipt."""
        receipt = self.peer.post("/v1/he/submissions", sealed)
        check_receipt(receipt, sealed, self._key)
        return receipt

    def grade_response(self, sealed_request: bytes) -> bytes:
        """Send a signed grade request; the signed response, once checked (module doc)."""
        response = self.peer.post("/v1/he/grade-requests", sealed_request)
        self._grades(response, sealed_request)
        return response

    def reveal(self, sealed_request: bytes) -> dict[int, int]:
        """``{slot: grade index}`` for a signed request, from the checked response."""
        return self._grades(self.peer.post("/v1/he/grade-requests", sealed_request), sealed_request)

    def _grades(self, response: bytes, sealed_request: bytes) -> dict[int, int]:
        n = len(self.circuit.labels)
        return check_grade_response(response, sealed_request, self._key, n)

    def close(self) -> None:
        self.peer.close()


__all__ = ["HttpGradingAuthority", "check_grade_response", "check_receipt"]
