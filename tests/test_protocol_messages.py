"""Message value checks: every field's documented constraint is enforced on decode."""

from __future__ import annotations

import dataclasses
import typing

import cbor2
import pytest

from psc.exceptions import InvalidMessage
from psc.protocol import codec
from psc.protocol.messages import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    AccessRequest,
    AccessResponse,
    AgencyRegistration,
    BlockCiphertext,
    CapCiphertext,
    ClassCiphertext,
    EventOpening,
    GradeRequest,
    GradeResponse,
    IngestReceipt,
    LogEntry,
    LogInclusion,
    Message,
    PeriodEvents,
    PublicParameters,
    RelyingPartyRegistration,
    RevealNotice,
    RevealRequest,
    SignedMessage,
    SlotGrade,
    Submission,
    TreeHead,
)

H = bytes(range(32))
K = bytes(range(32, 64))
OPENING = EventOpening("traffic.violation", "2026-01-05", "ab" * 32, bytes(32), 3, (H,))
TREE_HEAD = TreeHead(5, H, 1000, bytes(64))

GOOD: dict[type[Message], Message] = {
    PublicParameters: PublicParameters("city", H, b"\x01\x02", 14, 141, 20, 1, K, K, K, 0),
    AgencyRegistration: AgencyRegistration("intermediate-court#2", "intermediate-court", K, H, 0),
    RelyingPartyRegistration: RelyingPartyRegistration("bank", ("credit-assessment",), K, 0),
    Submission: Submission(
        "tax-bureau",
        24312,
        H,
        bytes(16),
        20,
        (ClassCiphertext("negative", b"ct"),),
        (CapCiphertext("negative", "C", b"ct"),),
        H,
        16,
        0,
        (b"proof", b"proof"),
    ),
    IngestReceipt: IngestReceipt(H, "tax-bureau", 24312, 0, 1, H, 0),
    LogEntry: LogEntry("submission", "tax-bureau", 24312, H, H, 16, H),
    TreeHead: TREE_HEAD,
    LogInclusion: LogInclusion(b"entry", 2, (H,), TREE_HEAD),
    GradeRequest: GradeRequest("bank", "credit-assessment", 1, (0, 3), bytes(16), b"", 0),
    RevealRequest: RevealRequest(b"req", 1, (BlockCiphertext("score", 0, b"ct"),), 3, H),
    GradeResponse: GradeResponse(H, "bank", "credit-assessment", 1, (SlotGrade(0, "A"),), 3, 0),
    RevealNotice: RevealNotice(H, H, "bank", "credit-assessment", 1, 2, 0),
    AccessRequest: AccessRequest("registry", 4, 10, 12, bytes(16), 0),
    AccessResponse: AccessResponse("tax-bureau", 4, H, (PeriodEvents(10, H, 16, (OPENING,)),)),
    SignedMessage: SignedMessage(b"body", bytes(64)),
}

BAD: list[tuple[type[Message], dict[str, object]]] = [
    (PublicParameters, {"catalog_version": bytes(31)}),
    (PublicParameters, {"paillier_n": b"\x00\x01"}),
    (PublicParameters, {"slot_bits": 1}),
    (PublicParameters, {"n_subjects": 0}),
    (PublicParameters, {"aggregator_key": bytes(31)}),
    (AgencyRegistration, {"agency": "Court"}),
    (AgencyRegistration, {"public_key": bytes(33)}),
    (RelyingPartyRegistration, {"purposes": ()}),
    (Submission, {"nonce": bytes(8)}),
    (Submission, {"period": -1}),
    (Submission, {"n_subjects": 0}),
    (Submission, {"deltas": (ClassCiphertext("short", b""), ClassCiphertext("negative", b""))}),
    (Submission, {"deltas": (ClassCiphertext("short", b""), ClassCiphertext("short", b""))}),
    (Submission, {"commitment_root": b""}),
    (Submission, {"proofs": (b"proof",)}),
    (IngestReceipt, {"log_index": 1, "tree_size": 1}),
    (LogEntry, {"kind": "gossip"}),
    (LogEntry, {"commitment_root": bytes(5)}),
    (TreeHead, {"signature": bytes(63)}),
    (LogInclusion, {"index": 5}),
    (GradeRequest, {"slots": ()}),
    (GradeRequest, {"slots": (3, 3)}),
    (GradeRequest, {"slots": (-1, 3)}),
    (RevealRequest, {"blocks": ()}),
    (GradeResponse, {"grades": (SlotGrade(3, "A"), SlotGrade(1, "A"))}),
    (RevealNotice, {"slots": 0}),
    (RevealNotice, {"response_hash": bytes(3)}),
    (AccessRequest, {"first_period": 13}),
    (AccessResponse, {"periods": (PeriodEvents(10, H, 2, (OPENING,)),)}),
    (AccessResponse, {"request_hash": b"x"}),
    (SignedMessage, {"signature": bytes(10)}),
]


def test_every_message_type_has_a_good_example_that_round_trips() -> None:
    assert set(GOOD) == set(MESSAGE_TYPES.values())
    for cls, msg in GOOD.items():
        assert codec.decode(codec.encode(msg), cls) == msg


def test_type_names_are_unique_and_fields_are_commented() -> None:
    names = [m.TYPE for m in MESSAGE_TYPES.values()]
    assert len(names) == len(set(names))
    for cls in MESSAGE_TYPES.values():
        assert cls.__doc__ and dataclasses.is_dataclass(cls)
        for f in dataclasses.fields(cls):
            assert typing.get_type_hints(cls)[f.name] is not None


@pytest.mark.parametrize(
    ("cls", "change"), BAD, ids=[f"{c.__name__}-{next(iter(d))}" for c, d in BAD]
)
def test_bad_values_are_refused(cls: type[Message], change: dict[str, object]) -> None:
    bad = dataclasses.replace(GOOD[cls], **change)  # type: ignore[type-var]
    with pytest.raises(InvalidMessage):  # never sent...
        codec.encode(bad)
    unchecked = codec._to_cbor(bad)
    unchecked.update({"@t": cls.TYPE, "@v": PROTOCOL_VERSION})
    with pytest.raises(InvalidMessage):  # ...and never accepted
        codec.decode(cbor2.dumps(unchecked, canonical=True), cls)


def test_event_opening_checks() -> None:
    for change in (
        {"date": "2026-1-5"},
        {"evidence": "AB" * 32},
        {"salt": bytes(16)},
        {"proof": (bytes(31),)},
        {"rule": ""},
    ):
        with pytest.raises(InvalidMessage):
            dataclasses.replace(OPENING, **change).check()  # type: ignore[arg-type]
