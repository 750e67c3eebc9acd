"""The SQLite transparency log: appends, proofs, signed tree heads, transactions owned by
the caller, and an audit (verify_log) that catches tampering done directly on the rows."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.exceptions import InvalidMessage, LogFormatError, LogVerificationFailed
from psc.hazmat import merkle
from psc.ledger.log_verify import verify_log
from psc.ledger.translog import (
    TREE_HEAD_DOMAIN,
    SignedTreeHead,
    TransparencyLog,
    tree_head_bytes,
    verify_tree_head_signature,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = KEY.public_key()
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()


def entry(k: int) -> bytes:
    """A stand-in for an envelope digest: opaque, no personal data."""
    return hashlib.sha256(b"envelope %d" % k).digest()


class Clock:
    """A deterministic millisecond clock that ticks 1000 ms per reading."""

    def __init__(self, start: int = 1_760_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1000
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "ledger.db")
    yield conn
    conn.close()


@pytest.fixture
def log(db: sqlite3.Connection) -> TransparencyLog:
    return TransparencyLog(db, KEY, clock=Clock())


def fill(log: TransparencyLog, db: sqlite3.Connection, heads_at: tuple[int, ...]) -> None:
    """Append entries 0..max(heads_at)-1 (plus two unsigned), signing a head at each size."""
    k = 0
    for size in heads_at:
        while k < size:
            log.append(entry(k))
            k += 1
        log.sign_tree_head()
        db.commit()
    log.append(entry(k))
    log.append(entry(k + 1))
    db.commit()


# -- appending and proving ------------------------------------------------------------


def test_append_root_and_proofs_match_the_merkle_reference(
    log: TransparencyLog, db: sqlite3.Connection
) -> None:
    entries = [entry(k) for k in range(13)]
    for k, e in enumerate(entries):
        assert log.append(e) == k
        if k % 4 == 0:
            db.commit()
    db.commit()
    assert log.size == 13
    assert log.entry(5) == entries[5]
    assert log.root() == merkle.root(entries)
    for size in (1, 6, 13):
        r = log.root(size)
        assert r == merkle.root(entries[:size])
        for i in range(size):
            merkle.verify_inclusion(entries[i], i, size, log.inclusion_proof(i, size), r)
        for old in range(size + 1):
            merkle.verify_consistency(old, size, log.root(old), r, log.consistency_proof(old, size))
    with pytest.raises(ValueError, match="out of range"):
        log.inclusion_proof(13, 13)
    with pytest.raises(ValueError, match="out of range"):
        log.root(14)
    with pytest.raises(ValueError, match="out of range"):
        log.entry(13)
    with pytest.raises(ValueError, match="a log entry must be bytes"):
        log.append("not bytes")  # type: ignore[arg-type]


def test_signed_tree_head(log: TransparencyLog, db: sqlite3.Connection) -> None:
    for k in range(5):
        log.append(entry(k))
    sth = log.sign_tree_head()
    db.commit()
    assert (sth.size, sth.root) == (5, log.root())
    assert sth.signed_bytes() == (
        b"psc/v1/tree-head\x00"
        + (5).to_bytes(8, "big")
        + sth.timestamp_ms.to_bytes(8, "big")
        + sth.root
    )
    assert TREE_HEAD_DOMAIN == b"psc/v1/tree-head\x00"
    PUB.verify(sth.signature, sth.signed_bytes())  # plain Ed25519 over those bytes
    verify_tree_head_signature(sth, PUB)
    log.verify_tree_head(sth, PUB)
    assert log.latest_tree_head() == sth
    assert log.sign_tree_head() == sth  # same size: the stored head, not a new one
    assert SignedTreeHead.from_json(sth.to_json()) == sth

    with pytest.raises(InvalidMessage):
        verify_tree_head_signature(sth, OTHER)
    forged = SignedTreeHead(sth.size, merkle.leaf_hash(b"forged"), sth.timestamp_ms, sth.signature)
    with pytest.raises(InvalidMessage):
        verify_tree_head_signature(forged, PUB)
    # validly signed, but not this log's history: a fork shown to someone else
    fork_root = merkle.root([entry(k) for k in range(4)] + [b"other"])
    ts = sth.timestamp_ms
    fork = SignedTreeHead(5, fork_root, ts, KEY.sign(tree_head_bytes(5, fork_root, ts)))
    verify_tree_head_signature(fork, PUB)
    with pytest.raises(InvalidMessage):
        log.verify_tree_head(fork, PUB)
    beyond = SignedTreeHead(9, fork_root, ts, KEY.sign(tree_head_bytes(9, fork_root, ts)))
    with pytest.raises(InvalidMessage):
        log.verify_tree_head(beyond, PUB)

    log.append(entry(5))
    sth6 = log.sign_tree_head()
    assert sth6.size == 6 and sth6.timestamp_ms > sth.timestamp_ms
    assert log.tree_heads() == [sth, sth6]


def test_sign_tree_head_refusals(db: sqlite3.Connection) -> None:
    unsigned = TransparencyLog(db)
    unsigned.append(entry(0))
    with pytest.raises(ValueError, match="no signing key"):
        unsigned.sign_tree_head()
    readings = iter([2_000, 1_000])
    log = TransparencyLog(db, KEY, clock=lambda: next(readings))
    log.sign_tree_head()
    log.append(entry(1))
    with pytest.raises(ValueError, match="must not go backwards"):
        log.sign_tree_head()
    with pytest.raises(ValueError, match="tree size must be"):
        tree_head_bytes(-1, bytes(32), 0)
    with pytest.raises(ValueError, match="root must be 32 bytes"):
        tree_head_bytes(1, bytes(31), 0)


def test_sign_refuses_when_stored_head_disagrees_with_leaves(
    log: TransparencyLog, db: sqlite3.Connection
) -> None:
    log.append(entry(0))
    log.sign_tree_head()
    db.commit()
    db.execute("UPDATE log_leaves SET leaf_hash = ? WHERE idx = 0", (merkle.leaf_hash(b"x"),))
    db.commit()
    fresh = TransparencyLog(db, KEY, clock=Clock(2_000_000_000_000))
    with pytest.raises(InvalidMessage):
        fresh.sign_tree_head()


# -- transactions belong to the caller ------------------------------------------------


def test_rollback_undoes_log_append_together_with_accumulator_update(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ingest.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accumulator (id INTEGER PRIMARY KEY, total INTEGER)")
    db.execute("INSERT INTO accumulator VALUES (1, 0)")
    db.commit()
    log = TransparencyLog(db, KEY, clock=Clock())
    db.commit()

    def ingest(k: int, *, fail: bool) -> None:
        # what an aggregator does: log the envelope, then update the accumulator
        log.append(entry(k))
        db.execute("UPDATE accumulator SET total = total + ? WHERE id = 1", (k + 1,))
        log.sign_tree_head()
        if fail:
            raise RuntimeError("crash between the log append and the commit")
        db.commit()

    ingest(0, fail=False)
    committed_root = log.root()
    with pytest.raises(RuntimeError):
        ingest(1, fail=True)
    assert db.in_transaction  # the log never committed on the caller's behalf
    assert log.size == 2  # visible inside the open transaction ...
    other = sqlite3.connect(path)
    assert other.execute("SELECT COUNT(*) FROM log_leaves").fetchone() == (1,)  # ... only
    db.rollback()
    assert log.size == 1
    assert log.root() == committed_root
    assert db.execute("SELECT total FROM accumulator").fetchone() == (1,)
    assert len(log.tree_heads()) == 1

    # a different envelope now takes index 1; proofs must come from it, not a stale cache
    ingest(7, fail=False)
    assert log.root() == merkle.root([entry(0), entry(7)])
    assert log.inclusion_proof(1) == merkle.inclusion_proof([entry(0), entry(7)], 1)
    report = verify_log(other, PUB)
    assert (report.size, report.tree_heads) == (2, 2)
    other.close()
    db.close()


def test_rolled_back_leaves_are_never_served_in_the_next_transaction(
    log: TransparencyLog, db: sqlite3.Connection
) -> None:
    log.append(entry(0))
    db.commit()
    log.append(entry(1))
    assert log.root() == merkle.root([entry(0), entry(1)])  # read inside the transaction
    db.rollback()
    # straight into the next transaction, same size, different entry, no read in between
    log.append(entry(2))
    assert log.root() == merkle.root([entry(0), entry(2)])
    assert log.inclusion_proof(1) == merkle.inclusion_proof([entry(0), entry(2)], 1)
    db.commit()
    assert log.root() == merkle.root([entry(0), entry(2)])


def test_explicit_transactions_on_an_autocommit_connection(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "auto.db", isolation_level=None)
    log = TransparencyLog(db, KEY, clock=Clock())
    log.append(entry(0))  # autocommit: durable at once
    first = log.root()
    db.execute("BEGIN")
    log.append(entry(1))
    log.append(entry(2))
    assert log.root() == merkle.root([entry(0), entry(1), entry(2)])
    db.execute("ROLLBACK")
    assert log.root() == first
    db.execute("BEGIN")
    log.append(entry(3))
    db.execute("COMMIT")
    assert log.root() == merkle.root([entry(0), entry(3)])
    db.close()


def test_a_second_log_object_sees_committed_appends(
    log: TransparencyLog, db: sqlite3.Connection, tmp_path: Path
) -> None:
    for k in range(3):
        log.append(entry(k))
    db.commit()
    conn = sqlite3.connect(tmp_path / "ledger.db")
    reader = TransparencyLog(conn)
    assert reader.root() == log.root()
    log.append(entry(3))
    db.commit()
    assert reader.size == 4
    assert reader.root() == merkle.root([entry(k) for k in range(4)])
    conn.close()


# -- the audit ------------------------------------------------------------------------


def test_verify_log_passes_on_a_good_log(log: TransparencyLog, db: sqlite3.Connection) -> None:
    fill(log, db, (3, 6, 10))
    report = verify_log(db, PUB)
    assert report.size == 12
    assert report.root == log.root()
    assert report.tree_heads == 3
    assert report.latest is not None and report.latest.size == 10
    assert report.unsigned_leaves == 2


def test_verify_log_by_path(log: TransparencyLog, db: sqlite3.Connection, tmp_path: Path) -> None:
    fill(log, db, (4,))
    assert verify_log(tmp_path / "ledger.db", PUB).size == 6
    assert verify_log(str(tmp_path / "ledger.db"), PUB).tree_heads == 1


def test_verify_log_on_an_empty_log(db: sqlite3.Connection) -> None:
    TransparencyLog(db)
    report = verify_log(db, PUB)
    assert (report.size, report.tree_heads, report.latest) == (0, 0, None)
    assert report.root == merkle.EMPTY_ROOT


Tamper = Callable[[sqlite3.Connection], None]


def _resign(db: sqlite3.Connection, size: int, root: bytes, ts: int) -> None:
    sig = KEY.sign(tree_head_bytes(size, root, ts))
    db.execute(
        "UPDATE log_tree_heads SET root = ?, timestamp_ms = ?, signature = ? WHERE size = ?",
        (root, ts, sig, size),
    )


def _set_entry_and_hash(db: sqlite3.Connection, idx: int, data: bytes) -> None:
    db.execute(
        "UPDATE log_leaves SET entry = ?, leaf_hash = ? WHERE idx = ?",
        (data, merkle.leaf_hash(data), idx),
    )


def _altered_head_resigned(db: sqlite3.Connection) -> None:
    (ts,) = db.execute("SELECT timestamp_ms FROM log_tree_heads WHERE size = 6").fetchone()
    _resign(db, 6, merkle.leaf_hash(b"a different history"), ts)


def _backdated_head(db: sqlite3.Connection) -> None:
    (root,) = db.execute("SELECT root FROM log_tree_heads WHERE size = 10").fetchone()
    _resign(db, 10, root, 5)


TAMPERING: list[tuple[str, Tamper, str, int]] = [
    (
        "removed middle leaf",
        lambda db: db.execute("DELETE FROM log_leaves WHERE idx = 4"),
        "missing-leaf",
        4,
    ),
    (
        "removed leaves a head covers",
        lambda db: db.execute("DELETE FROM log_leaves WHERE idx >= 8"),
        "missing-leaf",
        8,
    ),
    (
        "altered entry",
        lambda db: db.execute("UPDATE log_leaves SET entry = ? WHERE idx = 2", (b"evil",)),
        "altered-leaf",
        2,
    ),
    (
        "altered stored hash",
        lambda db: db.execute(
            "UPDATE log_leaves SET leaf_hash = ? WHERE idx = 7", (merkle.leaf_hash(b"x"),)
        ),
        "altered-leaf",
        7,
    ),
    ("altered entry and hash", lambda db: _set_entry_and_hash(db, 7, b"evil"), "root-mismatch", 10),
    (
        "altered tree head root",
        lambda db: db.execute(
            "UPDATE log_tree_heads SET root = ? WHERE size = 6", (merkle.leaf_hash(b"x"),)
        ),
        "bad-signature",
        6,
    ),
    (
        "altered tree head timestamp",
        lambda db: db.execute("UPDATE log_tree_heads SET timestamp_ms = 1 WHERE size = 3"),
        "bad-signature",
        3,
    ),
    (
        "bad signature",
        lambda db: db.execute(
            "UPDATE log_tree_heads SET signature = ? WHERE size = 10", (bytes(64),)
        ),
        "bad-signature",
        10,
    ),
    ("head re-signed over another history", _altered_head_resigned, "root-mismatch", 6),
    ("head re-signed with an earlier time", _backdated_head, "inconsistent-heads", 10),
    (
        "non-blob entry",
        lambda db: db.execute("UPDATE log_leaves SET entry = 'text' WHERE idx = 1"),
        "malformed-row",
        1,
    ),
]


@pytest.mark.parametrize(
    ("tamper", "problem", "position"),
    [t[1:] for t in TAMPERING],
    ids=[t[0] for t in TAMPERING],
)
def test_verify_log_catches_tampering(
    log: TransparencyLog, db: sqlite3.Connection, tamper: Tamper, problem: str, position: int
) -> None:
    fill(log, db, (3, 6, 10))
    verify_log(db, PUB)
    tamper(db)
    db.commit()
    with pytest.raises(LogVerificationFailed) as info:
        verify_log(db, PUB)
    assert (info.value.problem, info.value.position) == (problem, position)
    assert isinstance(info.value, InvalidMessage)


def test_verify_log_with_the_wrong_key(log: TransparencyLog, db: sqlite3.Connection) -> None:
    fill(log, db, (2,))
    with pytest.raises(LogVerificationFailed, match="signature does not verify") as info:
        verify_log(db, OTHER)
    assert info.value.problem == "bad-signature"


def test_verify_log_unreadable_input(tmp_path: Path) -> None:
    with pytest.raises(LogFormatError, match="no such file"):
        verify_log(tmp_path / "missing.db", PUB)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LogFormatError, match="not a readable SQLite database"):
        verify_log(junk, PUB)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE log_leaves (idx INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(LogFormatError, match="missing table"):
        verify_log(other, PUB)
    assert not (tmp_path / "missing.db").exists()  # read-only: never creates a file
