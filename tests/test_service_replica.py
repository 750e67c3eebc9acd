"""The verified log replica (``psc/service/replica.py``) against an honest and a lying
aggregator, in process.

Honest: the replica's live sums are the aggregator's file's, bit for bit; it fetches only
what it lacks, syncs on demand and proves consistency from its own copy.  Lying (each
refused with ``InvalidMessage`` naming what differed, the replica's file unchanged): two
signed heads for one size, a history that forks before a larger head, a rewritten leaf, an
envelope that does not hash to its leaf, a head signed with another key, a shrinking log,
a page that starts elsewhere.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.exceptions import InvalidMessage
from psc.ledger.translog import tree_head_bytes
from psc.protocol import codec
from psc.protocol.log_messages import LogLeaves
from psc.protocol.logview import LedgerLogView, stored_adjustment
from psc.protocol.messages import LogEntry, TreeHead
from psc.service.replica import LogReplica
from tests._log_world import LogWorld, LyingSource, log_world, period

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[LogWorld]:
    with log_world(tmp_path) as w:
        yield w


def _replica(w: LogWorld, path: Path, source: LyingSource | None = None) -> LogReplica:
    return LogReplica(w.params, source or LyingSource(w.client), path)


def _file_digest(path: Path) -> str:
    """Every row of every table of the replica's file (read-only)."""
    h = hashlib.sha256()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY 1"):
            h.update(t.encode())
            for row in conn.execute(f'SELECT * FROM "{t}" ORDER BY 1'):
                h.update(repr(row).encode())
    finally:
        conn.close()
    return h.hexdigest()


def _head(w: LogWorld, ledger: Path | None = None) -> tuple[int, bytes]:
    agg = w.open(ledger)
    sth = w.client.portal.call(agg.ledger.log.latest_tree_head)  # type: ignore[union-attr]
    assert sth is not None
    return sth.size, sth.root


def _refused(rep: LogReplica, path: Path, match: str) -> None:
    before, held = _file_digest(path), rep.head()
    with pytest.raises(InvalidMessage, match=match):
        rep.sync()
    assert _file_digest(path) == before and rep.head() == held


def test_the_replica_sums_what_the_aggregator_file_sums(world: LogWorld, tmp_path: Path) -> None:
    world.submit(0, 1)
    source = LyingSource(world.client)
    rep = _replica(world, tmp_path / "r.sqlite", source)
    size, root = _head(world)
    direct = LedgerLogView(world.params, world.ledger)
    assert rep.live_sums(period(), size, root).by_label == (
        direct.live_sums(period(), size, root).by_label
    )
    assert rep.size == size and rep.head() is not None
    bank = tomllib.loads((world.root / "bank.toml").read_text())["id"]
    assert rep.requester(bank) == direct.requester(bank)

    # the next reveal names a larger head: the replica fetches only what it lacks
    world.submit(1, 2)
    source.paths.clear()
    size2, root2 = _head(world)
    live = rep.live_sums(period(), size2, root2)
    assert live.by_label == direct.live_sums(period(), size2, root2).by_label
    assert source.paths[:3] == [
        "/v1/log/tree-head",
        f"/v1/log/consistency/{size}/{size2}",
        f"/v1/log/leaves/{size}/{size2}",
    ]
    assert len(source.paths) == 4 and source.paths[3].startswith("/v1/log/envelopes/")

    # consistency proofs from its own copy, equal to the aggregator's
    prove = rep.prover()
    assert prove is not None
    agg_log = world.open().ledger.log
    want = world.client.portal.call(agg_log.consistency_proof, 3, size2)  # type: ignore[union-attr]
    assert list(prove(3, size2)) == want

    # nothing new: one head fetched, nothing else; a reopened replica resumes
    source.paths.clear()
    rep.sync()
    assert source.paths == ["/v1/log/tree-head"]
    again = _replica(world, tmp_path / "r.sqlite", source)
    assert again.size == size2


def test_a_replica_refuses_a_root_it_does_not_hold(world: LogWorld, tmp_path: Path) -> None:
    world.submit(0, 1)
    rep = _replica(world, tmp_path / "r.sqlite")
    size, _ = _head(world)
    rep.sync()
    with pytest.raises(InvalidMessage, match="root at size"):
        rep.live_sums(period(), size, bytes(32))


