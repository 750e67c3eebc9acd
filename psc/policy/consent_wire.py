"""Wire encoding of consent tokens: canonical JSON, kept apart from the consent logic.

Normative description: ``protocols/consent-token.md``.  A token on the wire is the
canonical JSON of ``{"payload": {...}, "signature": "<128 hex digits>"}``; canonical means
UTF-8, keys sorted, no insignificant whitespace (``separators=(",", ":")``), no floats,
non-ASCII characters as themselves.  Decoding re-encodes and compares byte for byte, so
exactly one encoding of each token is accepted (no malleability).  The signed bytes are
``SIGNING_CONTEXT || canonical_json(payload)``.

Every decoding failure raises :class:`~psc.exceptions.InvalidMessage`, opaque on purpose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from psc.exceptions import InvalidMessage

#: domain separation for the Ed25519 signature
SIGNING_CONTEXT = b"psc consent token v2\x00"
VERSION = 2
#: longest token accepted on the wire; a well-formed token is under 1 KiB
MAX_TOKEN_BYTES = 2048
#: latest timestamp a token may carry (9999-12-31T23:59:59Z); earliest is 0
MAX_TIMESTAMP = 253_402_300_799

#: payload field -> (type, pattern or None); exactly these fields, all required
PAYLOAD_FIELDS: dict[str, tuple[type, re.Pattern[str] | None]] = {
    "v": (int, None),
    "token_id": (str, re.compile(r"^[0-9a-f]{32}$")),
    "subject": (str, re.compile(r"^\S.{0,127}$")),
    "relying_party": (str, re.compile(r"^\S.{0,127}$")),
    "purpose": (str, re.compile(r"^\S.{0,127}$")),
    "domain": (str, re.compile(r"^\S.{0,127}$")),
    "catalog_hash": (str, re.compile(r"^[0-9a-f]{64}$")),
    "issued_at": (int, None),
    "expires_at": (int, None),
    "period": (str, re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")),
}
_SIG = re.compile(r"^[0-9a-f]{128}$")


def canonical_json(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj`` (str, int, bool, None, lists and str-keyed dicts only).

    Raises ``ValueError`` for floats or other types, which have no canonical form here.
    """
    _check_plain(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _check_plain(obj: Any) -> None:
    if obj is None or isinstance(obj, str | bool | int):
        return
    if isinstance(obj, list):
        for v in obj:
            _check_plain(v)
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError("canonical JSON keys must be strings")
            _check_plain(v)
        return
    raise ValueError(f"canonical JSON has no encoding for {type(obj).__name__}")


def signing_input(payload: Mapping[str, Any]) -> bytes:
    """The bytes the subject signs: the context string, then the canonical payload."""
    return SIGNING_CONTEXT + canonical_json(dict(payload))


def encode_token(payload: Mapping[str, Any], signature: bytes) -> bytes:
    """Wire bytes of a signed token."""
    return canonical_json({"payload": dict(payload), "signature": signature.hex()})


def decode_token(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Parse wire bytes into (payload, signature); raises ``InvalidMessage`` on any defect.

    Checks: at most :data:`MAX_TOKEN_BYTES` bytes, UTF-8 JSON (integers beyond Python's
    digit limit and nesting beyond its recursion limit are refused, not raised), canonical
    form, exactly the two top-level keys, exactly the payload fields of
    :data:`PAYLOAD_FIELDS` with their types and shapes, timestamps in ``[0,
    MAX_TIMESTAMP]``, version 2, a 64-byte signature.  It does *not* verify the signature: that is the consent logic's job.
    """
    if len(data) > MAX_TOKEN_BYTES:
        raise InvalidMessage(f"consent token is longer than {MAX_TOKEN_BYTES} bytes")
    try:
        obj = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers past Python's digit limit
        raise InvalidMessage("consent token is not valid JSON") from exc
    if not isinstance(obj, dict) or set(obj) != {"payload", "signature"}:
        raise InvalidMessage("consent token must have exactly payload and signature")
    try:
        if canonical_json(obj) != data:
            raise InvalidMessage("consent token is not canonically encoded")
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage("consent token holds a value with no canonical form") from exc
    payload, sig = obj["payload"], obj["signature"]
    if not isinstance(payload, dict) or set(payload) != set(PAYLOAD_FIELDS):
        raise InvalidMessage("consent token payload has missing or unknown fields")
    for name, (kind, pattern) in PAYLOAD_FIELDS.items():
        v = payload[name]
        if isinstance(v, bool) or not isinstance(v, kind):
            raise InvalidMessage(f"consent token field {name} has the wrong type")
        if pattern is not None and not (isinstance(v, str) and pattern.fullmatch(v)):
            raise InvalidMessage(f"consent token field {name} is malformed")
        if isinstance(v, int) and name != "v" and not 0 <= v <= MAX_TIMESTAMP:
            raise InvalidMessage(f"consent token field {name} is out of range")
    if payload["v"] != VERSION:
        raise InvalidMessage("unsupported consent token version")
    if not isinstance(sig, str) or not _SIG.fullmatch(sig):
        raise InvalidMessage("consent token signature is malformed")
    return payload, bytes.fromhex(sig)
