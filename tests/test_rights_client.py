"""The rights office's HTTP clients believe a peer only as far as its messages prove.

Each peer here is a stand-in answering with bytes a real party signed, but for something
other than what was asked (or signed by someone else); the client must refuse
(:class:`InvalidMessage`) rather than hand the office a wrong slot or a short answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from protocols.gen_rights_asks import registry
from psc.catalog import load_catalog
from psc.exceptions import InvalidMessage, RightsRequestError
from psc.parties.rights.registry import RightsRegistry
from psc.protocol import codec
from psc.protocol.rights_asks import InclusionBatch
from psc.protocol.signing import _signing_key_from_seed, public_bytes
from psc.service.rights_client import HttpRightsAggregator, HttpRightsRegistry

SLOTS = {"resident-a": 2, "resident-b": 0, "resident-c": 1}


@dataclass
class Params:
    """The one field of the parameters these clients read."""

    registry_key: bytes


@dataclass
class Peer:
    """A peer answering each path with what ``answer`` makes of the body."""

    answers: dict[str, object]
    seen: list[str] = field(default_factory=list)

    def post(self, path: str, body: bytes) -> bytes:
        self.seen.append(path)
        make = self.answers[path]
        assert callable(make)
        out = make(body)
        assert isinstance(out, bytes)
        return out


def _client(reg: RightsRegistry, answers: dict[str, object]) -> HttpRightsRegistry:
    return HttpRightsRegistry(Params(public_bytes(reg._key)), Peer(answers))  # type: ignore[arg-type]


def test_a_slot_comes_only_from_a_registry_signed_request() -> None:
    honest = registry()
    client = _client(honest, {"/v1/access-asks": honest.answer_access_ask})
    assert client.slot_of("resident-a") == 2
    forger = RightsRegistry.restore(
        load_catalog("city"), _signing_key_from_seed(b"\x07" * 32), SLOTS
    )
    lying = _client(honest, {"/v1/access-asks": forger.answer_access_ask})
    with pytest.raises(InvalidMessage):
        lying.slot_of("resident-a")


def test_a_grade_request_for_other_slots_is_refused() -> None:
    honest = registry()

    def other_slots(body: bytes) -> bytes:
        return honest.grade_request([0, 1], 24322)  # signed, but not what was asked

    client = _client(
        honest, {"/v1/access-asks": honest.answer_access_ask, "/v1/grade-asks": other_slots}
    )
    with pytest.raises(RightsRequestError):  # a slot never resolved through the registry
        client.grade_request([2], 24322)
    client.slot_of("resident-a")
    with pytest.raises(InvalidMessage):
        client.grade_request([2], 24322)
    honest_client = _client(
        honest,
        {"/v1/access-asks": honest.answer_access_ask, "/v1/grade-asks": honest.answer_grade_ask},
    )
    honest_client.slot_of("resident-a")
    assert honest_client.grade_request([2], 24322)


def test_an_access_request_for_other_periods_is_refused() -> None:
    honest = registry()

    def shifted(body: bytes) -> bytes:
        return honest.access_request("resident-a", 24300, 24322)

    with pytest.raises(InvalidMessage):
        _client(honest, {"/v1/access-asks": shifted}).access_request("resident-a", 24320, 24322)


def test_a_short_inclusion_batch_is_refused() -> None:
    peer = Peer({"/v1/adjustment-batches": lambda b: codec.encode(InclusionBatch((b"x",)))})
    agg = HttpRightsAggregator.__new__(HttpRightsAggregator)
    agg.peer = peer  # type: ignore[assignment]
    with pytest.raises(InvalidMessage):
        agg.ingest_adjustments([b"\x01a", b"\x02b"])
