"""The relying party (bank, landlord, employer): one subject's grade for a declared purpose.

Normative: ``protocols/reveal-baseline.md``.  Holds its signing key and the grades it was
given.  Never: scores.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.exceptions import (
    InvalidMessage,
    PolicyViolation,
)
from psc.protocol import codec
from psc.protocol.messages import (
    NONCE_BYTES,
    GradeRequest,
    GradeResponse,
    SignedMessage,
)
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.signing import digest, open_signed, public_bytes, seal
from psc.seams import Clock, RandBytes, _seconds, system_clock

__all__ = [
    "RelyingParty",
    "read_grades",
]


def read_grades(
    params: ProtocolParameters, sealed_request: bytes, sealed_response: bytes
) -> dict[int, str]:
    """Requester (relying party, or the registry for subjects): check and read a response.

    Raises :class:`InvalidMessage` unless it is the key holder's answer to this request.
    """
    resp = open_signed(sealed_response, GradeResponse, lambda m: params.key_holder_key)
    req = codec.decode(codec.decode(sealed_request, SignedMessage).body, GradeRequest)
    if resp.request_hash != digest(sealed_request) or tuple(g.slot for g in resp.grades) != (
        req.slots
    ):
        raise InvalidMessage("grade response does not answer this request")
    labels = set(params.catalog.labels)
    if any(g.grade not in labels for g in resp.grades):
        raise InvalidMessage("grade response names an unknown grade")
    return {g.slot: g.grade for g in resp.grades}


class RelyingParty:
    """A bank, landlord or employer: asks for one subject's grade for a declared purpose.

    Holds its signing key and the grades it receives.  Gets a grade label, never a score.
    The subject's slot (and, under :class:`~psc.parties.consent_gate.TokenConsentVerifier`, a consent token) comes from the
    subject itself.
    """

    def __init__(
        self,
        party_id: str,
        params: ProtocolParameters,
        signing_key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
        randbytes: RandBytes = os.urandom,
    ) -> None:
        self.id = party_id
        self.params = params
        self._key = signing_key
        self._clock = clock
        self._randbytes = randbytes

    @property
    def public_key(self) -> bytes:
        return public_bytes(self._key)

    def request_grade(self, slot: int, purpose: str, period: int, consent: bytes = b"") -> bytes:
        """Relying party: a sealed :class:`GradeRequest` for one slot.

        ``consent`` is the subject's encoded consent token where the key holder requires
        one (:class:`~psc.parties.consent_gate.TokenConsentVerifier`).  Raises :class:`PolicyViolation` early for a purpose
        outside the scheme's.
        """
        if purpose not in self.params.catalog.scheme.purposes:
            raise PolicyViolation(
                f"purpose {purpose!r} is not one of {list(self.params.catalog.scheme.purposes)}"
            )
        msg = GradeRequest(
            requester=self.id,
            purpose=purpose,
            period=period,
            slots=(slot,),
            nonce=self._randbytes(NONCE_BYTES),
            consent=consent,
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def read_grade(self, sealed_request: bytes, sealed_response: bytes) -> str:
        """Relying party: the grade label from the key holder's response."""
        grades = read_grades(self.params, sealed_request, sealed_response)
        if len(grades) != 1:
            raise InvalidMessage("expected exactly one grade")
        return next(iter(grades.values()))
