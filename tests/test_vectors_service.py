"""Replay ``protocols/vectors/service.json``: the asks of ``protocols/service.md`` §9, what the
registry signs for them, the ``bad_*`` encodings every decoder refuses, and the error
bodies of §3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocols.gen_service import registry
from psc import exceptions
from psc.exceptions import InvalidMessage
from psc.protocol import codec
from psc.protocol.messages import AccessRequest, GradeRequest, Message
from psc.protocol.parameters import SELF_ACCESS_PURPOSE
from psc.protocol.service_messages import AccessAsk, GradeAsk, SubmitPeriod
from psc.protocol.signing import open_signed, public_bytes
from psc.service.http import error_response

DOC = json.loads((Path(__file__).parent.parent / "protocols/vectors/service.json").read_text())
TYPES: dict[str, type[Message]] = {c.TYPE: c for c in (GradeAsk, AccessAsk, SubmitPeriod)}


@pytest.mark.parametrize("case", DOC["asks"], ids=lambda c: c["name"])
def test_good_asks_decode_to_their_fields_and_reencode_byte_for_byte(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["encoding"])
    msg = codec.decode(data, TYPES[case["type"]])
    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(msg).items()}
    assert fields == case["fields"]
    assert codec.encode(msg) == data


@pytest.mark.parametrize("case", [c for c in DOC["asks"] if "answer" in c], ids=lambda c: c["name"])
def test_the_registry_signs_exactly_the_vector_answer(case: dict[str, Any]) -> None:
    reg = registry()
    for earlier in DOC["asks"]:  # the same sequence of nonces as the generator
        if "answer" not in earlier:
            continue
        data = bytes.fromhex(earlier["encoding"])
        got = (
            reg.answer_grade_ask(data)
            if earlier["type"] == "grade-ask"
            else reg.answer_access_ask(data)
        )
        if earlier is case:
            assert got.hex() == case["answer"]
            break
    key = public_bytes(reg._key)
    if case["type"] == "grade-ask":
        req = open_signed(bytes.fromhex(case["answer"]), GradeRequest, lambda m: key)
        slots = sorted(DOC["registry"]["slots"][i] for i in case["fields"]["identities"])
        assert list(req.slots) == slots and req.purpose == SELF_ACCESS_PURPOSE
    else:
        acc = open_signed(bytes.fromhex(case["answer"]), AccessRequest, lambda m: key)
        assert acc.subject == DOC["registry"]["slots"][case["fields"]["identity"]]


@pytest.mark.parametrize("case", DOC["bad"], ids=lambda c: c["name"])
def test_bad_asks_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(InvalidMessage):
        codec.decode(bytes.fromhex(case["encoding"]), TYPES[case["type"]])


def test_an_identity_not_enrolled_is_refused_and_nothing_is_signed() -> None:
    reg = registry()
    ask = codec.encode(GradeAsk(("resident-a", "resident-z"), 24322))
    with pytest.raises(exceptions.UnknownParty):
        reg.answer_grade_ask(ask)


@pytest.mark.parametrize("case", DOC["errors"], ids=lambda c: c["class"])
def test_error_bodies_are_the_specified_ones(case: dict[str, Any]) -> None:
    builtin = {"RuntimeError": RuntimeError, "ConnectionError": ConnectionError}
    cls = getattr(exceptions, case["class"], None) or builtin[case["class"]]
    resp = error_response(cls(case["message"]))
    assert resp.status_code == case["status"]
    assert json.loads(bytes(resp.body)) == case["body"]