def test_two_signed_heads_for_one_size_are_a_fork(world: LogWorld, tmp_path: Path) -> None:
    fork = world.snapshot("fork")
    world.submit(0, 1)
    world.submit(1, 2, ledger=fork)
    assert _head(world)[0] == _head(world, fork)[0]
    path = tmp_path / "r.sqlite"
    rep = _replica(world, path)
    rep.sync()
    world.serve(fork)
    _refused(rep, path, "forked log: the aggregator signed two different roots")


def test_a_larger_head_over_another_history_is_refused(world: LogWorld, tmp_path: Path) -> None:
    fork = world.snapshot("fork")
    world.submit(0, 1)
    world.submit(1, 2, ledger=fork)
    world.submit(2, 3, ledger=fork)
    path = tmp_path / "r.sqlite"
    rep = _replica(world, path)
    rep.sync()
    world.serve(fork)
    _refused(rep, path, "does not extend the held head")


def test_a_shrinking_log_is_refused(world: LogWorld, tmp_path: Path) -> None:
    world.submit(0, 1)
    early = world.snapshot("early")
    world.submit(1, 2)
    path = tmp_path / "r.sqlite"
    rep = _replica(world, path)
    rep.sync()
    world.serve(early)
    _refused(rep, path, "the log shrank")


def _rewrite_leaf(path: str, body: bytes) -> bytes:
    if not path.startswith("/v1/log/leaves/"):
        return body
    page = codec.decode(body, LogLeaves)
    entries = list(page.entries)
    for i, leaf in enumerate(entries):
        e = codec.decode(leaf, LogEntry)
        if e.kind == "submission":  # the same envelope, logged for another period
            entries[i] = codec.encode(e.__class__(**{**e.__dict__, "period": e.period + 1}))
    return codec.encode(LogLeaves(page.start, tuple(entries)))


def _flip_envelope(path: str, body: bytes) -> bytes:
    if path.startswith("/v1/log/envelopes/"):
        return body[:-1] + bytes([body[-1] ^ 1])
    return body


def _other_key(path: str, body: bytes) -> bytes:
    if path != "/v1/log/tree-head":
        return body
    th = codec.decode(body, TreeHead)
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    sig = key.sign(tree_head_bytes(th.size, th.root, th.timestamp_ms))
    return codec.encode(TreeHead(th.size, th.root, th.timestamp_ms, sig))


def _shifted_page(path: str, body: bytes) -> bytes:
    if not path.startswith("/v1/log/leaves/"):
        return body
    page = codec.decode(body, LogLeaves)
    return codec.encode(LogLeaves(page.start + 1, page.entries))


@pytest.mark.parametrize(
    ("lie", "match"),
    [
        (_rewrite_leaf, "do not rebuild the signed root"),
        (_flip_envelope, "does not hash to the leaf's digest"),
        (_other_key, "not signed by the aggregator key"),
        (_shifted_page, "holds leaves"),
    ],
    ids=["rewritten-leaf", "envelope-not-its-digest", "head-of-another-key", "shifted-page"],
)
@pytest.mark.parametrize("held", [False, True], ids=["first-sync", "extension"])
def test_a_lying_aggregator_is_refused_and_the_replica_is_unchanged(
    world: LogWorld, tmp_path: Path, lie: object, match: str, held: bool
) -> None:
    path = tmp_path / "r.sqlite"
    source = LyingSource(world.client)
    rep = _replica(world, path, source)
    if held:
        rep.sync()  # the registrations, honestly served
    world.submit(0, 1)
    source.lie = lie  # type: ignore[assignment]
    _refused(rep, path, match)
    size, root = _head(world)
    with pytest.raises(InvalidMessage):  # the on-demand sync refuses the same way
        rep.live_sums(period(), size, root)
    source.lie = None
    rep.sync()  # and the honest log is taken once it is served honestly
    assert rep.size == size


