"""Canonical CBOR codec and domain-separated Ed25519 signatures."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from psc.exceptions import InvalidMessage
from psc.protocol import codec
from psc.protocol.messages import (
    PROTOCOL_VERSION,
    AccessResponse,
    EventOpening,
    GradeRequest,
    IngestReceipt,
    LogEntry,
    PeriodEvents,
    SignedMessage,
    Submission,
)
from psc.protocol.signing import (
    _signing_key_from_seed,
    label_for,
    open_signed,
    public_bytes,
    seal,
    sign,
    verify,
)

KEY = _signing_key_from_seed(bytes(range(32)))
OTHER = _signing_key_from_seed(bytes(32))


def request(**kw: object) -> GradeRequest:
    base: dict[str, object] = dict(
        requester="example-bank",
        purpose="credit-assessment",
        period=24314,
        slots=(1, 7, 9),
        nonce=bytes(16),
        consent=b"",
        issued_at=1_700_000_000,
    )
    base.update(kw)
    return GradeRequest(**base)  # type: ignore[arg-type]


def nested() -> AccessResponse:
    op = EventOpening("traffic.violation", "2026-01-05", "ab" * 32, bytes(32), 3, (bytes(32),))
    return AccessResponse(
        "transport-bureau", 4, bytes(32), (PeriodEvents(24312, bytes(32), 16, (op,)),)
    )


def raw(message: object) -> dict[str, object]:
    out: dict[str, object] = cbor2.loads(codec.encode(message))  # type: ignore[arg-type]
    return out


def test_round_trip_and_determinism() -> None:
    for m in (request(), nested()):
        data = codec.encode(m)
        assert codec.encode(m) == data
        assert codec.decode(data, type(m)) == m
        assert raw(m)["@t"] == m.TYPE and raw(m)["@v"] == PROTOCOL_VERSION


def test_keys_are_sorted_canonically() -> None:
    data = codec.encode(request())
    assert data == cbor2.dumps(cbor2.loads(data), canonical=True)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(extra=1),
        lambda d: d.pop("nonce"),
        lambda d: d.update(period="24314"),
        lambda d: d.update(period=True),
        lambda d: d.update(period=1.5),
        lambda d: d.update(requester=b"example-bank"),
        lambda d: d.update(nonce="00" * 16),
        lambda d: d.update(slots=7),
        lambda d: d.update(slots=[1, "7"]),
        lambda d: d.update({"@v": 2}),
        lambda d: d.update({"@v": True}),
        lambda d: d.update({"@t": "ingest-receipt"}),
        lambda d: d.pop("@t"),
        lambda d: d.update(nonce=bytes(15)),  # value check: nonce length
        lambda d: d.update(slots=[7, 1]),  # value check: order
        lambda d: d.update(period=-1),
    ],
)
def test_malformed_messages_are_refused(change: object) -> None:
    d = raw(request())
    change(d)  # type: ignore[operator]
    with pytest.raises(InvalidMessage):
        codec.decode(cbor2.dumps(d, canonical=True), GradeRequest)


def test_non_canonical_and_trailing_bytes_are_refused() -> None:
    d = raw(request())
    unsorted = cbor2.dumps(dict(reversed(list(d.items()))))
    assert cbor2.loads(unsorted) == d
    with pytest.raises(InvalidMessage, match="canonical"):
        codec.decode(unsorted, GradeRequest)
    with pytest.raises(InvalidMessage):
        codec.decode(codec.encode(request()) + b"\x00", GradeRequest)
    with pytest.raises(InvalidMessage):
        codec.decode(b"", GradeRequest)
    with pytest.raises(InvalidMessage):
        codec.decode("text", GradeRequest)  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage):
        codec.decode(cbor2.dumps([1, 2, 3]), GradeRequest)
    with pytest.raises(InvalidMessage):  # the right fields under the wrong type name
        codec.decode(codec.encode(request()), IngestReceipt)


def test_encode_refuses_invalid_values() -> None:
    with pytest.raises(InvalidMessage):
        codec.encode(request(nonce=b"short"))
    with pytest.raises(TypeError):
        codec.encode(request(slots=[1.5]))  # type: ignore[list-item]


def test_peek_type() -> None:
    assert codec.peek_type(codec.encode(request())) == "grade-request"
    with pytest.raises(InvalidMessage):
        codec.peek_type(cbor2.dumps({"@t": "nope"}))


@given(
    requester=st.from_regex(r"[a-z0-9][a-z0-9._#:-]{0,20}", fullmatch=True),
    period=st.integers(0, 2**40),
    slots=st.sets(st.integers(0, 2**32), min_size=1, max_size=20),
    nonce=st.binary(min_size=16, max_size=16),
    consent=st.binary(max_size=40),
    issued_at=st.integers(0, 2**63),
)
def test_round_trip_property(
    requester: str, period: int, slots: set[int], nonce: bytes, consent: bytes, issued_at: int
) -> None:
    m = request(
        requester=requester,
        period=period,
        slots=tuple(sorted(slots)),
        nonce=nonce,
        consent=consent,
        issued_at=issued_at,
    )
    assert codec.decode(codec.encode(m), GradeRequest) == m


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_invalid_message(data: bytes) -> None:
    for cls in (GradeRequest, SignedMessage, Submission, LogEntry):
        with contextlib.suppress(InvalidMessage):
            codec.decode(data, cls)


# -- signatures --------------------------------------------------------------------------


def test_sign_and_verify_with_domain_separation() -> None:
    body = codec.encode(request())
    sig = sign(KEY, label_for("grade-request"), body)
    verify(public_bytes(KEY), label_for("grade-request"), body, sig)
    with pytest.raises(InvalidMessage):  # another message type
        verify(public_bytes(KEY), label_for("ingest-receipt"), body, sig)
    with pytest.raises(InvalidMessage):  # another protocol version
        verify(public_bytes(KEY), label_for("grade-request", 2), body, sig)
    with pytest.raises(InvalidMessage):
        verify(public_bytes(OTHER), label_for("grade-request"), body, sig)
    with pytest.raises(InvalidMessage):
        verify(public_bytes(KEY), label_for("grade-request"), body + b"x", sig)
    with pytest.raises(InvalidMessage):
        verify(b"short", label_for("grade-request"), body, sig)
    assert label_for("submission") == b"psc/v1/submission"


def test_seal_and_open() -> None:
    sealed = seal(request(), KEY)
    assert open_signed(sealed, GradeRequest, lambda m: public_bytes(KEY)) == request()
    with pytest.raises(InvalidMessage):
        open_signed(sealed, GradeRequest, lambda m: public_bytes(OTHER))
    with pytest.raises(InvalidMessage):  # a sealed request is not a receipt
        open_signed(sealed, IngestReceipt, lambda m: public_bytes(KEY))
    # a signature made for one type cannot be moved onto a body of another type
    w = codec.decode(sealed, SignedMessage)
    entry = codec.encode(LogEntry("reveal", "example-bank", 1, bytes(32), b"", 0, bytes(32)))
    moved = codec.encode(SignedMessage(entry, w.signature))
    with pytest.raises(InvalidMessage):
        open_signed(moved, LogEntry, lambda m: public_bytes(KEY))


def test_seed_length_is_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        _signing_key_from_seed(bytes(31))
