"""Replay ``protocols/vectors/he_service.json``: the grading authority's signed receipts and
grade responses (``protocols/he-grading.md`` 3.5), good and ``bad_*``."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from protocols.gen_he_service import AUTHORITY_SEED, submission_wire
from psc.exceptions import InvalidMessage
from psc.protocol.he_messages import HeGradeResponse, HeLogReceipt
from psc.protocol.messages import Message
from psc.protocol.signing import _signing_key_from_seed, open_signed, seal
from psc.service.he_client import check_grade_response, check_receipt

DOC = json.loads((Path(__file__).parent.parent / "protocols/vectors/he_service.json").read_text())
KEY = bytes.fromhex(DOC["authority_public_key"])
REQUEST = base64.b64decode(DOC["request_wire"])
CLASSES: dict[str, type[Message]] = {
    "he_log_receipt": HeLogReceipt,
    "he_grade_response": HeGradeResponse,
}


def _check(name: str, wire: bytes) -> object:
    if name == "he_log_receipt":
        return check_receipt(wire, submission_wire(), KEY)
    return check_grade_response(wire, REQUEST, KEY, DOC["n_grades"])


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_good_answers_open_to_their_fields_and_reseal_byte_for_byte(name: str) -> None:
    good = DOC[name]["good"]
    wire = base64.b64decode(good["wire"])
    msg = open_signed(wire, CLASSES[name], lambda m: KEY)
    fields = {
        k: v.hex() if isinstance(v, bytes) else list(v) if isinstance(v, tuple) else v
        for k, v in vars(msg).items()
    }
    assert fields == good["fields"]
    assert seal(msg, _signing_key_from_seed(AUTHORITY_SEED)) == wire
    got = _check(name, wire)
    if name == "he_grade_response":
        assert got == dict(zip(good["fields"]["slots"], good["fields"]["grades"], strict=True))
    else:
        assert got == good["fields"]["index"]


@pytest.mark.parametrize(
    "name,case",
    [(n, c) for n in sorted(CLASSES) for c in DOC[n]["bad"]],
    ids=lambda x: x if isinstance(x, str) else x["case"],
)
def test_bad_answers_are_refused(name: str, case: dict[str, Any]) -> None:
    assert case["expect"] == "InvalidMessage"
    wire = base64.b64decode(case["wire"])
    with pytest.raises(InvalidMessage):
        _check(name, wire)
    if case["stage"] == "decode":  # refused by the codec or the signature alone
        with pytest.raises(InvalidMessage):
            open_signed(wire, CLASSES[name], lambda m: KEY)
    else:  # a valid signed message that answers something else
        open_signed(wire, CLASSES[name], lambda m: KEY)
