"""Consent tokens: vectors, refusals with clear reasons, logging, withdrawal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc.catalog import load_catalog, parse_period
from psc.exceptions import ConsentRefused, InvalidMessage
from psc.policy import consent_wire
from psc.policy.consent import (
    ConsentRefusal,
    ConsentToken,
    SqliteRefusalLog,
    _issue_from_parts,
    issue_consent,
    verify_consent,
)

CITY = load_catalog("city")
VECTORS = json.loads(
    (Path(__file__).parent.parent / "protocols" / "vectors" / "consent_token.json").read_text(
        "utf-8"
    )
)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(32))
PUB = KEY.public_key()


def make(**kw: Any) -> ConsentToken:
    base: dict[str, Any] = {
        "subject": "S-1",
        "relying_party": "bank-1",
        "purpose": "credit-assessment",
        "domain": "public-credit",
        "catalog_hash": CITY.version_hash,
        "issued_at": T0,
        "expires_at": T0 + dt.timedelta(days=30),
    }
    return _issue_from_parts(KEY, token_id=b"\x07" * 16, **(base | kw))


def test_vectors_match_the_current_catalog() -> None:
    assert VECTORS["catalog_hash"] == CITY.version_hash, "catalog changed: run `make vectors`"


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_vectors(case: dict[str, Any]) -> None:
    pub = Ed25519PublicKey.from_public_bytes(bytes.fromhex(VECTORS["subject_public_key"]))
    now = dt.datetime.fromisoformat(case["now"])
    args = (case["token"].encode(), pub, case["relying_party"], case["purpose"], CITY, now)
    period = parse_period(case["period"])
    log: list[ConsentRefusal] = []
    if case["expect"] == "ok":
        tok = verify_consent(*args, period=period, on_refusal=log.append)
        assert tok.encode() == case["token"].encode() and log == []
        return
    assert case["name"].startswith("bad_")
    if case["expect"] == "invalid":
        with pytest.raises(InvalidMessage):
            verify_consent(*args, period=period, on_refusal=log.append)
        assert [r.reason for r in log] == ["bad-token"]  # refused and logged, never raised
    else:
        with pytest.raises(ConsentRefused) as exc:
            verify_consent(*args, period=period, on_refusal=log.append)
        assert exc.value.reason == case["expect"]
        assert [r.reason for r in log] == [case["expect"]]


def test_private_seed_reproduces_public_key() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    k = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTORS["subject_private_seed"]))
    assert (
        k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        == VECTORS["subject_public_key"]
    )


def test_round_trip_and_random_token_ids() -> None:
    a = issue_consent(
        KEY,
        subject="S-1",
        relying_party="bank-1",
        purpose="credit-assessment",
        domain="public-credit",
        catalog_hash=CITY.version_hash,
        issued_at=T0,
        expires_at=T0 + dt.timedelta(days=1),
    )
    b = issue_consent(
        KEY,
        subject="S-1",
        relying_party="bank-1",
        purpose="credit-assessment",
        domain="public-credit",
        catalog_hash=CITY.version_hash,
        issued_at=T0,
        expires_at=T0 + dt.timedelta(days=1),
    )
    assert a.token_id != b.token_id
    assert ConsentToken.decode(a.encode()) == a
    assert verify_consent(a, PUB, "bank-1", "credit-assessment", CITY, T0) == a


@pytest.mark.parametrize(
    ("token_kw", "call_kw", "reason", "words"),
    [
        ({}, {"now": T0 + dt.timedelta(days=30)}, "expired", "expired at 2026-12-01"),
        ({}, {"now": T0 - dt.timedelta(hours=1)}, "not-yet-valid", "in the future"),
        ({}, {"relying_party": "landlord-2"}, "relying-party", "'bank-1', not 'landlord-2'"),
        (
            {},
            {"purpose": "tenancy-screening"},
            "purpose",
            "allows 'credit-assessment', not 'tenancy-screening'",
        ),
        (
            {"purpose": "school-admission"},
            {"purpose": "school-admission"},
            "purpose-not-permitted",
            "not a purpose of scheme",
        ),
        ({"domain": "education"}, {}, "domain", "only for 'public-credit'"),
        ({"catalog_hash": "a" * 64}, {}, "catalog", "consent again"),
        (
            {"expires_at": T0 + dt.timedelta(days=400)},
            {"max_validity": dt.timedelta(days=90)},
            "too-long",
            "90 days",
        ),
    ],
)
def test_refusals(
    token_kw: dict[str, Any], call_kw: dict[str, Any], reason: str, words: str
) -> None:
    log: list[ConsentRefusal] = []
    tok = make(**token_kw)
    kw: dict[str, Any] = {
        "relying_party": "bank-1",
        "purpose": "credit-assessment",
        "now": T0 + dt.timedelta(days=1),
    } | call_kw
    max_validity = kw.pop("max_validity", None)
    with pytest.raises(ConsentRefused) as exc:
        verify_consent(
            tok.encode(),
            PUB,
            kw["relying_party"],
            kw["purpose"],
            CITY,
            kw["now"],
            on_refusal=log.append,
            max_validity=max_validity,
        )
    assert exc.value.reason == reason and words in str(exc.value)
    (entry,) = log
    assert (
        entry.reason == reason
        and entry.token_id == tok.token_id
        and entry.relying_party == kw["relying_party"]
    )


def test_bad_signature_is_opaque_and_logged() -> None:
    log: list[ConsentRefusal] = []
    tok = dataclasses.replace(make(), purpose="tenancy-screening")  # altered after signing
    with pytest.raises(InvalidMessage, match="does not verify"):
        verify_consent(tok, PUB, "bank-1", "tenancy-screening", CITY, T0, on_refusal=log.append)
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(InvalidMessage):
        verify_consent(
            make().encode(), other, "bank-1", "credit-assessment", CITY, T0, on_refusal=log.append
        )
    assert [e.reason for e in log] == ["bad-token", "bad-token"] and log[0].token_id is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"payload":{},"signature":""}',
        b'{"payload":1,"signature":"00"}',
        b"\xff\xfe",
    ],
)
def test_malformed_wire_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidMessage):
        ConsentToken.decode(data)


def test_wire_rejects_wrong_types_and_floats() -> None:
    tok = make()
    p = tok.payload()
    with pytest.raises(InvalidMessage, match="wrong type"):
        consent_wire.decode_token(consent_wire.encode_token(p | {"issued_at": True}, tok.signature))
    with pytest.raises(InvalidMessage, match="malformed"):
        consent_wire.decode_token(consent_wire.encode_token(p | {"token_id": "xyz"}, tok.signature))
    with pytest.raises(ValueError, match="float"):
        consent_wire.canonical_json({"a": 1.5})
    float_token = json.dumps(
        {"payload": p | {"issued_at": 1.0}, "signature": tok.signature.hex()},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    with pytest.raises(InvalidMessage):
        consent_wire.decode_token(float_token)


def test_issue_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="after issued_at"):
        make(expires_at=T0)
    with pytest.raises(ValueError, match="catalog_hash"):
        make(catalog_hash="nothex")
    with pytest.raises(ValueError, match="aware"):
        make(issued_at=dt.datetime(2026, 1, 1), expires_at=dt.datetime(2026, 2, 1))


def test_sqlite_refusal_log_and_withdrawal() -> None:
    conn = sqlite3.connect(":memory:")
    log = SqliteRefusalLog(conn)
    withdrawn = {make().token_id}
    with pytest.raises(ConsentRefused, match="withdrew"):
        verify_consent(
            make().encode(),
            PUB,
            "bank-1",
            "credit-assessment",
            CITY,
            T0,
            withdrawn=withdrawn.__contains__,
            on_refusal=log,
        )
    (entry,) = log.entries()
    assert entry.reason == "withdrawn" and entry.purpose == "credit-assessment" and entry.at == T0
