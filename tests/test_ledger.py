"""The SQLite ledger: WAL, explicit transactions, rollback of log and state together."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from psc.ledger.log_verify import verify_log
from psc.ledger.store import (
    AccumulatorRecord,
    EnvelopeRecord,
    PartyRecord,
    RevealRecord,
    SQLiteLedger,
)
from psc.protocol.signing import _signing_key_from_seed

KEY = _signing_key_from_seed(bytes(32))


def env(i: int, agency: str = "tax-bureau", period: int = 100) -> EnvelopeRecord:
    return EnvelopeRecord(bytes([i]) * 32, agency, period, bytes([i]) * 16, i, b"env", b"rcpt")


def ledger(path: str | Path = ":memory:") -> SQLiteLedger:
    return SQLiteLedger(path, signer=KEY, clock_ms=lambda: 1_000)


def test_wal_mode_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    led = ledger(path)
    assert led.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with led.transaction():
        led.put_party(PartyRecord("tax-bureau", "agency", "tax-bureau", bytes(32), (), b"reg"))
        led.put_envelope(env(0))
        led.log.append(b"entry-0")
        led.log.sign_tree_head()
        led.put_accumulator(AccumulatorRecord(100, "negative", "", b"ct", 30, 1))
        led.put_reveal(
            RevealRecord(bytes(32), bytes(32), "bank", "credit-assessment", 100, 1, 1, b"r")
        )
    digest = led.state_digest()
    led.close()
    again = ledger(path)
    assert again.state_digest() == digest
    assert again.party("tax-bureau") == PartyRecord(
        "tax-bureau", "agency", "tax-bureau", bytes(32), (), b"reg"
    )
    assert again.envelope(bytes(32)) == env(0)
    assert again.envelope_for("tax-bureau", 100) == env(0)
    assert again.nonce_owner("tax-bureau", bytes(16)) == bytes(32)
    assert again.accumulator(100, "negative", "") == AccumulatorRecord(
        100, "negative", "", b"ct", 30, 1
    )
    assert [r.requester for r in again.reveals()] == ["bank"]
    assert again.reveal(bytes(32)) is not None
    assert again.log.size == 1 and verify_log(again.connection, KEY.public_key()).size == 1
    assert again.parties("agency")[0].party == "tax-bureau" and again.parties("relying-party") == []


def test_an_exception_rolls_back_log_and_state_together() -> None:
    led = ledger()
    with led.transaction():
        led.put_envelope(env(0))
        led.log.append(b"first")
    before = led.state_digest()
    with pytest.raises(RuntimeError, match="boom"), led.transaction():
        led.put_envelope(env(1, period=101))
        led.log.append(b"second")
        led.put_accumulator(AccumulatorRecord(100, "short", "", b"ct", 5, 1))
        raise RuntimeError("boom")
    assert led.state_digest() == before
    assert led.log.size == 1 and led.envelope(bytes([1]) * 32) is None
    assert led.log.root() == led.log.root(1)


def test_constraints_refuse_a_second_envelope_per_period_and_reused_nonces() -> None:
    led = ledger()
    with led.transaction():
        led.put_envelope(env(0))
    before = led.state_digest()
    other_period = EnvelopeRecord(bytes([9]) * 32, "tax-bureau", 100, bytes([9]) * 16, 1, b"", b"")
    same_nonce = EnvelopeRecord(bytes([8]) * 32, "tax-bureau", 101, bytes(16), 1, b"", b"")
    for rec in (other_period, same_nonce):
        with pytest.raises(sqlite3.IntegrityError), led.transaction():
            led.put_envelope(rec)
        assert led.state_digest() == before


def test_writes_outside_a_transaction_are_refused() -> None:
    led = ledger()
    with pytest.raises(RuntimeError, match=r"inside ledger\.transaction"):
        led.put_envelope(env(0))
    with pytest.raises(RuntimeError):
        led.put_catalog("h", "city", "")


def test_nested_transactions_join_the_outer_one() -> None:
    led = ledger()
    with pytest.raises(ValueError), led.transaction():
        with led.transaction():
            led.put_envelope(env(0))
        raise ValueError("outer fails")
    assert led.envelopes() == []
    with led.transaction():
        with led.transaction():
            led.put_envelope(env(0))
        led.put_envelope(env(1, period=101))
    assert len(led.envelopes()) == 2 and led.envelope_count() == 2


def test_state_digest_sees_every_change() -> None:
    led = ledger()
    seen = {led.state_digest()}
    with led.transaction():
        led.put_catalog("h", "city", "")
    seen.add(led.state_digest())
    with led.transaction():
        led.put_accumulator(AccumulatorRecord(1, "short", "", b"a", 1, 1))
    seen.add(led.state_digest())
    with led.transaction():
        led.put_accumulator(AccumulatorRecord(1, "short", "", b"b", 1, 1))
    seen.add(led.state_digest())
    assert len(seen) == 4
    assert led.catalog_versions() == ["h"]


def test_a_ledger_of_another_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="fresh database"):
        ledger(path)


def test_a_failed_commit_rolls_back_and_leaves_the_ledger_usable() -> None:
    """COMMIT itself can fail (here a deferred foreign key; on disk also SQLITE_FULL or I/O):
    the transaction is rolled back, nothing of it stays, and the next one works."""
    led = ledger()
    conn = led.connection
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TABLE child (id INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with led.transaction():
        led.put_envelope(env(0))
        led.log.append(b"first")
        led.log.sign_tree_head()
    before = led.state_digest()
    with pytest.raises(sqlite3.IntegrityError), led.transaction():
        led.put_envelope(env(1, period=101))
        led.log.append(b"second")
        conn.execute("INSERT INTO child VALUES (7)")  # only COMMIT sees the violation
    assert not conn.in_transaction
    assert led.state_digest() == before and led.log.size == 1
    with led.transaction():  # BEGIN IMMEDIATE again: no transaction left dangling
        led.put_envelope(env(2, period=102))
        led.log.append(b"second")
        led.log.sign_tree_head()
    assert led.log.size == 2 and verify_log(conn, KEY.public_key()).size == 2
