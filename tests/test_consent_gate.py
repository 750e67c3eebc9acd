"""The key holder's consent gate: certified consent keys, every refusal reason, the refusal log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from psc.catalog import Catalog, period_index
from psc.exceptions import ConsentRefused, InvalidMessage, PolicyViolation, UnknownParty
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.consent_gate import (
    ConsentKeyDirectory,
    CredentialRegistry,
    SubjectCredential,
    TokenConsentVerifier,
)
from psc.policy import consent_wire
from psc.policy.clock import SimulatedClock
from psc.policy.consent import SqliteRefusalLog, issue_consent
from psc.protocol import codec
from psc.protocol.messages import GradeRequest, SignedMessage
from psc.protocol.parameters import REGISTRY_ID
from psc.protocol.signing import new_signing_key, public_bytes, seal
from psc.sim.city import agency_instances
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import seeded_randbytes

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
NOW = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
CURRENT = period_index(NOW.date())
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
    return GradeRequest(requester, "credit-assessment", CURRENT, slots, bytes(16), consent, 0)


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


# -- consent as the deployment says (issue 16 items 3-5) ------------------------------------


def _gate(
    city: Catalog, test_keypair: Keypair, **kw: object
) -> tuple[TokenConsentVerifier, SqliteRefusalLog, SubjectCredential, CredentialRegistry]:
    d, registry = world(city, test_keypair)
    directory = ConsentKeyDirectory(d.params)
    cred = directory.add(registry.certify_consent_key("resident-0000001", public_bytes(ALICE)))
    log = SqliteRefusalLog(sqlite3.connect(":memory:"))
    gate = TokenConsentVerifier(city, directory, clock=lambda: NOW, refusals=log, **kw)  # type: ignore[arg-type]
    return gate, log, cred, registry


def _token(city: Catalog, subject: str, **kw: object) -> bytes:
    args: dict[str, object] = dict(
        subject=subject,
        relying_party="example-bank",
        purpose="credit-assessment",
        domain=city.scheme.domain,
        catalog_hash=city.version_hash,
        issued_at=NOW - dt.timedelta(days=1),
        expires_at=NOW + dt.timedelta(days=30),
    )
    args.update(kw)
    return issue_consent(ALICE, **args).encode()  # type: ignore[arg-type]


def test_a_century_token_is_refused_without_a_configured_maximum(
    city: Catalog, test_keypair: Keypair
) -> None:
    gate, log, cred, _ = _gate(city, test_keypair)
    century = _token(city, cred.subject, expires_at=NOW + dt.timedelta(days=36500))
    with pytest.raises(ConsentRefused) as info:
        gate.check(request((cred.slot,), century))
    assert info.value.reason == "too-long"
    assert [e.reason for e in log.entries()] == ["too-long"]


@pytest.mark.parametrize("days", [0, 1, 30, 365, 366, 36500])
def test_lint_and_gate_agree_on_token_life(city: Catalog, test_keypair: Keypair, days: int) -> None:
    from psc.policy.consent import token_life_limit
    from psc.policy.deployment import load_deployment
    from psc.policy.linter import lint

    demo = load_deployment("demo")
    dep = dataclasses.replace(demo, consent=dataclasses.replace(demo.consent, token_max_days=days))
    limit = token_life_limit(dep.consent.token_max_days)
    flagged = [
        f
        for f in lint(dep.catalog, dep, today=NOW.date()).findings
        if f.subject == "consent.token_max_days"
    ]
    # lint says something exactly when the gate will not honour the configured figure
    assert bool(flagged) == (limit != dt.timedelta(days=days))
    for f in flagged:
        assert f"{limit.days} days" in f.message
    gate, _, cred, _ = _gate(city, test_keypair, max_validity=limit)
    start = NOW - dt.timedelta(hours=1)
    gate.check(
        request((cred.slot,), _token(city, cred.subject, issued_at=start, expires_at=start + limit))
    )
    with pytest.raises(ConsentRefused, match="too-long"):
        gate.check(
            request(
                (cred.slot,),
                _token(
                    city,
                    cred.subject,
                    issued_at=start,
                    expires_at=start + limit + dt.timedelta(days=1),
                ),
            )
        )


def test_a_token_is_bound_to_one_evaluation_period(city: Catalog, test_keypair: Keypair) -> None:
    gate, log, cred, _ = _gate(city, test_keypair)
    tok = _token(city, cred.subject)  # the current period by default
    gate.check(request((cred.slot,), tok))
    for back in range(1, 8):  # a token issued today does not open seven past periods
        past = dataclasses.replace(request((cred.slot,), tok), period=CURRENT - back)
        with pytest.raises(ConsentRefused) as info:
            gate.check(past)
        assert info.value.reason == "period"
    assert {e.reason for e in log.entries()} == {"period"} and len(log.entries()) == 7
    earlier = _token(city, cred.subject, period=CURRENT - 2)
    gate.check(dataclasses.replace(request((cred.slot,), earlier), period=CURRENT - 2))


@pytest.mark.parametrize(
    "mangle",
    [
        "huge-integer",
        "nested-arrays",
        "nested-objects",
        "oversized",
        "timestamp-out-of-range",
        "negative-timestamp",
    ],
)
def test_every_malformed_token_is_refused_and_logged(
    city: Catalog, test_keypair: Keypair, mangle: str
) -> None:
    gate, log, cred, _ = _gate(city, test_keypair)
    good = _token(city, cred.subject)
    payload, _sig = consent_wire.decode_token(good)

    def resigned(**fields: object) -> str:
        p = payload | fields
        return consent_wire.encode_token(p, ALICE.sign(consent_wire.signing_input(p))).decode()

    text = good.decode()
    bad = {
        "huge-integer": re.sub(r'"v":\d+', '"v":' + "9" * 5000, text),
        "nested-arrays": re.sub(r'"v":\d+', '"v":' + "[" * 100_000 + "]" * 100_000, text),
        "nested-objects": re.sub(r'"v":\d+', '"v":' + '{"a":' * 5000 + "1" + "}" * 5000, text),
        "oversized": text.replace('"domain":"', '"domain":"' + "x" * 100_000),
        "timestamp-out-of-range": resigned(issued_at=10**20),
        "negative-timestamp": resigned(issued_at=-5),
    }[mangle]
    with pytest.raises(InvalidMessage):
        gate.check(request((cred.slot,), bad.encode()))
    assert [e.reason for e in log.entries()] == ["bad-token"]


@pytest.mark.parametrize(
    ("party", "purposes"),
    [
        ("registry", ["credit-assessment"]),
        ("example-bank", ["subject-self-access"]),
        ("example-bank", ["credit-assessment", "subject-self-access"]),
    ],
)
def test_reserved_identities_and_purposes_refused_at_registration(
    city: Catalog, test_keypair: Keypair, party: str, purposes: list[str]
) -> None:
    _, registry = world(city, test_keypair)
    with pytest.raises(PolicyViolation, match="reserved"):
        registry.register_relying_party(party, purposes, public_bytes(new_signing_key()))