def test_a_member_whose_log_is_a_url_checks_against_a_replica_next_to_its_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``psc/service/deploy.py``: a member config whose ``log`` is the aggregator's URL
    loads without the aggregator's file and opens a replica at
    ``members/member-<i>.log.sqlite`` (nothing is fetched until a check needs it);
    ``psc serve --log-url`` takes a member and an http:// URL, and refuses anything else
    with exit 2 before it listens."""
    from protocols.gen_reveal_dp import test_primes as shipped_primes
    from psc.cli.main import main
    from psc.hazmat.threshold.dealer import deal
    from psc.service.config import load_config, load_params
    from psc.service.deploy import init_deployment, party_log_view
    from psc.service.serve import build_app

    tpk, shares = deal(2, 3, bits=512, allow_insecure=True, _primes=shipped_primes(512))
    root = init_deployment(tmp_path / "dep", subjects=8, committee=(tpk, shares))
    toml = root / "member-1.toml"
    text = toml.read_text().replace(
        'log = "aggregator/ledger.sqlite"', 'log = "http://127.0.0.1:9"'
    )
    toml.write_text(text)
    (root / "aggregator" / "ledger.sqlite").rename(root / "aggregator" / "elsewhere.sqlite")
    cfg = load_config(toml)
    view = party_log_view(cfg, load_params(cfg))
    assert isinstance(view, LogReplica) and view.size == 0
    assert (root / "members" / "member-1.log.sqlite").is_file()
    assert build_app(cfg).title == "psc committee member 1"

    agg = str(root / "aggregator.toml")
    assert main(["serve", "aggregator", "--config", agg, "--log-url", "http://127.0.0.1:9"]) == 2
    assert "--log-url takes a member" in capsys.readouterr().err
    assert main(["serve", "member", "--config", str(toml), "--log-url", "ledger.sqlite"]) == 2
    assert "http:// URL" in capsys.readouterr().err


def test_a_logged_adjustment_is_replicated_and_summed(
    tmp_path: Path, city: Any, test_keypair: Any
) -> None:
    """A rights correction on a file ledger: the replica fetches the adjustment its leaf
    names, and sums it as the aggregator's file does; an adjustment whose bytes are not
    its leaf's is refused."""
    from types import SimpleNamespace

    from fastapi import FastAPI

    from psc.ledger.store import SQLiteLedger
    from psc.service.log_routes import add_log_routes
    from psc.sim.city import agency_instances
    from psc.sim.rights_deployment import setup_rights
    from psc.sim.sources import seeded_randbytes
    from tests import test_rights_e2e as e2e
    from tests._log_world import TestClient, _Deferred

    clock = e2e.SimulatedClock(e2e.START)
    ledger = tmp_path / "rights-ledger.sqlite"
    r = setup_rights(
        city,
        agency_instances(city),
        e2e.N,
        test_keypair,
        clock=clock,
        desk_db=sqlite3.connect(":memory:"),
        key_holder_db=sqlite3.connect(":memory:"),
        randbytes=seeded_randbytes("replica-adjustment"),
        ledger_path=str(ledger),
    )
    clock.advance(seconds=(e2e.NOW - e2e.START).total_seconds())
    events = [e2e.ev(r, 3, "court.judgment-default", e2e.P1)]
    e2e.submit(r, events, [e2e.P1, e2e.P1 + 1, e2e.P1 + 2])
    at = e2e.P1 + 3
    access = r.office.verified_access(e2e.ident(3), first_period=e2e.P1, at=at)
    (judgment,) = access.events
    r.office.grant_correction(r.office.open_correction(e2e.ident(3), judgment.ref).id)

    shim = _Deferred()
    with TestClient(shim) as client:

        def app() -> FastAPI:
            served = FastAPI()
            add_log_routes(served, SimpleNamespace(ledger=SQLiteLedger(ledger)))  # type: ignore[arg-type]
            return served

        shim.app = client.portal.call(app)  # type: ignore[union-attr]
        source = LyingSource(client)
        params = r.deployment.params
        direct = LedgerLogView(params, ledger)
        head = SQLiteLedger(ledger).tree_head()
        assert head is not None

        lying = LogReplica(params, LyingSource(client, lie=_flip_adjustment), tmp_path / "l.sqlite")
        with pytest.raises(InvalidMessage, match="does not hash to the leaf's digest"):
            lying.sync()
        assert lying.size == 0

        rep = LogReplica(params, source, tmp_path / "r.sqlite")
        live = rep.live_sums(at, head.size, head.root)
        assert any(p.startswith("/v1/log/adjustments/") for p in source.paths)
        assert live.by_label == direct.live_sums(at, head.size, head.root).by_label
        (h,) = [
            bytes.fromhex(p.rsplit("/", 1)[1])
            for p in source.paths
            if p.startswith("/v1/log/adjustments/")
        ]
        assert stored_adjustment(SQLiteLedger(tmp_path / "r.sqlite"), h) == stored_adjustment(
            SQLiteLedger(ledger), h
        )


def _flip_adjustment(path: str, body: bytes) -> bytes:
    if path.startswith("/v1/log/adjustments/"):
        return body[:-1] + bytes([body[-1] ^ 1])
    return body
