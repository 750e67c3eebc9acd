"""The consent gate of the reveal: relying parties' grade requests need a subject-signed token.

Normative: ``protocols/rights.md`` (consent gate) and ``protocols/consent-token.md`` (the token).

Where subjects' consent keys live
    A subject's client makes an Ed25519 *consent key*; the :class:`CredentialRegistry` (the
    registry, which already authenticates subjects and holds identity -> slot) certifies it
    with a signed :class:`SubjectCredential`: ``(slot, pseudonym, consent key)``.  The
    pseudonym is random (:data:`PSEUDONYM_BYTES` bytes from the registry's randomness seam),
    so neither the token nor the credential carries the identity: the key holder learns
    slot -> pseudonym -> key, nothing it did not already see as a slot.  The key holder keeps
    the credentials it was given in a :class:`ConsentKeyDirectory` and believes a key only
    because the registry signed it.

What the gate checks (:class:`TokenConsentVerifier`, run by the key holder in
:meth:`~psc.parties.key_holder.KeyHolder.answer` before anything is decrypted)
    A relying party's request names exactly one slot and carries, in ``consent``, a token
    the slot's certified subject signed for this relying party, this purpose, the scheme's
    domain and catalog version, valid now and not withdrawn
    (:func:`psc.policy.consent.verify_consent`); the token's subject is the credential's
    pseudonym.  The registry's requests for subjects' own grades carry no token.

Every refusal is logged
    Each refusal, whatever its cause (no token, no credential for the slot, a bad
    signature, an expired, mismatched or withdrawn token), is handed to the ``refusals``
    hook (a :class:`~psc.policy.consent.SqliteRefusalLog` on the key holder's own database
    in the reference setup) *before* the exception propagates, so a refused query always
    leaves a record.  What a refusal record holds: time, reason code, token id (when the
    token could be authenticated), relying party, purpose; never a slot or a grade.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc.catalog import Catalog
from psc.exceptions import ConsentRefused, InvalidMessage, PolicyViolation, UnknownParty
from psc.parties.key_holder import ConsentVerifier, NoConsentTokens
from psc.parties.registry import Registry
from psc.policy.consent import ConsentRefusal, RefusalHook, verify_consent
from psc.protocol.messages import KEY_BYTES, GradeRequest, Message
from psc.protocol.parameters import REGISTRY_ID, SELF_ACCESS_PURPOSE, ProtocolParameters
from psc.protocol.signing import open_signed, seal
from psc.seams import Clock, RandBytes, system_clock

#: Random bytes in a subject's pseudonym (``"subject-" + hex``).
PSEUDONYM_BYTES = 12

_PSEUDONYM = re.compile(rf"subject-[0-9a-f]{{{2 * PSEUDONYM_BYTES}}}")

#: identities and purposes no relying party may register under
RESERVED_PARTIES = frozenset({REGISTRY_ID})
RESERVED_PURPOSES = frozenset({SELF_ACCESS_PURPOSE})

#: Refusal reason codes of the gate itself (``verify_consent`` adds its own, e.g. ``expired``).
REASON_MISSING = "missing"
REASON_ONE_SUBJECT = "one-subject"
REASON_NO_CREDENTIAL = "no-credential"
REASON_SUBJECT = "subject"


@dataclass(frozen=True)
class SubjectCredential(Message):
    """Registry -> key holder: the consent key of the subject in one slot (signed).

    The only link between a slot and a consent-token pseudonym; it names no identity.
    """

    TYPE: ClassVar[str] = "subject-credential"

    slot: int  # the subject's pseudonymous slot
    subject: str  # the pseudonym consent tokens name in their ``subject`` field
    consent_key: bytes  # the subject's Ed25519 consent public key (raw 32 bytes)
    issued_at: int  # when the registry certified it; a later credential replaces an earlier one

    def check(self) -> None:
        if self.slot < 0:
            raise InvalidMessage("slot must be non-negative")
        if not _PSEUDONYM.fullmatch(self.subject):
            raise InvalidMessage("subject is not a registry pseudonym")
        if len(self.consent_key) != KEY_BYTES:
            raise InvalidMessage(f"consent_key must be {KEY_BYTES} bytes")
        if self.issued_at < 0:
            raise InvalidMessage("issued_at must be non-negative")


class CredentialRegistry(Registry):
    """The registry, also certifying subjects' consent keys (see the module docstring).

    Run by the scheme operator.  Holds, besides what :class:`Registry` holds, identity ->
    (pseudonym, consent key).  Leaks to the key holder: slot -> pseudonym -> key.
    """

    def __init__(
        self,
        catalog: Catalog,
        signing_key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
        randbytes: RandBytes = os.urandom,
    ) -> None:
        super().__init__(catalog, signing_key, clock=clock, randbytes=randbytes)
        self._pseudonyms: dict[str, str] = {}

    def register_relying_party(
        self, party: str, purposes: Sequence[str], public_key: bytes
    ) -> bytes:
        """Registry, at setup: admit a relying party (see :meth:`Registry.register_relying_party`).

        Also raises :class:`PolicyViolation` for a reserved identity (the registry's own,
        under which subjects' self-access requests travel without a token) or a reserved
        purpose (``subject-self-access``, only the registry's): a relying party holding
        either could pass for the subject.
        """
        if party.strip().lower() in RESERVED_PARTIES:
            raise PolicyViolation(
                f"{party!r} is a reserved identity; register the relying party under its own name"
            )
        reserved = [p for p in purposes if p in RESERVED_PURPOSES]
        if reserved:
            raise PolicyViolation(
                f"purposes {reserved} are reserved for subjects' own access; a relying party "
                "declares the purposes it asks for grades for"
            )
        return super().register_relying_party(party, purposes, public_key)

    def pseudonym_of(self, identity: str) -> str:
        """The consent pseudonym of a certified identity; raises :class:`UnknownParty`."""
        try:
            return self._pseudonyms[identity]
        except KeyError:
            raise UnknownParty(f"{identity!r} has no certified consent key") from None

    def certify_consent_key(self, identity: str, consent_key: bytes) -> bytes:
        """Registry, for an authenticated subject: a sealed :class:`SubjectCredential`.

        Pre-condition: the registry authenticated the subject (out of band) and the
        subject's client made the key.  The pseudonym is drawn once per identity and kept
        across key rotations (tokens the subject signed with an older key stop verifying;
        that is the point of rotating).  Raises :class:`UnknownParty` for an identity that
        is not enrolled, ``ValueError`` for a key that is not 32 bytes.
        """
        slot = self.slot_of(identity)
        if len(consent_key) != KEY_BYTES:
            raise ValueError(f"a consent key is a raw {KEY_BYTES}-byte Ed25519 public key")
        Ed25519PublicKey.from_public_bytes(consent_key)
        pseudonym = self._pseudonyms.get(identity)
        if pseudonym is None:
            pseudonym = "subject-" + self._randbytes(PSEUDONYM_BYTES).hex()
            self._pseudonyms[identity] = pseudonym
        msg = SubjectCredential(
            slot=slot,
            subject=pseudonym,
            consent_key=consent_key,
            issued_at=int(self._clock().timestamp()),
        )
        return seal(msg, self._key)


class ConsentKeyDirectory:
    """The key holder's directory of registry-certified consent keys, by slot.

    Holds public data only (pseudonyms and public keys).
    """

    def __init__(self, params: ProtocolParameters) -> None:
        self.params = params
        self._by_slot: dict[int, SubjectCredential] = {}

    def __len__(self) -> int:
        return len(self._by_slot)

    def add(self, sealed: bytes) -> SubjectCredential:
        """Key holder, at setup or when a subject rotates its key: learn a credential.

        Verifies the registry's signature and the slot range before storing.  A credential
        older than the one held is ignored (the held one is returned).  Raises
        :class:`InvalidMessage`.
        """
        cred = open_signed(sealed, SubjectCredential, lambda m: self.params.registry_key)
        if cred.slot >= self.params.n_subjects:
            raise InvalidMessage("credential names a slot that does not exist")
        held = self._by_slot.get(cred.slot)
        if held is not None and held.issued_at > cred.issued_at:
            return held
        self._by_slot[cred.slot] = cred
        return cred

    def lookup(self, slot: int) -> tuple[str, Ed25519PublicKey]:
        """The pseudonym and consent key certified for ``slot``; :class:`UnknownParty` if none."""
        cred = self._by_slot.get(slot)
        if cred is None:
            raise UnknownParty(f"no consent key is certified for slot {slot}")
        return cred.subject, Ed25519PublicKey.from_public_bytes(cred.consent_key)


class TokenConsentVerifier(ConsentVerifier):
    """The reveal gate with consent tokens and a refusal log (see the module docstring).

    ``withdrawn(token_id)`` says whether the subject withdrew a token (e.g.
    :meth:`psc.policy.rights.RightsDesk.is_withdrawn`, as published by the rights office);
    ``refusals`` receives every refusal; ``max_validity`` is the deployment's longest token
    life, :func:`psc.policy.consent.token_life_limit` of ``consent.token_max_days`` (a year
    when not given).  A token opens the grade of the one period it names: the request's
    period must be the token's.  ``clock`` is the key holder's.

    :meth:`check` raises :class:`~psc.exceptions.InvalidMessage` for a token that does not
    verify (one opaque error) and :class:`~psc.exceptions.ConsentRefused` (a
    :class:`~psc.exceptions.PolicyViolation`) with a stable ``reason`` otherwise.
    """

    def __init__(
        self,
        catalog: Catalog,
        directory: ConsentKeyDirectory,
        *,
        clock: Clock = system_clock,
        withdrawn: Callable[[str], bool] | None = None,
        refusals: RefusalHook | None = None,
        max_validity: dt.timedelta | None = None,
    ) -> None:
        self.catalog = catalog
        self.directory = directory
        self._clock = clock
        self._withdrawn = withdrawn
        self._refusals = refusals
        self._max_validity = max_validity

    def _refuse(
        self,
        request: GradeRequest,
        now: dt.datetime,
        reason: str,
        detail: str,
        token_id: str | None = None,
    ) -> ConsentRefused:
        if self._refusals is not None:
            self._refusals(
                ConsentRefusal(now, reason, token_id, request.requester, request.purpose, detail)
            )
        return ConsentRefused(reason, f"consent refused ({reason}): {detail}")

    def check(self, request: GradeRequest) -> None:
        """Key holder, before decrypting: may ``request`` be answered?  (See the class doc.)"""
        if request.requester == REGISTRY_ID:
            NoConsentTokens().check(request)
            return
        now = self._clock()
        if len(request.slots) != 1:
            raise self._refuse(
                request,
                now,
                REASON_ONE_SUBJECT,
                "a relying party asks for one subject's grade at a time, with that subject's token",
            )
        if not request.consent:
            raise self._refuse(
                request,
                now,
                REASON_MISSING,
                "the request carries no consent token; ask the subject for one",
            )
        try:
            subject, key = self.directory.lookup(request.slots[0])
        except UnknownParty:
            raise self._refuse(
                request,
                now,
                REASON_NO_CREDENTIAL,
                "no consent key is certified for the requested subject; the subject must "
                "register one with the registry",
            ) from None
        token = verify_consent(
            request.consent,
            key,
            request.requester,
            request.purpose,
            self.catalog,
            now,
            withdrawn=self._withdrawn,
            on_refusal=self._refusals,
            max_validity=self._max_validity,
            period=request.period,
        )
        if token.subject != subject:
            raise self._refuse(
                request,
                now,
                REASON_SUBJECT,
                "the token names another subject than the one certified for this slot",
                token.token_id,
            )


__all__ = [
    "PSEUDONYM_BYTES",
    "REASON_MISSING",
    "REASON_NO_CREDENTIAL",
    "REASON_ONE_SUBJECT",
    "REASON_SUBJECT",
    "RESERVED_PARTIES",
    "RESERVED_PURPOSES",
    "ConsentKeyDirectory",
    "CredentialRegistry",
    "SubjectCredential",
    "TokenConsentVerifier",
]
