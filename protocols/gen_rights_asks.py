"""Write ``protocols/vectors/rights_asks.json``: the messages of ``protocols/service.md`` §10.

Deterministic: fixed fields, a fixed registry key seed, enrolment, clock and nonce seed
(those of ``gen_service.py``), so the file only changes when the messages or the
registry's answer to an order ask change.  Replayed by ``tests/test_vectors_rights_asks.py``.

Layout (bytes in lowercase hex):

* ``good``: each message with its type, fields (bytes as hex) and canonical encoding; an
  ``adjustment-order-ask`` also carries ``answer``, the sealed order the vectors' registry
  signs for it;
* ``bad``: ``bad_*`` encodings every decoder MUST refuse, each with ``error``
  (``InvalidMessage``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cbor2

from protocols.gen_service import KEY_SEED, NONCE_SEED, NOW, SLOTS
from psc.catalog import load_catalog
from psc.parties.rights.registry import RightsRegistry
from psc.protocol import codec
from psc.protocol.messages import PROTOCOL_VERSION, Message
from psc.protocol.rights_asks import (
    AdjustmentBatch,
    AdjustmentCount,
    AdjustmentOrderAsk,
    InclusionBatch,
    LoggedAdjustments,
    RightsAccessAsk,
    RightsAnswerAccess,
    RightsCorrectionAsk,
    RightsGrant,
    RightsRecord,
    RightsRepairAsk,
    RightsRepairDecision,
    RightsWithdrawalAsk,
)
from psc.protocol.signing import _signing_key_from_seed
from psc.sim.sources import seeded_randbytes

OUT = Path(__file__).parent / "vectors" / "rights_asks.json"
ENVELOPE = bytes(range(32))
ASK = bytes(range(16))
REF = ENVELOPE.hex() + "#3"


def registry() -> RightsRegistry:
    """The vectors' registry (as in ``gen_service.py``), with the rights office's act."""
    reg = RightsRegistry.restore(
        load_catalog("city"),
        _signing_key_from_seed(KEY_SEED),
        SLOTS,
        clock=lambda: NOW,
        randbytes=seeded_randbytes(NONCE_SEED + "/rights"),
    )
    assert isinstance(reg, RightsRegistry)
    return reg


def good_messages() -> list[tuple[str, Message]]:
    """The good cases, in order."""
    return [
        ("adjustment_batch_two", AdjustmentBatch((b"\x01sealed-1", b"\x02sealed-2"))),
        ("inclusion_batch_one", InclusionBatch((b"\x03inclusion",))),
        ("logged_adjustments_empty", LoggedAdjustments((), ())),
        ("logged_adjustments_one", LoggedAdjustments((b"\x01sealed-1",), (b"\x03inclusion",))),
        ("adjustment_count", AdjustmentCount(2)),
        (
            "order_ask_correction",
            AdjustmentOrderAsk(
                "resident-a", "intermediate-court", "correction", "rights-7", ENVELOPE, (3,), ""
            ),
        ),
        (
            "order_ask_repair",
            AdjustmentOrderAsk(
                "resident-b", "tax-bureau", "repair", "rights-8", b"", (), "tax.arrears"
            ),
        ),
        ("access_ask", RightsAccessAsk(ASK, "resident-a", "access")),
        ("correction_ask", RightsCorrectionAsk(ASK, "resident-a", "appeal", REF, "not mine")),
        ("repair_ask", RightsRepairAsk(ASK, "resident-b", "tax.arrears", REF, "")),
        ("withdrawal_ask", RightsWithdrawalAsk(ASK, "resident-c", "token-42", "bank")),
        ("answer_access", RightsAnswerAccess(1, 24320, 24322)),
        ("grant", RightsGrant(2)),
        ("repair_decision", RightsRepairDecision(3, True)),
        (
            "record_granted_correction",
            RightsRecord(
                2,
                "correction",
                "resident-a",
                REF,
                "",
                "granted",
                "2026-12-04",
                "compensating delta 50 from 2026-11",
                "",
                (bytes(32),),
            ),
        ),
    ]


def _fields(msg: Message) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.hex()
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return {k: plain(v) for k, v in vars(msg).items()}


def _raw(obj: dict[str, Any]) -> str:
    return cbor2.dumps(obj, canonical=True).hex()


def bad_objects() -> list[tuple[str, dict[str, Any]]]:
    """The ``bad_*`` cases as CBOR maps (each refused with ``InvalidMessage``)."""
    v = PROTOCOL_VERSION
    batch = {"@t": "adjustment-batch", "@v": v, "adjustments": [b"\x01sealed-1"]}
    order = {
        "@t": "adjustment-order-ask",
        "@v": v,
        "identity": "resident-a",
        "agency": "intermediate-court",
        "kind": "correction",
        "case": "rights-7",
        "original": ENVELOPE,
        "leaves": [3],
        "rule": "",
    }
    access = {"@t": "rights-access-ask", "@v": v, "ask_id": ASK, "identity": "r", "kind": "access"}
    correction = {
        "@t": "rights-correction-ask",
        "@v": v,
        "ask_id": ASK,
        "identity": "resident-a",
        "kind": "correction",
        "ref": REF,
        "note": "",
    }
    return [
        ("bad_empty_batch", batch | {"adjustments": []}),
        ("bad_repeated_adjustment", batch | {"adjustments": [b"x", b"x"]}),
        ("bad_empty_adjustment", batch | {"adjustments": [b""]}),
        (
            "bad_batch_too_long",
            batch | {"adjustments": [bytes([i, j]) for i in range(2) for j in range(129)]},
        ),
        (
            "bad_logged_unpaired",
            {"@t": "logged-adjustments", "@v": v, "adjustments": [b"a"], "inclusions": []},
        ),
        ("bad_negative_count", {"@t": "adjustment-count", "@v": v, "count": -1}),
        ("bad_order_kind", order | {"kind": "erasure"}),
        ("bad_order_short_original", order | {"original": ENVELOPE[:31]}),
        ("bad_order_two_leaves", order | {"leaves": [3, 4]}),
        ("bad_order_correction_with_rule", order | {"rule": "tax.arrears"}),
        ("bad_order_repair_with_leaf", order | {"kind": "repair", "rule": "tax.arrears"}),
        (
            "bad_order_repair_without_rule",
            order | {"kind": "repair", "original": b"", "leaves": []},
        ),
        ("bad_ask_id_short", access | {"ask_id": ASK[:15]}),
        ("bad_access_kind", access | {"kind": "correction"}),
        ("bad_identity_empty", access | {"identity": ""}),
        ("bad_identity_not_printable", access | {"identity": "a\nb"}),
        ("bad_correction_kind", correction | {"kind": "repair"}),
        ("bad_note_too_long", correction | {"note": "n" * 1025}),
        ("bad_extra_field", correction | {"rule": "x"}),
        ("bad_missing_field", {k: x for k, x in correction.items() if k != "note"}),
        ("bad_request_id_zero", {"@t": "rights-grant", "@v": v, "request_id": 0}),
        ("bad_request_id_as_text", {"@t": "rights-grant", "@v": v, "request_id": "2"}),
        (
            "bad_answer_range_reversed",
            {"@t": "rights-answer-access", "@v": v, "request_id": 1, "first_period": 5, "at": 4},
        ),
        (
            "bad_decision_not_bool",
            {"@t": "rights-repair-decision", "@v": v, "request_id": 1, "performance_proven": 1},
        ),
        ("bad_other_version", {"@t": "rights-grant", "@v": v + 1, "request_id": 2}),
    ]


def main() -> None:
    """Regenerate the vector file."""
    reg = registry()
    good = []
    for name, msg in good_messages():
        data = codec.encode(msg)
        case: dict[str, Any] = {
            "name": name,
            "type": msg.TYPE,
            "fields": _fields(msg),
            "encoding": data.hex(),
        }
        if isinstance(msg, AdjustmentOrderAsk):
            case["answer"] = reg.adjustment_order(
                msg.identity,
                msg.agency,
                msg.kind,
                case=msg.case,
                original=msg.original,
                leaves=msg.leaves,
                rule=msg.rule,
            ).hex()
        good.append(case)
    bad = [
        {"name": name, "type": obj["@t"], "encoding": _raw(obj), "error": "InvalidMessage"}
        for name, obj in bad_objects()
    ]
    reordered = dict(reversed(list({"@t": "rights-grant", "@v": 1, "request_id": 2}.items())))
    bad.append(
        {
            "name": "bad_not_canonical",
            "type": "rights-grant",
            "encoding": cbor2.dumps(reordered).hex(),
            "error": "InvalidMessage",
        }
    )
    doc = {
        "spec": "protocols/service.md",
        "version": 1,
        "registry": {
            "key_seed": KEY_SEED.hex(),
            "nonce_seed": NONCE_SEED + "/rights",
            "clock": NOW.isoformat(),
            "slots": SLOTS,
            "catalog": "city",
        },
        "good": good,
        "bad": bad,
    }
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
