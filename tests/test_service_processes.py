"""Parties as real processes on 127.0.0.1: ``psc init``, ``psc serve``, and ``kill -9``.

Every server is started by :class:`psc.service.processes.Parties` and stopped when the
test ends, however it ends; every call has a timeout.  Keys are INSECURE 512-bit test keys.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from psc.catalog import Catalog, period_index, period_start
from psc.events import Event, EventTable
from psc.exceptions import DuplicateSubmission, InvalidMessage, UnknownParty
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.log_verify import verify_log
from psc.oracle import score
from psc.parties.agency import Agency
from psc.protocol.parameters import cap_bounds, delta_bounds
from psc.protocol.signing import digest
from psc.service.client import HttpAggregator, HttpPeer, PeerUnavailable
from psc.service.config import load_config, load_params
from psc.service.deploy import init_deployment, open_agencies, open_aggregator
from psc.service.processes import Parties
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(300)

N_SUBJECTS = 40


@pytest.fixture
def keypair() -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return insecure_keypair(0, 512)


@pytest.fixture
def deployment(tmp_path: Path, keypair: tuple[PaillierPublicKey, PaillierPrivateKey]) -> Path:
    return init_deployment(tmp_path / "dep", subjects=N_SUBJECTS, keypair=keypair)


@pytest.fixture
def parties() -> Iterator[Parties]:
    with Parties() as ps:
        yield ps


def _periods() -> list[int]:
    now = period_index(dt.datetime.now(dt.UTC).date())
    return [now - 2, now - 1]


def _events(catalog: Catalog, agency: Agency, period: int, slot: int) -> list[Event]:
    rule = next(r for r in catalog.rules if r.agency == agency.catalog_agency and r.delta != 0)
    day = period_start(period) + dt.timedelta(days=3)
    return [Event(slot, rule.id, day, digest(f"{agency.id}/{period}/{slot}".encode()).hex())]


def _envelopes(deployment: Path) -> tuple[list[bytes], list[Event]]:
    params = load_params(load_config(deployment / "aggregator.toml"))
    out, events = [], []
    for i, agency in enumerate(open_agencies(deployment, params)):
        for p in _periods():
            evs = _events(params.catalog, agency, p, (3 * i + p) % N_SUBJECTS)
            events += evs
            out.append(agency.submit(evs, p))
    return out, events


def _ledger_rows(path: Path) -> tuple[list[bytes], dict[tuple[int, str, str], int]]:
    """Envelope hashes, and each accumulator's contribution count, read from the file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        hashes = [bytes(r[0]) for r in conn.execute("SELECT envelope_hash FROM envelopes")]
        acc = {
            (int(p), str(c), str(lab)): int(n)
            for p, c, lab, n in conn.execute(
                "SELECT period, retention, label, contributions FROM accumulators"
            )
        }
    finally:
        conn.close()
    return hashes, acc


def test_init_writes_configs_and_refuses_a_used_directory(
    deployment: Path, keypair: tuple[PaillierPublicKey, PaillierPrivateKey]
) -> None:
    cfg = load_config(deployment / "aggregator.toml")
    assert cfg.role == "aggregator" and cfg.allow_insecure_key
    assert (deployment / "aggregator.key").stat().st_mode & 0o077 == 0
    from psc.exceptions import ServiceConfigError

    with pytest.raises(ServiceConfigError, match="not empty"):
        init_deployment(deployment, subjects=N_SUBJECTS, keypair=keypair)
    bad = deployment / "typo.toml"
    bad.write_text((deployment / "aggregator.toml").read_text() + 'ledgr = "x"\n')
    with pytest.raises(ServiceConfigError, match="did you mean 'ledger'"):
        load_config(bad)


def test_submissions_over_http_are_the_in_process_answers(
    deployment: Path, parties: Parties
) -> None:
    server = parties.start("aggregator", deployment / "aggregator.toml")
    with HttpPeer(server.url, timeout=60) as peer:
        _submit_and_refuse(deployment, HttpAggregator(peer))


