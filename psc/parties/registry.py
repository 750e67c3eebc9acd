"""The registry (scheme operator): identities -> slots, agency registrations, requests for subjects.

Normative: ``protocols/setup.md``.  Holds the identity -> slot mapping, its signing key and
the registrations it signed.  Never: records, ciphertexts, anyone else's keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog
from psc.exceptions import (
    CatalogMismatch,
    InvalidMessage,
    ParameterError,
    PolicyViolation,
    UnknownParty,
)
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPublicKey
from psc.protocol import codec
from psc.protocol.messages import (
    NONCE_BYTES,
    AccessRequest,
    AgencyRegistration,
    GradeRequest,
    RelyingPartyRegistration,
)
from psc.protocol.parameters import (
    REGISTRY_ID,
    SELF_ACCESS_PURPOSE,
    ProtocolParameters,
    protocol_layout,
)
from psc.protocol.service_messages import AccessAsk, GradeAsk
from psc.protocol.signing import open_signed, public_bytes, seal
from psc.seams import Clock, RandBytes, _randbelow, _seconds, system_clock

__all__ = [
    "Registry",
    "open_agency_registration",
]


class Registry:
    """The scheme operator at setup, and the pseudonymisation service afterwards.

    Holds the identity -> slot mapping (never given to the aggregator or key holder), signs
    the public parameters and every registration, and signs requests made on behalf of
    subjects it has authenticated.  It tells an agency the slots of the identities the
    agency already holds records about (so the agency can address them) and nothing else.
    """

    def __init__(
        self,
        catalog: Catalog,
        signing_key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
        randbytes: RandBytes = os.urandom,
    ) -> None:
        self.catalog = catalog
        self._key = signing_key
        self._clock = clock
        self._randbytes = randbytes
        self._slots: dict[str, int] = {}
        self._instances: dict[str, list[str]] = {}
        self.id = REGISTRY_ID

    @property
    def public_key(self) -> bytes:
        return public_bytes(self._key)

    @property
    def n_subjects(self) -> int:
        return len(self._slots)

    def enroll(self, identities: Sequence[str]) -> dict[str, int]:
        """Registry, at setup: give every identity a pseudonymous slot (a random permutation).

        Pre-condition: called once.  Leaks nothing: slots are uniformly permuted, so a slot
        says nothing about enrolment order.  Raises ``ValueError`` on repeats or a second call.
        """
        if self._slots:
            raise ValueError("subjects are already enrolled; enrol once, at setup")
        if len(set(identities)) != len(identities) or not identities:
            raise ValueError("enrol a non-empty list of distinct identities")
        order = list(range(len(identities)))
        for i in range(len(order) - 1, 0, -1):  # Fisher-Yates from the randomness seam
            j = _randbelow(self._randbytes, i + 1)
            order[i], order[j] = order[j], order[i]
        self._slots = {ident: order[k] for k, ident in enumerate(identities)}
        return dict(self._slots)

    @classmethod
    def restore(
        cls,
        catalog: Catalog,
        signing_key: Ed25519PrivateKey,
        slots: dict[str, int],
        *,
        clock: Clock = system_clock,
        randbytes: RandBytes = os.urandom,
    ) -> Registry:
        """Registry, after a restart: its enrolment (identity -> slot) read back from its
        private file.  Raises ``ValueError`` unless the slots are a permutation of
        ``0 .. len(slots) - 1``."""
        if sorted(slots.values()) != list(range(len(slots))):
            raise ValueError("the enrolment is not a permutation of the slots; run setup again")
        reg = cls(catalog, signing_key, clock=clock, randbytes=randbytes)
        reg._slots = dict(slots)
        return reg

    def slot_of(self, identity: str) -> int:
        """The slot of an enrolled identity.  Raises :class:`UnknownParty` if not enrolled."""
        try:
            return self._slots[identity]
        except KeyError:
            raise UnknownParty(f"{identity!r} is not enrolled with the registry") from None

    def publish(
        self,
        public_key: PaillierPublicKey,
        *,
        multiplicity: int,
        aggregator_key: bytes,
        key_holder_key: bytes,
        allow_insecure_key: bool = False,
        layout: SlotLayout | None = None,
    ) -> tuple[ProtocolParameters, bytes]:
        """Registry, at setup: fix and sign the public parameters.

        Pre-condition: subjects enrolled; the key holder's Paillier key and the aggregator's
        and key holder's Ed25519 keys exist.  ``layout`` may widen the slots beyond
        :func:`protocol_layout` (the committee's DP reveal needs headroom for noise and
        masks: :func:`psc.parties.committee.reveal_layout`); narrower is refused with
        :class:`ParameterError`.  Leaks: the subject count (public anyway).
        """
        if not self._slots:
            raise ValueError("enrol subjects before publishing parameters")
        base = protocol_layout(self.catalog, public_key.bits, multiplicity=multiplicity)
        if layout is not None and (
            layout.slot_bits < base.slot_bits
            or layout != SlotLayout.for_key(public_key.bits, layout.slot_bits)
        ):
            raise ParameterError(f"layout {layout} is narrower than the catalog needs ({base})")
        params = ProtocolParameters(
            self.catalog,
            public_key,
            base if layout is None else layout,
            self.n_subjects,
            multiplicity,
            self.public_key,
            aggregator_key,
            key_holder_key,
            _seconds(self._clock),
            allow_insecure_key,
        )
        return params, seal(params.to_message(), self._key)

    def register_agency(
        self, agency: str, catalog_agency: str, public_key: bytes, *, multiplicity: int
    ) -> bytes:
        """Registry, at setup: admit an agency instance acting as ``catalog_agency``.

        Raises ``ValueError`` if the catalog has no such agency, or
        :class:`ParameterError` if it would exceed ``multiplicity`` instances (the slot
        width was sized for at most that many).
        """
        if catalog_agency not in self.catalog.agencies:
            raise ValueError(
                f"{catalog_agency!r} is not an agency of catalog {self.catalog.scheme.name!r} "
                f"(have {', '.join(self.catalog.agencies)})"
            )
        inst = self._instances.setdefault(catalog_agency, [])
        if agency not in inst and len(inst) >= multiplicity:
            raise ParameterError(
                f"{catalog_agency!r} already has {multiplicity} instances; the slot layout was "
                "sized for that many, so publish parameters with a larger multiplicity"
            )
        if agency not in inst:
            inst.append(agency)
        msg = AgencyRegistration(
            agency=agency,
            catalog_agency=catalog_agency,
            public_key=public_key,
            catalog_version=bytes.fromhex(self.catalog.version_hash),
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def register_relying_party(
        self, party: str, purposes: Sequence[str], public_key: bytes
    ) -> bytes:
        """Registry, at setup: admit a relying party for declared purposes.

        Raises :class:`PolicyViolation` if a purpose is not one of the scheme's purposes.
        """
        bad = [p for p in purposes if p not in self.catalog.scheme.purposes]
        if bad or not purposes:
            raise PolicyViolation(
                f"purposes {bad or list(purposes)} are not among the scheme's purposes "
                f"{list(self.catalog.scheme.purposes)}"
            )
        msg = RelyingPartyRegistration(
            party=party,
            purposes=tuple(purposes),
            public_key=public_key,
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def grade_request(self, slots: Iterable[int], period: int) -> bytes:
        """Registry, for authenticated subjects: each subject asks for its own grade.

        Pre-condition: the registry authenticated every subject whose slot is listed (in
        the demo, every subject asks at once; requests falling in one packed block are
        answered together).  Leaks to the aggregator and key holder: which slots asked.
        """
        msg = GradeRequest(
            requester=self.id,
            purpose=SELF_ACCESS_PURPOSE,
            period=period,
            slots=tuple(sorted(set(slots))),
            nonce=self._randbytes(NONCE_BYTES),
            consent=b"",
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def access_request(self, identity: str, first_period: int, last_period: int) -> bytes:
        """Registry, for an authenticated subject: ask agencies for the subject's events.

        Leaks to each agency: that this slot asked (agencies know their subjects anyway).
        """
        msg = AccessRequest(
            requester=self.id,
            subject=self.slot_of(identity),
            first_period=first_period,
            last_period=last_period,
            nonce=self._randbytes(NONCE_BYTES),
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def answer_grade_ask(self, data: bytes) -> bytes:
        """Registry, for residents authenticated by the channel: a :class:`GradeAsk` in, the
        sealed :class:`GradeRequest` for their slots out (:meth:`grade_request`).

        Raises :class:`InvalidMessage` for a malformed ask and :class:`UnknownParty` naming
        the first identity that is not enrolled; nothing is signed then.
        """
        ask = codec.decode(data, GradeAsk)
        return self.grade_request([self.slot_of(i) for i in ask.identities], ask.period)

    def answer_access_ask(self, data: bytes) -> bytes:
        """Registry, for a resident authenticated by the channel: an :class:`AccessAsk`
        in, the sealed :class:`AccessRequest` for its slot out (:meth:`access_request`).
        Raises :class:`InvalidMessage` or :class:`UnknownParty`."""
        ask = codec.decode(data, AccessAsk)
        return self.access_request(ask.identity, ask.first_period, ask.last_period)


def open_agency_registration(sealed: bytes, params: ProtocolParameters) -> AgencyRegistration:
    """Any party: verify a registry-signed agency registration for this catalog.

    Raises :class:`InvalidMessage` (signature, shape) or :class:`CatalogMismatch`.
    """
    reg = open_signed(sealed, AgencyRegistration, lambda m: params.registry_key)
    if reg.catalog_version != params.catalog_version:
        raise CatalogMismatch("the registration is for another catalog version")
    if reg.catalog_agency not in params.catalog.agencies:
        raise InvalidMessage("registration names an agency the catalog does not have")
    return reg
