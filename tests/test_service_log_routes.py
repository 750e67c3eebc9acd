"""The aggregator's public log routes (``psc/service/log_routes.py``), in process.

Answers are the log's own bytes and verify (a head under the aggregator key, a page that
rebuilds the signed root, a proof between two signed heads, records that hash to their
leaves); ranges are bounded; unknown records and sizes past the log are 404; malformed
input is 400 and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from psc.hazmat import merkle
from psc.protocol import codec
from psc.protocol.log_messages import MAX_PAGE_LEAVES, ConsistencyProof, LogLeaves
from psc.protocol.messages import LogEntry
from psc.protocol.signing import digest
from psc.service import log_routes
from psc.service.replica import open_tree_head
from tests._log_world import LogWorld, log_world

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[LogWorld]:
    with log_world(tmp_path) as w:
        w.submit(0, 1)
        w.submit(1, 2)
        yield w


def _size(w: LogWorld) -> int:
    return int(w.client.portal.call(lambda: w.open().ledger.log.size))  # type: ignore[union-attr]


def test_the_tree_head_is_the_latest_signed_one_and_verifies(world: LogWorld) -> None:
    r = world.client.get("/v1/log/tree-head")
    assert r.status_code == 200 and r.headers["content-type"] == "application/cbor"
    sth = open_tree_head(r.content, world.params.aggregator_key)
    assert sth.size == _size(world)


def test_pages_carry_the_logged_leaves_and_rebuild_the_signed_root(world: LogWorld) -> None:
    sth = open_tree_head(world.client.get("/v1/log/tree-head").content, world.params.aggregator_key)
    page = codec.decode(world.client.get(f"/v1/log/leaves/0/{sth.size}").content, LogLeaves)
    assert page.start == 0 and len(page.entries) == sth.size
    assert merkle.root(list(page.entries)) == sth.root
    tail = codec.decode(world.client.get(f"/v1/log/leaves/3/{sth.size}").content, LogLeaves)
    assert tail.start == 3 and tail.entries == page.entries[3:]


def test_a_page_ends_early_at_the_byte_bound_and_always_carries_a_leaf(
    world: LogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_routes, "MAX_PAGE_BYTES", 1)
    page = codec.decode(world.client.get("/v1/log/leaves/2/6").content, LogLeaves)
    assert page.start == 2 and len(page.entries) == 1


def test_a_consistency_proof_links_two_signed_sizes(world: LogWorld) -> None:
    size = _size(world)
    r = world.client.get(f"/v1/log/consistency/3/{size}")
    proof = codec.decode(r.content, ConsistencyProof)
    assert (proof.old_size, proof.new_size) == (3, size)
    old, new = world.client.portal.call(  # type: ignore[union-attr]
        lambda: (world.open().ledger.log.root(3), world.open().ledger.log.root(size))
    )
    merkle.verify_consistency(3, size, old, new, list(proof.proof))


def test_records_hash_to_their_leaf_digests(world: LogWorld) -> None:
    size = _size(world)
    page = codec.decode(world.client.get(f"/v1/log/leaves/0/{size}").content, LogLeaves)
    kinds = set()
    for leaf in page.entries:
        e = codec.decode(leaf, LogEntry)
        if e.kind == "submission":
            body = world.client.get(f"/v1/log/envelopes/{e.digest.hex()}").content
        elif e.kind == "registration":
            name = e.party.replace("#", "%23")
            body = world.client.get(f"/v1/log/parties/{name}").content
        else:
            continue
        kinds.add(e.kind)
        assert digest(body) == e.digest
    assert kinds == {"submission", "registration"}


def test_an_adjustment_is_served_from_the_rights_table(world: LogWorld) -> None:
    h = "ab" * 32
    assert world.client.get(f"/v1/log/adjustments/{h}").status_code == 404  # no table yet
    from psc.parties.rights.aggregator import ADJUSTMENT_SCHEMA

    def add() -> None:
        conn = world.open().ledger.connection  # type: ignore[attr-defined]
        for stmt in ADJUSTMENT_SCHEMA:
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO adjustments VALUES (?, 'a', 'correction', ?, 1, 1, ?, 0, ?, ?)",
            (bytes.fromhex(h), b"o" * 32, b"n" * 16, b"sealed adjustment", b"r" * 32),
        )

    world.client.portal.call(add)  # type: ignore[union-attr]
    r = world.client.get(f"/v1/log/adjustments/{h}")
    assert r.status_code == 200 and r.content == b"sealed adjustment"
    assert world.client.get(f"/v1/log/adjustments/{'cd' * 32}").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/log/leaves/0/0", 400),  # empty range
        ("/v1/log/leaves/5/2", 400),  # backwards
        (f"/v1/log/leaves/0/{MAX_PAGE_LEAVES + 1}", 400),  # wider than a page
        ("/v1/log/leaves/0/99", 404),  # past the end of the log
        ("/v1/log/leaves/01/3", 400),  # not canonical decimal
        ("/v1/log/leaves/-1/3", 400),
        ("/v1/log/leaves/0/99999999999999999999", 400),  # beyond 64 bits
        ("/v1/log/consistency/5/2", 400),
        ("/v1/log/consistency/0/99", 404),
        ("/v1/log/consistency/x/2", 400),
        (f"/v1/log/envelopes/{'00' * 32}", 404),
        (f"/v1/log/envelopes/{'AB' * 32}", 400),  # uppercase hex
        ("/v1/log/envelopes/abc", 400),
        ("/v1/log/parties/nobody", 404),
        ("/v1/log/parties/No%20Body", 400),
        ("/v1/log/parties/%23court", 400),
        (f"/v1/log/adjustments/{'g' * 64}", 400),
    ],
)
def test_bad_or_unknown_requests_are_refused_and_change_nothing(
    world: LogWorld, path: str, status: int
) -> None:
    before = world.digest_of()
    r = world.client.get(path)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "detail"}
    assert world.digest_of() == before


def test_before_any_head_the_tree_head_route_is_404(tmp_path: Path) -> None:
    with log_world(tmp_path) as w:

        def wipe() -> None:
            w.open().ledger.connection.execute("DELETE FROM log_tree_heads")  # type: ignore[attr-defined]

        w.client.portal.call(wipe)  # type: ignore[union-attr]
        assert w.client.get("/v1/log/tree-head").status_code == 404