def _submit_and_refuse(deployment: Path, agg: HttpAggregator) -> None:
    envelopes, _ = _envelopes(deployment)
    receipts = [agg.ingest(e) for e in envelopes]
    # a retried envelope is counted once: the same receipt, nothing added
    assert agg.ingest(envelopes[0]) == receipts[0]
    hashes, acc = _ledger_rows(deployment / "aggregator" / "ledger.sqlite")
    assert sorted(hashes) == sorted(digest(e) for e in envelopes)
    # refusals travel as the same exception classes, and change nothing
    with pytest.raises(InvalidMessage):
        agg.ingest(envelopes[1][:-1])
    with pytest.raises((UnknownParty, InvalidMessage)):
        agg.ingest(b"\xa0")
    assert _ledger_rows(deployment / "aggregator" / "ledger.sqlite") == (hashes, acc)
    with pytest.raises(KeyError):
        agg.log_inclusion(b"\x00" * 32)
    agg.log_inclusion(digest(envelopes[0]))
    # limits: a body over the route's limit (413), another media type (415); nothing changes
    url = agg.peer.base_url
    big = httpx.post(
        f"{url}/v1/reveal-requests",
        content=b"\x00" * (1024 * 1024 + 1),
        headers={"content-type": "application/cbor"},
        timeout=30,
    )
    assert big.status_code == 413 and big.json()["error"] == "BodyTooLarge"
    wrong = httpx.post(f"{url}/v1/submissions", content=envelopes[0], timeout=30)
    assert wrong.status_code == 415
    assert _ledger_rows(deployment / "aggregator" / "ledger.sqlite") == (hashes, acc)


def test_kill_9_during_concurrent_submissions_loses_no_acknowledged_envelope(
    deployment: Path, parties: Parties, keypair: tuple[PaillierPublicKey, PaillierPrivateKey]
) -> None:
    """kill -9 of the aggregator in a burst of concurrent submissions, then a restart from
    its files: every acknowledged envelope is there exactly once, none is half-applied,
    and resubmitting everything adds each envelope exactly once."""
    config = deployment / "aggregator.toml"
    ledger_path = deployment / "aggregator" / "ledger.sqlite"
    server = parties.start("aggregator", config)
    envelopes, events = _envelopes(deployment)
    acked: dict[bytes, bytes] = {}
    lock = threading.Lock()
    three = threading.Event()

    def submit(envelope: bytes) -> None:
        peer = HttpPeer(server.url, timeout=60, retries=0)
        try:
            receipt = HttpAggregator(peer).ingest(envelope)
        except PeerUnavailable:
            return
        finally:
            peer.close()
        with lock:
            acked[digest(envelope)] = receipt
            if len(acked) >= 3:
                three.set()

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(submit, e) for e in envelopes]
        assert three.wait(timeout=120), "no envelope was acknowledged"
        server.kill()
        for f in futures:
            f.result(timeout=120)
    assert 3 <= len(acked) < len(envelopes), "the kill came too late to test anything"

    hashes, acc = _ledger_rows(ledger_path)
    assert len(hashes) == len(set(hashes))
    assert set(acked) <= set(hashes)  # every acknowledged envelope survived
    # none half-applied: each accumulator counts exactly the logged envelopes that carry
    # its (class, label), and the log holds one submission entry per envelope
    assert acc == _expected_contributions(deployment, ledger_path)

    restarted = parties.start("aggregator", config)
    with HttpPeer(restarted.url, timeout=60) as peer:
        for e in envelopes:
            receipt = HttpAggregator(peer).ingest(e)
            if digest(e) in acked:
                assert receipt == acked[digest(e)]  # the same receipt: counted once
    restarted.stop()

    hashes, _ = _ledger_rows(ledger_path)
    assert sorted(hashes) == sorted(digest(e) for e in envelopes)
    aggregator = open_aggregator(load_config(config))
    try:
        report = verify_log(aggregator.ledger.connection, _aggregator_public(deployment))
        assert report.size == aggregator.ledger.log.size
        _, sk = keypair
        params = aggregator.params
        table = EventTable.from_events(params.catalog, events, N_SUBJECTS)
        last = _periods()[-1]
        live, _ = aggregator.live_sums(last)
        sums = params.backend().decrypt(live, sk)
        assert np.array_equal(params.catalog.scheme.base_score + sums, score(table, last).raw)
    finally:
        aggregator.ledger.close()
    with pytest.raises(DuplicateSubmission):
        _another_envelope_for_a_period(deployment)


