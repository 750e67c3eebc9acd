"""The key holder's replay state: request hashes it answered, durable across restarts.

Normative: ``protocols/reveal-baseline.md`` (a request is answered at most once).  In
memory only, a restarted key holder would answer a replayed request again: a second
decryption, and a second charge to any privacy budget.  :class:`AnsweredRequests` keeps the
hashes in table ``answered_requests`` of the key holder's own SQLite database, committed
before the response leaves (a crash after the commit loses the answer, never the record;
the requester asks again with a fresh request).  Holds hashes only.
"""

from __future__ import annotations

import sqlite3

_SCHEMA = "CREATE TABLE IF NOT EXISTS answered_requests (request_hash BLOB PRIMARY KEY)"


class AnsweredRequests:
    """A set of answered request hashes, on ``conn`` (or a private in-memory database)."""

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        self._conn = conn if conn is not None else sqlite3.connect(":memory:")
        with self._conn:
            self._conn.execute(_SCHEMA)

    def __contains__(self, request_hash: object) -> bool:
        if not isinstance(request_hash, bytes):
            return False
        row = self._conn.execute(
            "SELECT 1 FROM answered_requests WHERE request_hash = ?", (request_hash,)
        ).fetchone()
        return row is not None

    def add(self, request_hash: bytes) -> None:
        """Record an answered request, committed before this returns."""
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO answered_requests VALUES (?)", (request_hash,)
            )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM answered_requests").fetchone()[0])


__all__ = ["AnsweredRequests"]
