"""A dishonest aggregator rewrites its history: caught by ``psc log verify`` and by the parties.

Each attack edits the aggregator's own SQLite file, as an aggregator controlling its disk
can, and re-signs with its own key where the attack needs signatures.  For each: the log's
own tables still verify (the gap issue 16 reported), and then the rewrite is detected by
``psc log verify`` given what a party holds (heads, receipts) or by the ledger audit, and
by the parties themselves (agencies and the key holder keep every head they are shown).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from psc.catalog import Catalog, period_index
from psc.cli.main import main
from psc.events import Event
from psc.exceptions import LogVerificationFailed
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.log_verify import verify_log
from psc.ledger.store import SQLiteLedger
from psc.ledger.translog import TransparencyLog
from psc.parties.relying_party import read_grades
from psc.policy.clock import SimulatedClock
from psc.protocol.heads import HeadKeeper, gossip
from psc.protocol.log_audit import audit_ledger, verify_receipts
from psc.protocol.signing import digest
from psc.sim.city import agency_instances
from psc.sim.rights_deployment import RightsDeployment, setup_rights
from psc.sim.sources import seeded_randbytes

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
P1 = period_index(START.date())
N = 12


def world(catalog: Catalog, keypair: Keypair, path: Path) -> RightsDeployment:
    clock = SimulatedClock(START)
    r = setup_rights(
        catalog,
        agency_instances(catalog),
        N,
        keypair,
        clock=clock,
        desk_db=sqlite3.connect(":memory:"),
        key_holder_db=sqlite3.connect(":memory:"),
        randbytes=seeded_randbytes("aggregator-log-attacks"),
        ledger_path=str(path),
    )
    cat = r.deployment.params.catalog
    events = [
        Event(
            r.registry.slot_of("resident-0000001"),
            "tax.arrears",
            dt.date(2026, 1, 9),
            digest(b"e1").hex(),
        ),
        Event(
            r.registry.slot_of("resident-0000002"),
            "traffic.violation",
            dt.date(2026, 1, 9),
            digest(b"e2").hex(),
        ),
    ]
    for p in (P1, P1 + 1):
        for a in r.agencies:
            mine = [
                e for e in events if e.period == p and cat.rule(e.rule).agency == a.catalog_agency
            ]
            a.accept_receipt(r.aggregator.ingest(a.submit(mine, p)))
        clock.advance(days=31)
    # the key holder sees heads through reveals
    d = r.deployment
    req = r.registry.grade_request(range(N), P1 + 1)
    answer = d.key_holder.answer(d.aggregator.prepare_reveal(req))
    d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    read_grades(d.params, req, answer.response)
    return r


def log_key(r: RightsDeployment) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(r.deployment.params.aggregator_key)


def key_arg(r: RightsDeployment) -> str:
    return r.deployment.params.aggregator_key.hex()


def held_files(tmp: Path, keeper: HeadKeeper, name: str) -> tuple[str, str]:
    heads, receipts = keeper.export_json()
    hp, rp = tmp / f"{name}-heads.json", tmp / f"{name}-receipts.json"
    hp.write_text(heads, "utf-8")
    rp.write_text(receipts, "utf-8")
    return str(hp), str(rp)


def verify_cli(db: Path, key: str, *extra: str) -> int:
    return main(["log", "verify", "--db", str(db), "--public-key", key, *extra])


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def test_honest_ledger_passes_every_audit(
    city: Catalog, test_keypair: Keypair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ledger.sqlite"
    r = world(city, test_keypair, db)
    agency = r.agencies[0]
    heads, receipts = held_files(tmp_path, agency.heads, "agency")
    kh_heads, _ = held_files(tmp_path, r.deployment.key_holder.heads, "kh")
    assert agency.heads.receipts() and r.deployment.key_holder.heads.heads()
    assert verify_cli(db, key_arg(r), "--trusted-head", kh_heads, "--receipts", receipts) == 0
    out = capsys.readouterr().out
    assert "receipts      2" in out and "envelope" in out
    conn = _raw(db)
    audit = audit_ledger(conn, backend=r.deployment.params.backend())
    assert audit.recomputed and audit.envelopes == 2 * len(r.agencies) and audit.reveals == 1
    assert agency.audit_aggregator(r.aggregator.log_inclusion) == 2
    assert heads  # the agency's keeper also exports heads (from inclusions)


def test_deleted_envelope_row_is_caught(
    city: Catalog, test_keypair: Keypair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ledger.sqlite"
    r = world(city, test_keypair, db)
    victim = r.agencies[0]
    _, receipts = held_files(tmp_path, victim.heads, "victim")
    (env_hash,) = [
        bytes(h)
        for (h,) in _raw(db).execute(
            "SELECT envelope_hash FROM envelopes WHERE agency = ? AND period = ?", (victim.id, P1)
        )
    ]
    # the attack: the row goes, its log leaf and its accumulator contribution stay
    conn = _raw(db)
    conn.execute("DELETE FROM nonces WHERE envelope_hash = ?", (env_hash,))
    conn.execute("DELETE FROM envelopes WHERE envelope_hash = ?", (env_hash,))
    verify_log(conn, log_key(r))  # the log's own tables: still fine (the gap)
    verify_receipts(conn, log_key(r), victim.heads.receipts())  # the log itself is intact
    with pytest.raises(LogVerificationFailed) as info:
        audit_ledger(conn)
    assert info.value.problem == "missing-row"
    assert verify_cli(db, key_arg(r), "--receipts", receipts) == 1
    assert "missing-row" in capsys.readouterr().err
    # the party: the agency asks for what it holds a receipt for
    fresh = SQLiteLedger(db)  # the aggregator, restarted on its edited file
    r.aggregator.ledger = fresh
    with pytest.raises(LogVerificationFailed) as info:
        victim.audit_aggregator(r.aggregator.log_inclusion)
    assert info.value.problem == "missing-row"


def _truncate_and_reappend(r: RightsDeployment, db: Path, keep: int) -> SQLiteLedger:
    """The aggregator cuts its log at ``keep`` leaves, appends other entries and re-signs."""
    conn = _raw(db)
    size = conn.execute("SELECT COUNT(*) FROM log_leaves").fetchone()[0]
    conn.execute("DELETE FROM log_leaves WHERE idx >= ?", (keep,))
    conn.execute("DELETE FROM log_tree_heads WHERE size > ?", (keep,))
    conn.close()
    led = SQLiteLedger(db, signer=r.aggregator._key, clock_ms=lambda: 1_900_000_000_000)
    with led.transaction():
        for i in range(keep, size + 1):
            led.log.append(b"a different history %d" % i)
            led.log.sign_tree_head()
    return led


def test_truncate_and_reappend_with_resigned_heads_is_caught(
    city: Catalog, test_keypair: Keypair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ledger.sqlite"
    r = world(city, test_keypair, db)
    agency, kh = r.agencies[0], r.deployment.key_holder
    heads, _ = held_files(tmp_path, kh.heads, "kh")
    _, agency_receipts = held_files(tmp_path, agency.heads, "agency")
    assert json.loads(Path(agency_receipts).read_text("utf-8"))  # the agency holds receipts
    led = _truncate_and_reappend(r, db, keep=len(r.agencies))  # cut inside period 2
    conn = _raw(db)
    report = verify_log(conn, log_key(r))  # re-signed: the log's own tables verify
    assert report.tree_heads > 0
    # psc log verify with what the parties hold
    with pytest.raises(LogVerificationFailed) as info:
        verify_log(conn, log_key(r), trusted_heads=kh.heads.heads())
    assert info.value.problem in ("rewritten", "truncated")
    assert verify_cli(db, key_arg(r), "--trusted-head", heads) == 1
    assert "rewritten" in capsys.readouterr().err
    assert verify_cli(db, key_arg(r), "--receipts", agency_receipts) == 1
    assert "rewritten" in capsys.readouterr().err
    # the parties, shown the new head with the rewritten log's own consistency proofs
    new_head = led.log.latest_tree_head()
    assert new_head is not None
    for keeper in (agency.heads, kh.heads):
        with pytest.raises(LogVerificationFailed) as info:
            keeper.observe_head(new_head, led.log.consistency_proof)
        assert info.value.problem in ("rewritten", "equivocation")
        assert keeper.conflicts  # with the signed evidence


def test_two_heads_for_one_size_are_caught_by_gossip_and_verify(
    city: Catalog, test_keypair: Keypair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ledger.sqlite"
    r = world(city, test_keypair, db)
    kh = r.deployment.key_holder
    real = kh.heads.heads()[-1]
    # the aggregator signs a second head for the same size over another history, and shows
    # it to one agency only (a split view)
    shadow = TransparencyLog(sqlite3.connect(":memory:"), r.aggregator._key, clock=lambda: 1)
    for i in range(real.size):
        shadow.append(b"shadow %d" % i)
    forged = shadow.sign_tree_head()
    assert forged.size == real.size and forged.root != real.root
    victim = HeadKeeper(log_key(r))
    victim.observe_head(forged)  # alone, the victim cannot tell
    with pytest.raises(LogVerificationFailed) as info:
        gossip(victim, kh.heads)
    assert info.value.problem == "equivocation"
    (conflict,) = victim.conflicts
    assert {json.loads(e)["root"] for e in conflict.evidence} == {
        real.root.hex(),
        forged.root.hex(),
    }
    # psc log verify given both heads, or the forged one alone
    both = tmp_path / "both.json"
    both.write_text(json.dumps([real.to_json(), forged.to_json()]), "utf-8")
    assert verify_cli(db, key_arg(r), "--trusted-head", str(both)) == 1
    assert "equivocation" in capsys.readouterr().err
    one = tmp_path / "one.json"
    one.write_text(json.dumps(forged.to_json()), "utf-8")
    assert verify_cli(db, key_arg(r), "--trusted-head", str(one)) == 1
    assert "rewritten" in capsys.readouterr().err


def test_a_keeper_remembers_across_restarts(
    city: Catalog, test_keypair: Keypair, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.sqlite"
    r = world(city, test_keypair, db)
    store = tmp_path / "party.sqlite"
    keeper = HeadKeeper(log_key(r), sqlite3.connect(store))
    for h in r.deployment.key_holder.heads.heads():
        keeper.observe_head(h)
    held = keeper.heads()
    again = HeadKeeper(log_key(r), sqlite3.connect(store))  # after a restart
    assert again.heads() == held
    led = _truncate_and_reappend(r, db, keep=2)
    new = led.log.latest_tree_head()
    assert new is not None
    with pytest.raises(LogVerificationFailed):
        again.observe_head(new, led.log.consistency_proof)


@pytest.mark.parametrize("bad", ["not json", '{"size": 1}', '[["x"]]'])
def test_unreadable_head_and_receipt_files_exit_2(
    city: Catalog,
    test_keypair: Keypair,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    bad: str,
) -> None:
    db = tmp_path / "ledger.sqlite"
    r = world(city, test_keypair, db)
    f = tmp_path / "f.json"
    f.write_text(bad, "utf-8")
    assert verify_cli(db, key_arg(r), "--trusted-head", str(f)) == 2
    assert verify_cli(db, key_arg(r), "--receipts", str(f)) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "Traceback" not in err


def test_receipts_not_from_this_log_are_refused(
    city: Catalog, test_keypair: Keypair, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.sqlite"
    r = world(city, test_keypair, db)
    conn = _raw(db)
    with pytest.raises(LogVerificationFailed) as info:
        verify_receipts(conn, log_key(r), [digest(b"not a receipt")])
    assert info.value.problem == "bad-receipt"
