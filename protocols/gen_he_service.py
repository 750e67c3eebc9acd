"""Write ``protocols/vectors/he_service.json``: the grading authority's signed answers.

``python -m protocols.generate he_service``.  The ``he-log-receipt`` and
``he-grade-response`` messages of ``protocols/he-grading.md`` section 3.5, each with a good
case and ``bad_*`` cases a receiver MUST refuse with ``InvalidMessage``: the signature and
the encoding (stage ``decode``) and the binding to what was sent (stage ``bind``: the
receipt to the submission, the response to the request's hash, requester, period and
slots, and grade indices of the catalog).  Deterministic: fixed key seeds, and Ed25519
signatures are deterministic, so regenerating leaves the file byte-identical.  The
receipt's submission is the good ``he-submission`` of ``he.json``.  Replayed by
``tests/test_vectors_he_service.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import cbor2

from psc.protocol import codec
from psc.protocol.he_messages import HeGradeResponse, HeLogReceipt
from psc.protocol.messages import PROTOCOL_VERSION, GradeRequest, Message, SignedMessage
from psc.protocol.signing import _signing_key_from_seed, label_for, public_bytes, seal, sign

HERE = Path(__file__).resolve().parent
OUT = HERE / "vectors" / "he_service.json"
AUTHORITY_SEED = bytes([0x61]) * 32
REQUESTER_SEED = bytes([0x62]) * 32
#: grade labels of the small test catalog (A, B, C, D): indices 0..3
N_GRADES = 4


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _fields(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in vars(m).items():
        out[k] = v.hex() if isinstance(v, bytes) else list(v) if isinstance(v, tuple) else v
    return out


def submission_wire() -> bytes:
    """The good he-submission of ``he.json`` (what the receipt is for)."""
    doc = json.loads((HERE / "vectors" / "he.json").read_text())
    return base64.b64decode(doc["he_submission"]["good"]["wire"])


def request_wire() -> bytes:
    """The requester's signed grade request the response answers."""
    req = GradeRequest("example-bank", "credit-assessment", 0, (1, 4, 5), bytes(range(16)), b"", 0)
    return seal(req, _signing_key_from_seed(REQUESTER_SEED))


def _signed(doc: dict[str, Any], t: str, key: Any, label: str | None = None) -> str:
    raw = cbor2.dumps({**doc, "@t": t, "@v": PROTOCOL_VERSION}, canonical=True)
    return _b64(codec.encode(SignedMessage(raw, sign(key, label_for(label or t), raw))))


def _cases(
    good: Message, decode_bad: dict[str, dict[str, Any]], bind_bad: dict[str, Message]
) -> dict[str, Any]:
    key = _signing_key_from_seed(AUTHORITY_SEED)
    other = _signing_key_from_seed(REQUESTER_SEED)
    wire = seal(good, key)
    wrapper = codec.decode(wire, SignedMessage)
    flipped = bytes([wrapper.signature[0] ^ 1]) + wrapper.signature[1:]
    raw = {k: v for k, v in vars(good).items()}
    t = good.TYPE
    bad: list[dict[str, str]] = [
        {
            "case": "bad_signature_flipped",
            "stage": "decode",
            "wire": _b64(codec.encode(SignedMessage(wrapper.body, flipped))),
        },
        {"case": "bad_signed_by_another_key", "stage": "decode", "wire": _signed(raw, t, other)},
        {
            "case": "bad_signed_under_another_type",
            "stage": "decode",
            "wire": _signed(raw, t, key, "grade-response"),
        },
        {
            "case": "bad_extra_field",
            "stage": "decode",
            "wire": _signed({**raw, "grade": 0}, t, key),
        },
    ]
    bad += [
        {"case": c, "stage": "decode", "wire": _signed({**raw, **d}, t, key)}
        for c, d in decode_bad.items()
    ]
    bad += [{"case": c, "stage": "bind", "wire": _b64(seal(m, key))} for c, m in bind_bad.items()]
    return {
        "good": {"fields": _fields(good), "wire": _b64(wire)},
        "bad": [{**b, "expect": "InvalidMessage"} for b in bad],
    }


def main() -> None:
    """Regenerate the vector file."""
    import dataclasses

    key = _signing_key_from_seed(AUTHORITY_SEED)
    sub, req = submission_wire(), request_wire()
    head = hashlib.sha256(b"psc/vectors/he_service/head").digest()
    receipt = HeLogReceipt("grading-authority", hashlib.sha256(sub).digest(), 4, head)
    response = HeGradeResponse(
        "grading-authority",
        hashlib.sha256(req).digest(),
        "example-bank",
        0,
        (1, 4, 5),
        (2, 1, 2),
        bytes(range(16)),
        7,
        head,
    )
    doc = {
        "version": 1,
        "spec": "protocols/he-grading.md section 3.5",
        "authority_public_key": public_bytes(key).hex(),
        "n_grades": N_GRADES,
        "request_wire": _b64(req),
        "he_log_receipt": _cases(
            receipt,
            {
                "bad_entry_length": {"entry": bytes(31)},
                "bad_head_length": {"head": bytes(33)},
                "bad_negative_index": {"index": -1},
                "bad_authority_name": {"authority": "Grading Authority"},
            },
            {"bad_for_another_submission": dataclasses.replace(receipt, entry=bytes(32))},
        ),
        "he_grade_response": _cases(
            response,
            {
                "bad_slots_not_ascending": {"slots": [4, 1, 5]},
                "bad_empty_slots": {"slots": [], "grades": []},
                "bad_grades_count": {"grades": [2, 1]},
                "bad_negative_grade": {"grades": [2, -1, 2]},
                "bad_context_length": {"context": bytes(15)},
                "bad_request_hash_length": {"request_hash": bytes(16)},
                "bad_negative_period": {"period": -1},
            },
            {
                "bad_for_another_request": dataclasses.replace(response, request_hash=bytes(32)),
                "bad_another_requester": dataclasses.replace(response, requester="other-bank"),
                "bad_another_period": dataclasses.replace(response, period=1),
                "bad_other_slots": dataclasses.replace(response, slots=(1, 4, 6)),
                "bad_grade_outside_the_catalog": dataclasses.replace(response, grades=(2, 4, 2)),
            },
        ),
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
