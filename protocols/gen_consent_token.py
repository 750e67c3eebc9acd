"""Write ``protocols/vectors/consent_token.json``: consent-token vectors, good and ``bad_*``.

Deterministic: the subject key is derived from a fixed seed and token ids are fixed, so
the file only changes when the token format or the built-in city catalog changes.
Spec: ``protocols/consent-token.md``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from psc.catalog import load_catalog, period_index, period_label
from psc.policy import consent_wire
from psc.policy.consent import _issue_from_parts

OUT = Path(__file__).parent / "vectors" / "consent_token.json"
SEED = bytes(range(32))
ISSUED = dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.UTC)
EXPIRES = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)
NOW = "2026-11-15T12:00:00+00:00"
PERIOD = period_index(ISSUED.date())  # the token's period by default: 2026-11


def main() -> None:
    """Regenerate the vector file."""
    cat = load_catalog("city")
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

    def token(n: int, **kw: Any) -> bytes:
        base: dict[str, Any] = {
            "subject": "subject-0017",
            "relying_party": "city-commercial-bank",
            "purpose": "credit-assessment",
            "domain": cat.scheme.domain,
            "catalog_hash": cat.version_hash,
            "issued_at": ISSUED,
            "expires_at": EXPIRES,
        }
        signer = kw.pop("key", key)
        return _issue_from_parts(signer, token_id=bytes([n]) * 16, **(base | kw)).encode()

    def resigned(p: dict[str, Any]) -> str:
        # a correctly signed payload the decoder must still refuse
        return consent_wire.encode_token(p, key.sign(consent_wire.signing_input(p))).decode()

    good = token(1)
    payload, sig = consent_wire.decode_token(good)
    cases: list[dict[str, Any]] = [
        {"name": "good", "token": good.decode(), "expect": "ok"},
        {
            "name": "good_subject_self_access",
            "token": token(2, purpose="subject-self-access", relying_party="subject-0017").decode(),
            "relying_party": "subject-0017",
            "purpose": "subject-self-access",
            "expect": "ok",
        },
        {
            "name": "bad_signature_other_key",
            "token": token(3, key=other).decode(),
            "expect": "invalid",
        },
        {
            "name": "bad_signature_tampered_purpose",
            "token": consent_wire.encode_token(
                payload | {"purpose": "tenancy-screening"}, sig
            ).decode(),
            "purpose": "tenancy-screening",
            "expect": "invalid",
        },
        {
            "name": "bad_non_canonical",
            "token": json.dumps({"signature": sig.hex(), "payload": payload}, indent=1),
            "expect": "invalid",
        },
        {
            "name": "bad_unknown_field",
            "token": consent_wire.encode_token(payload | {"extra": 1}, sig).decode(),
            "expect": "invalid",
        },
        {
            "name": "bad_version",
            "token": consent_wire.encode_token(payload | {"v": 1}, sig).decode(),
            "expect": "invalid",
        },
        {
            "name": "bad_short_signature",
            "token": good.decode().replace(sig.hex(), sig.hex()[:-2]),
            "expect": "invalid",
        },
        {
            "name": "bad_expired",
            "token": good.decode(),
            "now": "2026-12-01T00:00:00+00:00",
            "expect": "expired",
        },
        {
            "name": "bad_not_yet_valid",
            "token": good.decode(),
            "now": "2026-10-31T23:00:00+00:00",
            "expect": "not-yet-valid",
        },
        {
            "name": "bad_relying_party",
            "token": good.decode(),
            "relying_party": "landlord-9",
            "expect": "relying-party",
        },
        {
            "name": "bad_purpose_mismatch",
            "token": good.decode(),
            "purpose": "tenancy-screening",
            "expect": "purpose",
        },
        {
            "name": "bad_purpose_not_permitted",
            "token": token(4, purpose="school-admission").decode(),
            "purpose": "school-admission",
            "expect": "purpose-not-permitted",
        },
        {"name": "bad_domain", "token": token(5, domain="education").decode(), "expect": "domain"},
        {
            "name": "bad_period_other_than_the_token",
            "token": good.decode(),
            "period": "2026-10",
            "expect": "period",
        },
        {
            "name": "good_earlier_period",
            "token": token(7, period=PERIOD - 3).decode(),
            "period": "2026-08",
            "expect": "ok",
        },
        {
            "name": "bad_too_long_without_deployment_maximum",
            "token": token(8, expires_at=ISSUED + dt.timedelta(days=36500)).decode(),
            "expect": "too-long",
        },
        {
            "name": "bad_huge_integer",
            "token": good.decode().replace('"v":2', '"v":' + "9" * 5000),
            "expect": "invalid",
        },
        {
            "name": "bad_deeply_nested",
            "token": good.decode().replace('"v":2', '"v":' + "[" * 900 + "]" * 900),
            "expect": "invalid",
        },
        {
            "name": "bad_oversized",
            "token": good.decode().replace('"subject-0017"', '"subject-' + "7" * 3000 + '"'),
            "expect": "invalid",
        },
        {
            "name": "bad_timestamp_out_of_range",
            "token": resigned(payload | {"issued_at": 10**20}),
            "expect": "invalid",
        },
        {
            "name": "bad_negative_timestamp",
            "token": resigned(payload | {"issued_at": -5}),
            "expect": "invalid",
        },
        {
            "name": "bad_period_malformed",
            "token": resigned(payload | {"period": "2026-13"}),
            "expect": "invalid",
        },
        {
            "name": "bad_subject_trailing_newline",
            "token": resigned(payload | {"subject": "subject-0017\n"}),
            "expect": "invalid",
        },
        {
            "name": "bad_catalog_version",
            "token": token(6, catalog_hash="0" * 64).decode(),
            "expect": "catalog",
        },
    ]
    for c in cases:
        c.setdefault("relying_party", "city-commercial-bank")
        c.setdefault("purpose", "credit-assessment")
        c.setdefault("now", NOW)
        c.setdefault("period", period_label(PERIOD))
    doc = {
        "format": "psc-consent-token-vectors/2",
        "spec": "protocols/consent-token.md",
        "catalog": "builtin:city",
        "catalog_hash": cat.version_hash,
        "subject_private_seed": SEED.hex(),
        "subject_public_key": key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex(),
        "signing_context": consent_wire.SIGNING_CONTEXT.decode("ascii").replace("\x00", "\\0"),
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
