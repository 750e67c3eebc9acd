"""The key holder's consent gate: certified consent keys, every refusal reason, the refusal log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from psc.catalog import Catalog
from psc.exceptions import ConsentRefused, InvalidMessage, PolicyViolation, UnknownParty
from psc.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.policy.clock import SimulatedClock
from psc.policy.consent import SqliteRefusalLog, issue_consent
from psc.protocol import codec
from psc.protocol.consent_gate import (
    ConsentKeyDirectory,
    CredentialRegistry,
    SubjectCredential,
    TokenConsentVerifier,
)
from psc.protocol.driver import Deployment, seeded_randbytes, setup
from psc.protocol.messages import GradeRequest, SignedMessage
from psc.protocol.roles import REGISTRY_ID
from psc.protocol.signing import new_signing_key, public_bytes, seal
from psc.simulation import agency_instances

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
NOW = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
N = 12
ALICE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def world(catalog: Catalog, keypair: Keypair) -> tuple[Deployment, CredentialRegistry]:
    clock = SimulatedClock(NOW)
    d = setup(
        catalog,
        agency_instances(catalog),
        N,
        keypair,
        clock=clock.now,
        randbytes=seeded_randbytes("consent-gate"),
        registry_cls=CredentialRegistry,
    )
    assert isinstance(d.registry, CredentialRegistry)
    return d, d.registry


def public_bytes_of(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def request(
    slots: tuple[int, ...], consent: bytes, *, requester: str = "example-bank"
) -> GradeRequest:
    return GradeRequest(requester, "credit-assessment", 0, slots, bytes(16), consent, 0)


def test_credentials_are_registry_signed_pseudonymous_and_rotate(
    city: Catalog, test_keypair: Keypair
) -> None:
    d, registry = world(city, test_keypair)
    directory = ConsentKeyDirectory(d.params)
    cred = directory.add(registry.certify_consent_key("resident-0000001", public_bytes(ALICE)))
    assert cred.slot == registry.slot_of("resident-0000001")
    assert cred.subject.startswith("subject-") and "resident" not in cred.subject
    pseudonym, key = directory.lookup(cred.slot)
    assert pseudonym == registry.pseudonym_of("resident-0000001")
    assert public_bytes_of(key) == public_bytes(ALICE)
    # rotation keeps the pseudonym and replaces the key; an older credential is ignored
    newer_key = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
    old = registry.certify_consent_key("resident-0000001", public_bytes(ALICE))
    later = dataclasses.replace(
        codec.decode(codec.decode(old, SignedMessage).body, SubjectCredential),
        consent_key=public_bytes(newer_key),
        issued_at=cred.issued_at + 60,
    )
    directory.add(seal(later, registry._key))
    directory.add(old)
    assert public_bytes_of(directory.lookup(cred.slot)[1]) == public_bytes(newer_key)
    assert directory.lookup(cred.slot)[0] == pseudonym and len(directory) == 1
    # forged, out of range, malformed, unknown
    with pytest.raises(InvalidMessage):
        directory.add(seal(later, new_signing_key()))
    with pytest.raises(InvalidMessage, match="slot"):
        directory.add(seal(dataclasses.replace(later, slot=N), registry._key))
    for wrong in ("resident-0000001", "subject-00", cred.subject + "0", cred.subject + "\n"):
        with pytest.raises(InvalidMessage, match="pseudonym"):
            codec.encode(dataclasses.replace(later, subject=wrong))
    with pytest.raises(UnknownParty):
        directory.lookup((cred.slot + 1) % N)
    with pytest.raises(UnknownParty):
        registry.certify_consent_key("nobody", public_bytes(ALICE))
    with pytest.raises(UnknownParty):
        registry.pseudonym_of("resident-0000002")
    with pytest.raises(ValueError, match="32-byte"):
        registry.certify_consent_key("resident-0000001", b"short")


def test_every_refusal_has_a_reason_and_is_logged(
    city: Catalog, company: Catalog, test_keypair: Keypair
) -> None:
    d, registry = world(city, test_keypair)
    directory = ConsentKeyDirectory(d.params)
    cred = directory.add(registry.certify_consent_key("resident-0000001", public_bytes(ALICE)))
    log = SqliteRefusalLog(sqlite3.connect(":memory:"))
    gate = TokenConsentVerifier(
        city,
        directory,
        clock=lambda: NOW,
        refusals=log,
        max_validity=dt.timedelta(days=90),
        withdrawn=lambda token_id: False,
    )

    def token(**kw: object) -> bytes:
        args: dict[str, object] = dict(
            subject=cred.subject,
            relying_party="example-bank",
            purpose="credit-assessment",
            domain=city.scheme.domain,
            catalog_hash=city.version_hash,
            issued_at=NOW - dt.timedelta(days=1),
            expires_at=NOW + dt.timedelta(days=30),
        )
        args.update(kw)
        return issue_consent(ALICE, **args).encode()  # type: ignore[arg-type]

    gate.check(request((cred.slot,), token()))  # a valid token passes
    other = (cred.slot + 1) % N
    cases: list[tuple[GradeRequest, str]] = [
        (request((cred.slot,), b""), "missing"),
        (request(tuple(sorted({cred.slot, other})), token()), "one-subject"),
        (request((other,), token()), "no-credential"),
        (request((cred.slot,), token(subject="subject-00")), "subject"),
        (request((cred.slot,), token(catalog_hash=company.version_hash)), "catalog"),
        (request((cred.slot,), token(expires_at=NOW + dt.timedelta(days=400))), "too-long"),
        (
            request(
                (cred.slot,),
                token(issued_at=NOW + dt.timedelta(days=1), expires_at=NOW + dt.timedelta(days=2)),
            ),
            "not-yet-valid",
        ),
    ]
    for req, reason in cases:
        with pytest.raises(ConsentRefused) as info:
            gate.check(req)
        assert info.value.reason == reason
    with pytest.raises(InvalidMessage):
        gate.check(request((cred.slot,), token()[:-3] + b'"}'))
    entries = log.entries()
    assert [e.reason for e in entries] == [c[1] for c in cases] + ["bad-token"]
    assert all(e.relying_party == "example-bank" and e.at == NOW for e in entries)
    # token ids are recorded only once a token authenticated
    ids = {e.reason: e.token_id for e in entries}
    assert ids["missing"] is None and ids["no-credential"] is None and ids["bad-token"] is None
    assert ids["subject"] is not None and ids["catalog"] is not None
    # the registry's requests for subjects' own grades need no token and may carry none
    gate.check(request((cred.slot, other), b"", requester=REGISTRY_ID))
    with pytest.raises(PolicyViolation):
        gate.check(request((cred.slot,), token(), requester=REGISTRY_ID))
    assert len(log.entries()) == len(entries)