def _expected_contributions(deployment: Path, path: Path) -> dict[tuple[int, str, str], int]:
    params = load_params(load_config(deployment / "aggregator.toml"))
    cat = params.catalog
    kind = {a.id: a.catalog_agency for a in open_agencies(deployment, params)}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = list(conn.execute("SELECT agency, period FROM envelopes"))
        leaves = int(conn.execute("SELECT COUNT(*) FROM log_leaves").fetchone()[0])
    finally:
        conn.close()
    registrations = len(kind) + 1  # every agency and the bank were logged at setup
    assert leaves == registrations + len(rows)
    out: dict[tuple[int, str, str], int] = {}
    for agency, period in rows:
        keys = [(c, "") for c in delta_bounds(cat, kind[agency])]
        keys += list(cap_bounds(cat, kind[agency]))
        for c, label in keys:
            out[(int(period), c, label)] = out.get((int(period), c, label), 0) + 1
    return out


def _aggregator_public(deployment: Path) -> object:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    params = load_params(load_config(deployment / "aggregator.toml"))
    return Ed25519PublicKey.from_public_bytes(params.aggregator_key)


def _another_envelope_for_a_period(deployment: Path) -> None:
    cfg = load_config(deployment / "aggregator.toml")
    aggregator = open_aggregator(cfg)
    try:
        agency = open_agencies(deployment, aggregator.params)[0]
        aggregator.ingest(agency.submit([], _periods()[-1]))
    finally:
        aggregator.ledger.close()


def test_init_and_serve_refuse_bad_input_with_exit_2(
    deployment: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from psc.cli.main import main

    assert main(["serve", "aggregator", "--config", str(tmp_path / "none.toml")]) == 2
    assert "psc init" in capsys.readouterr().err
    assert main(["serve", "member", "--config", str(deployment / "aggregator.toml")]) == 2
    assert "configures 'aggregator'" in capsys.readouterr().err
    assert main(["init", str(deployment)]) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as bad_port:
        main(["serve", "aggregator", "--config", "x", "--port", "70000"])
    assert bad_port.value.code == 2 and "--port" in capsys.readouterr().err


def test_the_listening_socket_says_it_is_tcp() -> None:
    """asyncio sets TCP_NODELAY on accepted connections only when the listening socket's
    protocol is IPPROTO_TCP; with proto 0 every response waited about 40 ms for the
    client's delayed ACK (measured: health round trip 42 ms before, 1.2 ms after)."""
    import socket

    from psc.service.serve import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_psc_init_writes_a_committee_deployment_and_refuses_k_above_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``psc init --committee K N``: a config per member and the key holder as combiner;
    every config it writes loads; K above N exits 2 and writes nothing."""
    from psc.cli.main import main

    root = tmp_path / "dep"
    args = ["init", str(root), "--subjects", "8", "--key-bits", "512"]
    assert main([*args, "--committee", "2", "3"]) == 0
    assert "psc serve member" in capsys.readouterr().out
    members = sorted(root.glob("member-*.toml"))
    assert [m.name for m in members] == ["member-1.toml", "member-2.toml", "member-3.toml"]
    for cfg in [*members, root / "key_holder.toml", root / "registry.toml"]:
        load_config(cfg)
    assert load_config(root / "key_holder.toml").committee == "committee.json"
    assert main(["init", str(tmp_path / "other"), "--committee", "3", "2"]) == 2
    assert "K must be at most N" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
