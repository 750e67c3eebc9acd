"""A committee member's durable memory: what it sent and what it helped release.

A member refuses to help decrypt a second noisy value of the same (release, slot,
period): that rule is what bounds the privacy loss against a dishonest combiner, so it
must survive a restart.  The record of a release and the answer that carries it are
written in one SQLite transaction (``synchronous=FULL``) *before* the answer leaves the
member, so a crash can lose an answer (the combiner asks again and gets the same one),
never the record.

Tables (one database per member, never shared with another party):

* ``sent(task_hash PRIMARY KEY, share_digest)``: the noise share this member made for
  a task (a decryption request must carry exactly that share);
* ``released(release, slot, period, request_hash, PRIMARY KEY (release, slot, period))``;
* ``answered(request_hash PRIMARY KEY, answer)``: the sealed decryption share given.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sent (task_hash BLOB PRIMARY KEY, share_digest BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS released (release TEXT NOT NULL, slot INTEGER NOT NULL, "
    "period INTEGER NOT NULL, request_hash BLOB NOT NULL, PRIMARY KEY (release, slot, period))",
    "CREATE TABLE IF NOT EXISTS answered (request_hash BLOB PRIMARY KEY, answer BLOB NOT NULL)",
)


class MemberStore:
    """Durable state of one member: ``MemberStore(path)`` or ``MemberStore(":memory:")``
    (tests; not durable).  Not thread-safe: one member, one process."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._open()

    def _open(self) -> None:
        self._pid = os.getpid()
        self._db = sqlite3.connect(self.path, isolation_level=None)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            for stmt in _SCHEMA:
                self._db.execute(stmt)

    @property
    def _conn(self) -> sqlite3.Connection:
        # a connection never crosses fork (a member may run in its own process): the child
        # reopens the file (an in-memory store starts empty there; it was never durable)
        if os.getpid() != self._pid:
            self._open()
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @property
    def connection(self) -> sqlite3.Connection:
        """The store's connection (the member's head keeper keeps its table there)."""
        return self._conn

    def close(self) -> None:
        self._db.close()

    def sent(self, task_hash: bytes) -> bytes | None:
        """Digest of the noise share this member made for ``task_hash``, if any."""
        row = self._conn.execute(
            "SELECT share_digest FROM sent WHERE task_hash = ?", (task_hash,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def record_sent(self, task_hash: bytes, share_digest: bytes) -> None:
        with self._transaction():
            self._conn.execute(
                "INSERT OR REPLACE INTO sent (task_hash, share_digest) VALUES (?, ?)",
                (task_hash, share_digest),
            )

    def released_by(self, release: str, slot: int, period: int) -> bytes | None:
        """The decryption request that released (release, slot, period), if any."""
        row = self._conn.execute(
            "SELECT request_hash FROM released WHERE release = ? AND slot = ? AND period = ?",
            (release, slot, period),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def answer(self, request_hash: bytes) -> bytes | None:
        row = self._conn.execute(
            "SELECT answer FROM answered WHERE request_hash = ?", (request_hash,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def record_release(
        self, release: str, slots: Iterable[int], period: int, request_hash: bytes, answer: bytes
    ) -> None:
        """In one transaction: every (release, slot, period) released by ``request_hash``
        and the answer.  Raises ``sqlite3.IntegrityError`` if a slot was released by
        another request meanwhile (nothing is written then)."""
        with self._transaction():
            for s in slots:
                self._conn.execute(
                    "INSERT INTO released (release, slot, period, request_hash) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (release, int(s), period, request_hash),
                )
                if self.released_by(release, int(s), period) != request_hash:
                    raise sqlite3.IntegrityError(f"slot {s} was released by another request")
            self._conn.execute(
                "INSERT OR REPLACE INTO answered (request_hash, answer) VALUES (?, ?)",
                (request_hash, answer),
            )
