"""Replay ``protocols/vectors/rights_asks.json``: the messages of ``protocols/service.md``
§10 decode to their fields and re-encode byte for byte, the registry signs exactly the
vector order for an order ask, and every ``bad_*`` encoding is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from protocols.gen_rights_asks import registry
from psc.exceptions import InvalidMessage
from psc.parties.rights.messages import AdjustmentOrder
from psc.protocol import codec
from psc.protocol.messages import Message
from psc.protocol.rights_asks import ASKS, CARRIERS, AdjustmentOrderAsk
from psc.protocol.signing import open_signed, public_bytes

DOC = json.loads((Path(__file__).parent.parent / "protocols/vectors/rights_asks.json").read_text())
TYPES: dict[str, type[Message]] = {c.TYPE: c for c in (*CARRIERS, *ASKS)}


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def test_every_message_type_has_a_good_and_a_bad_vector() -> None:
    assert {c["type"] for c in DOC["good"]} == set(TYPES)
    assert {c["type"] for c in DOC["bad"]} >= {
        "adjustment-batch",
        "logged-adjustments",
        "adjustment-count",
        "adjustment-order-ask",
        "rights-access-ask",
        "rights-correction-ask",
        "rights-grant",
        "rights-answer-access",
        "rights-repair-decision",
    }


@pytest.mark.parametrize("case", DOC["good"], ids=lambda c: c["name"])
def test_good_messages_decode_to_their_fields_and_reencode(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["encoding"])
    msg = codec.decode(data, TYPES[case["type"]])
    assert {k: _plain(v) for k, v in vars(msg).items()} == case["fields"]
    assert codec.encode(msg) == data


def test_the_registry_signs_exactly_the_vector_orders() -> None:
    reg = registry()
    for case in DOC["good"]:
        if "answer" not in case:
            continue
        ask = codec.decode(bytes.fromhex(case["encoding"]), AdjustmentOrderAsk)
        got = reg.adjustment_order(
            ask.identity,
            ask.agency,
            ask.kind,
            case=ask.case,
            original=ask.original,
            leaves=ask.leaves,
            rule=ask.rule,
        )
        assert got.hex() == case["answer"]
        order = open_signed(got, AdjustmentOrder, lambda m: public_bytes(reg._key))
        assert order.subject == DOC["registry"]["slots"][ask.identity]
        assert (order.agency, order.kind, order.leaves) == (ask.agency, ask.kind, ask.leaves)


@pytest.mark.parametrize("case", DOC["bad"], ids=lambda c: c["name"])
def test_bad_messages_are_refused(case: dict[str, Any]) -> None:
    assert case["error"] == "InvalidMessage"
    with pytest.raises(InvalidMessage):
        codec.decode(bytes.fromhex(case["encoding"]), TYPES[case["type"]])
