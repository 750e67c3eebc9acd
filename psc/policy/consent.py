"""Relying-party consent tokens (PIPL Art. 14-16, 23; P6): issue, verify, withdraw, log.

A subject authorises one relying party to obtain their grade for one purpose, in one
domain, under one catalog version, until an expiry, by signing a token with their Ed25519
key.  Before a grade is revealed, :func:`verify_consent` checks, in this order:

1. the encoding (``consent_wire``) and the Ed25519 signature under the subject's public
   key: any failure raises :class:`~psc.exceptions.InvalidMessage` and nothing else is
   looked at (unauthenticated fields are never acted on);
2. withdrawal (the token id), validity window (``issued_at <= now < expires_at``, and a
   life of at most :func:`token_life_limit` of the deployment's ``consent.token_max_days``,
   365 days when none is given), relying party, purpose (the one requested, and one of the
   scheme's purposes), domain (the scheme's), catalog version hash (a changed catalog
   needs new consent) and evaluation period (a token opens one period's grade, so a token
   issued today cannot show when a record appeared in past periods): any mismatch raises
   :class:`~psc.exceptions.ConsentRefused` with a stable ``reason`` code.

Every refusal, including bad signatures, is reported to ``on_refusal`` (e.g. a
:class:`SqliteRefusalLog`) before the exception propagates.  What leaks: a token reveals
to its holder the subject id, party, purpose and domain it names, nothing about the score.
The token id is the only randomness; it comes from ``os.urandom`` at the public entry and
is an explicit argument of the private seam ``_issue_from_parts`` for test vectors.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc.catalog import Catalog, period_index, period_label
from psc.exceptions import ConsentRefused, InvalidMessage
from psc.policy import consent_wire

#: tolerated clock skew for ``issued_at`` in the future
CLOCK_SKEW = dt.timedelta(minutes=5)
#: the longest token life any deployment may set (consent renewed at least yearly)
MAX_TOKEN_DAYS = 365


def token_life_limit(token_max_days: int) -> dt.timedelta:
    """The longest token life the gate accepts under ``consent.token_max_days``.

    The configured days when ``0 < days <= MAX_TOKEN_DAYS``; otherwise (unset, zero,
    negative, or longer than a year) :data:`MAX_TOKEN_DAYS`.  The one place the limit is
    computed: the reveal gate enforces it and ``psc lint`` (check ``P6.consent``) reports
    every deployment whose configured figure differs from it.
    """
    days = token_max_days if 0 < token_max_days <= MAX_TOKEN_DAYS else MAX_TOKEN_DAYS
    return dt.timedelta(days=days)


@dataclass(frozen=True)
class ConsentToken:
    """A decoded consent token (fields as in ``protocols/consent-token.md``)."""

    token_id: str
    subject: str
    relying_party: str
    purpose: str
    domain: str
    catalog_hash: str
    issued_at: int  # Unix seconds, UTC
    expires_at: int  # Unix seconds, UTC
    period: str  # YYYY-MM: the one evaluation period whose grade the token opens
    signature: bytes

    def payload(self) -> dict[str, Any]:
        """The signed payload as a dict."""
        return {
            "v": consent_wire.VERSION,
            "token_id": self.token_id,
            "subject": self.subject,
            "relying_party": self.relying_party,
            "purpose": self.purpose,
            "domain": self.domain,
            "catalog_hash": self.catalog_hash,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "period": self.period,
        }

    def encode(self) -> bytes:
        """Wire bytes (canonical JSON)."""
        return consent_wire.encode_token(self.payload(), self.signature)

    @classmethod
    def decode(cls, data: bytes) -> ConsentToken:
        """Parse wire bytes; raises ``InvalidMessage`` (does not verify the signature)."""
        p, sig = consent_wire.decode_token(data)
        return cls(
            token_id=p["token_id"],
            subject=p["subject"],
            relying_party=p["relying_party"],
            purpose=p["purpose"],
            domain=p["domain"],
            catalog_hash=p["catalog_hash"],
            issued_at=p["issued_at"],
            expires_at=p["expires_at"],
            period=p["period"],
            signature=sig,
        )


@dataclass(frozen=True)
class ConsentRefusal:
    """A logged refusal: when, why, which token (if it could be read) and who asked."""

    at: dt.datetime
    reason: str
    token_id: str | None
    relying_party: str
    purpose: str
    detail: str


def _ts(t: dt.datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("consent times must be timezone-aware datetimes")
    return int(t.timestamp())


def issue_consent(
    subject_key: Ed25519PrivateKey,
    *,
    subject: str,
    relying_party: str,
    purpose: str,
    domain: str,
    catalog_hash: str,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
    period: int | None = None,
) -> ConsentToken:
    """The subject signs a token for one party, purpose, domain, catalog version and period.

    ``period`` (a period index) is the evaluation period whose grade the token opens; by
    default the one ``issued_at`` falls in (UTC).  Raises ``ValueError`` if ``expires_at``
    is not after ``issued_at`` or a field is malformed.  The token id is 16 fresh random
    bytes.
    """
    return _issue_from_parts(
        subject_key,
        token_id=os.urandom(16),
        subject=subject,
        relying_party=relying_party,
        purpose=purpose,
        domain=domain,
        catalog_hash=catalog_hash,
        issued_at=issued_at,
        expires_at=expires_at,
        period=period,
    )


def _issue_from_parts(
    subject_key: Ed25519PrivateKey,
    *,
    token_id: bytes,
    subject: str,
    relying_party: str,
    purpose: str,
    domain: str,
    catalog_hash: str,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
    period: int | None = None,
) -> ConsentToken:
    if len(token_id) != 16:
        raise ValueError("token_id must be 16 bytes")
    if expires_at <= issued_at:
        raise ValueError("expires_at must be after issued_at")
    unsigned = ConsentToken(
        token_id.hex(),
        subject,
        relying_party,
        purpose,
        domain,
        catalog_hash,
        _ts(issued_at),
        _ts(expires_at),
        period_label(
            period_index(issued_at.astimezone(dt.UTC).date()) if period is None else period
        ),
        b"",
    )
    payload = unsigned.payload()
    # validate shapes with the decoder's own rules before signing
    try:
        consent_wire.decode_token(consent_wire.encode_token(payload, bytes(64)))
    except InvalidMessage as exc:
        raise ValueError(f"cannot issue consent token: {exc}") from exc
    sig = subject_key.sign(consent_wire.signing_input(payload))
    return ConsentToken(**{**unsigned.__dict__, "signature": sig})


RefusalHook = Callable[[ConsentRefusal], None]


def verify_consent(
    token: bytes | ConsentToken,
    subject_public_key: Ed25519PublicKey,
    relying_party: str,
    purpose: str,
    catalog: Catalog,
    now: dt.datetime,
    *,
    withdrawn: Callable[[str], bool] | None = None,
    on_refusal: RefusalHook | None = None,
    max_validity: dt.timedelta | None = None,
    period: int | None = None,
) -> ConsentToken:
    """Check that ``token`` lets ``relying_party`` obtain a grade for ``purpose`` now.

    Run by the reveal gate before any decryption.  ``max_validity`` defaults to
    :func:`token_life_limit` ``(0)`` (a year); ``period``, the evaluation period asked for,
    must be the token's when given (the gate always gives it).  Returns the verified
    token.  Raises ``InvalidMessage`` (malformed or badly signed) or ``ConsentRefused``
    with ``reason`` one of ``withdrawn``, ``not-yet-valid``, ``expired``, ``too-long``,
    ``relying-party``, ``purpose``, ``purpose-not-permitted``, ``domain``, ``catalog``,
    ``period``.  Every refusal is passed to ``on_refusal`` first.
    """
    at = now
    tid: str | None = None

    def refuse(reason: str, detail: str) -> ConsentRefused:
        if on_refusal is not None:
            on_refusal(ConsentRefusal(at, reason, tid, relying_party, purpose, detail))
        return ConsentRefused(reason, f"consent refused ({reason}): {detail}")

    try:
        tok = token if isinstance(token, ConsentToken) else ConsentToken.decode(token)
        subject_public_key.verify(tok.signature, consent_wire.signing_input(tok.payload()))
    except (InvalidMessage, InvalidSignature) as exc:
        refuse("bad-token", "the token is malformed or its signature does not verify")
        raise InvalidMessage("consent token does not verify") from exc
    tid = tok.token_id
    t = _ts(now)
    s = catalog.scheme
    if withdrawn is not None and withdrawn(tok.token_id):
        raise refuse("withdrawn", f"the subject withdrew token {tok.token_id}")
    if tok.issued_at > t + int(CLOCK_SKEW.total_seconds()):
        raise refuse(
            "not-yet-valid", f"the token is issued for {_iso(tok.issued_at)}, in the future"
        )
    if t >= tok.expires_at:
        raise refuse(
            "expired", f"the token expired at {_iso(tok.expires_at)}; ask the subject for a new one"
        )
    limit = token_life_limit(0) if max_validity is None else max_validity
    if tok.expires_at - tok.issued_at > limit.total_seconds():
        raise refuse(
            "too-long",
            f"the token is valid longer than the deployment's maximum of {limit.days} days; "
            "ask the subject for a shorter one",
        )
    if tok.relying_party != relying_party:
        raise refuse(
            "relying-party", f"the token was given to {tok.relying_party!r}, not {relying_party!r}"
        )
    if tok.purpose != purpose:
        raise refuse("purpose", f"the token allows {tok.purpose!r}, not {purpose!r}")
    if purpose not in s.purposes:
        raise refuse(
            "purpose-not-permitted",
            f"{purpose!r} is not a purpose of scheme {s.name!r} ({', '.join(s.purposes)})",
        )
    if tok.domain != s.domain:
        raise refuse(
            "domain",
            f"the token is for domain {tok.domain!r}; scheme {s.name!r} grades are only for {s.domain!r}",
        )
    if tok.catalog_hash != catalog.version_hash:
        raise refuse(
            "catalog", "the catalog changed since consent was given; the subject must consent again"
        )
    if period is not None and tok.period != period_label(period):
        raise refuse(
            "period",
            f"the token opens the grade of {tok.period}, not of {period_label(period)}; ask the "
            "subject for a token for that period",
        )
    return tok


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


class SqliteRefusalLog:
    """A refusal hook that appends to table ``consent_refusals`` on a given connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS consent_refusals (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, "
                "reason TEXT NOT NULL, token_id TEXT, relying_party TEXT NOT NULL, purpose TEXT NOT NULL, detail TEXT NOT NULL)"
            )

    def __call__(self, r: ConsentRefusal) -> None:
        with self.conn:
            self.conn.execute(
                "INSERT INTO consent_refusals (at, reason, token_id, relying_party, purpose, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (r.at.isoformat(), r.reason, r.token_id, r.relying_party, r.purpose, r.detail),
            )

    def entries(self) -> list[ConsentRefusal]:
        """Every logged refusal, oldest first."""
        return [
            ConsentRefusal(dt.datetime.fromisoformat(a), b, c, d, e, f)
            for a, b, c, d, e, f in self.conn.execute(
                "SELECT at, reason, token_id, relying_party, purpose, detail FROM consent_refusals ORDER BY id"
            )
        ]
