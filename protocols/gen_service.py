"""Write ``protocols/vectors/service.json``: the asks of ``protocols/service.md`` §9 and the
error bodies of §3.

Deterministic: a fixed registry key seed, a fixed enrolment, a fixed clock and
:func:`psc.sim.sources.seeded_randbytes` for nonces, so the file only changes when the
asks, the registry's answers or the error mapping change.  Replayed by
``tests/test_vectors_service.py``.

Layout (bytes in lowercase hex):

* ``asks``: good asks, each with its type, fields and encoding, and what the registry
  signs for it (``answer``: the sealed request, given the registry's key seed, enrolment,
  clock and nonce seed of ``registry``);
* ``bad``: ``bad_*`` encodings every decoder MUST refuse with ``InvalidMessage``;
* ``errors``: an exception class and message, and the status and JSON body a party MUST
  answer with (``psc.service.http.error_response``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import cbor2

from psc import exceptions
from psc.catalog import load_catalog
from psc.parties.registry import Registry
from psc.protocol import codec
from psc.protocol.messages import PROTOCOL_VERSION
from psc.protocol.service_messages import AccessAsk, GradeAsk, SubmitPeriod
from psc.protocol.signing import _signing_key_from_seed
from psc.sim.sources import seeded_randbytes

OUT = Path(__file__).parent / "vectors" / "service.json"
KEY_SEED = bytes(range(32))
NONCE_SEED = "psc/vectors/service"
NOW = dt.datetime(2026, 11, 15, 12, 0, tzinfo=dt.UTC)
SLOTS = {"resident-a": 2, "resident-b": 0, "resident-c": 1}


def registry() -> Registry:
    """The vectors' registry: fixed key, enrolment, clock and nonces."""
    return Registry.restore(
        load_catalog("city"),
        _signing_key_from_seed(KEY_SEED),
        SLOTS,
        clock=lambda: NOW,
        randbytes=seeded_randbytes(NONCE_SEED),
    )


def _raw(obj: dict[str, Any]) -> str:
    return cbor2.dumps(obj, canonical=True).hex()


def main() -> None:
    """Regenerate the vector file."""
    reg = registry()
    asks: list[dict[str, Any]] = []
    for name, msg in (
        ("grade_ask_two_residents", GradeAsk(("resident-a", "resident-c"), 24322)),
        ("grade_ask_one_resident", GradeAsk(("resident-b",), 24322)),
        ("access_ask", AccessAsk("resident-c", 24320, 24322)),
        ("submit_period", SubmitPeriod(24322)),
    ):
        data = codec.encode(msg)
        case: dict[str, Any] = {
            "name": name,
            "type": msg.TYPE,
            "fields": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(msg).items()},
            "encoding": data.hex(),
        }
        if isinstance(msg, GradeAsk):
            case["answer"] = reg.answer_grade_ask(data).hex()
        elif isinstance(msg, AccessAsk):
            case["answer"] = reg.answer_access_ask(data).hex()
        asks.append(case)
    v = PROTOCOL_VERSION
    grade = {"@t": "grade-ask", "@v": v, "identities": ["resident-a"], "period": 24322}
    bad = [
        ("bad_no_identities", grade | {"identities": []}),
        ("bad_repeated_identity", grade | {"identities": ["resident-a", "resident-a"]}),
        ("bad_identity_not_printable", grade | {"identities": ["resident\n"]}),
        ("bad_identity_too_long", grade | {"identities": ["r" * 129]}),
        ("bad_negative_period", grade | {"period": -1}),
        ("bad_extra_field", grade | {"slot": 3}),
        ("bad_identity_as_bytes", grade | {"identities": [b"resident-a"]}),
        ("bad_other_version", grade | {"@v": v + 1}),
        (
            "bad_access_range_reversed",
            {
                "@t": "access-ask",
                "@v": v,
                "identity": "resident-a",
                "first_period": 24322,
                "last_period": 24321,
            },
        ),
        ("bad_submit_period_as_string", {"@t": "submit-period", "@v": v, "period": "24322"}),
    ]
    bad_cases = [
        {"name": name, "type": obj["@t"], "encoding": _raw(obj), "error": "InvalidMessage"}
        for name, obj in bad
    ]
    reordered = dict(reversed(list(grade.items())))  # the same map, keys out of order
    assert cbor2.dumps(reordered) != cbor2.dumps(grade, canonical=True)
    bad_cases.append(
        {
            "name": "bad_not_canonical",
            "type": "grade-ask",
            "encoding": cbor2.dumps(reordered).hex(),
            "error": "InvalidMessage",
        }
    )
    errors = [
        {"class": cls, "message": msg, "status": status, "body": body}
        for cls, msg, status, body in _errors()
    ]
    doc = {
        "spec": "protocols/service.md",
        "registry": {
            "key_seed": KEY_SEED.hex(),
            "nonce_seed": NONCE_SEED,
            "clock": NOW.isoformat(),
            "slots": SLOTS,
            "catalog": "city",
        },
        "asks": asks,
        "bad": bad_cases,
        "errors": errors,
    }
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


def _errors() -> list[tuple[str, str, int, dict[str, str]]]:
    from psc.service.http import error_response

    out = []
    for cls, msg in (
        (exceptions.InvalidMessage, "grade-ask: identities must be distinct"),
        (exceptions.UnknownParty, "'resident-z' is not enrolled"),
        (exceptions.PolicyViolation, "purpose 'marketing' is not registered"),
        (exceptions.BudgetExhausted, "subject:3 has no budget left"),
        (exceptions.DuplicateSubmission, "another envelope for period 24322"),
        (exceptions.StalePeriod, "period 24300 is closed"),
        (exceptions.InsufficientShares, "2 good shares, 3 needed"),
        (ConnectionError, "http://127.0.0.1:8001/v1/reveal-requests did not answer"),
        (RuntimeError, "a bug"),
    ):
        with contextlib.redirect_stderr(io.StringIO()):  # the 500's log line, not for here
            resp = error_response(cls(msg))
        out.append((cls.__name__, msg, resp.status_code, json.loads(bytes(resp.body))))
    return out


if __name__ == "__main__":
    main()
