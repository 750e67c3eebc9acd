"""A party's durable SQLite file: what every store that must survive ``kill -9`` opens.

Autocommit mode (the caller runs explicit transactions, or single statements that commit
at once), the write-ahead log, and ``synchronous=FULL``: a statement that returned is on
disk, so an answer that left after it is never lost.  ``threads``: the connection may be
used from the threads a served party's handlers run on (the party serializes its calls).
"""

from __future__ import annotations

import sqlite3


def open_durable(path: str, *, threads: bool = False) -> sqlite3.Connection:
    """``path`` opened durably (``":memory:"``: a private in-memory database, for tests)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=not threads)
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


__all__ = ["open_durable"]
