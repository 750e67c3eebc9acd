"""Auditing a transparency log from its file and the log's public key alone (``protocols/log.md``).

:func:`verify_log` re-derives every leaf hash, every signed tree head and the consistency
of each head with the next (and with heads a party holds); :func:`summarize_log` reads its
size and latest head.  Failures raise :class:`~psc.exceptions.LogVerificationFailed`
naming the first problem; an unreadable file raises :class:`~psc.exceptions.LogFormatError`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PublicKey,
)

from psc.exceptions import InvalidMessage, LogFormatError, LogVerificationFailed
from psc.hazmat import merkle
from psc.ledger.translog import (
    SignedTreeHead,
    _read_tree_heads,
    _sth_from_row,
    verify_tree_head_signature,
)

__all__ = [
    "LogReport",
    "LogSummary",
    "summarize_log",
    "verify_log",
]


# --------------------------------------------------------------------------------------
# Audit


@dataclass(frozen=True)
class LogReport:
    """What :func:`verify_log` checked."""

    #: number of leaves, every one re-hashed from its entry
    size: int
    #: Merkle root over all leaves
    root: bytes
    #: number of signed tree heads, every one checked
    tree_heads: int
    #: the tree head with the largest size, or None
    latest: SignedTreeHead | None
    #: leaves appended after the latest tree head (not yet vouched for by a signature)
    unsigned_leaves: int
    #: heads held by parties (``trusted_heads``) checked against the log
    trusted_heads: int = 0


def _open_readonly(path: str | os.PathLike[str]) -> sqlite3.Connection:
    p = Path(path)
    if not p.is_file():
        raise LogFormatError(f"{p}: no such file")
    try:
        return sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LogFormatError(f"{p}: cannot open as SQLite: {exc}") from exc


def _check_tables(conn: sqlite3.Connection, where: str) -> None:
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as exc:
        raise LogFormatError(f"{where}: not a readable SQLite database: {exc}") from exc
    missing = sorted({"log_leaves", "log_tree_heads"} - names)
    if missing:
        raise LogFormatError(
            f"{where}: not a psc transparency log (missing table(s) {', '.join(missing)})"
        )


def _fail(problem: str, position: int, message: str) -> LogVerificationFailed:
    return LogVerificationFailed(problem, position, message)


def _audit(
    conn: sqlite3.Connection,
    public_key: Ed25519PublicKey,
    trusted_heads: Sequence[SignedTreeHead] = (),
) -> LogReport:
    # 1. Leaves: contiguous indices, each stored hash re-derived from its entry.  The
    #    tree is rebuilt from the *entries*, never from the stored hashes.
    tree = merkle.MerkleTree()
    for expect, (idx, stored, entry) in enumerate(
        conn.execute("SELECT idx, leaf_hash, entry FROM log_leaves ORDER BY idx")
    ):
        if idx != expect:
            raise _fail("missing-leaf", expect, f"leaf {expect} is missing (removed?)")
        if not isinstance(entry, bytes) or not isinstance(stored, bytes):
            raise _fail("malformed-row", idx, f"leaf {idx}: entry or hash is not a BLOB")
        h = merkle.leaf_hash(entry)
        if stored != h:
            raise _fail(
                "altered-leaf", idx, f"leaf {idx}: stored hash does not match its entry (altered?)"
            )
        tree.append(h)

    # 2. Tree heads, by size: signature, coverage, root against the rebuilt tree, then
    #    the chain: timestamps never go backwards and each head extends the previous one
    #    (RFC 9162 2.1.4.2).  Given the leaves, a matching root already implies the
    #    consistency; the proof check is the one a leafless auditor runs against proofs
    #    served by the log, kept here so both audits apply the same rule.
    prev: SignedTreeHead | None = None
    count = 0
    for sth in _read_tree_heads(conn):
        count += 1
        if (
            sth.size < 0
            or not isinstance(sth.root, bytes)
            or not isinstance(sth.signature, bytes)
            or not isinstance(sth.timestamp_ms, int)
            or len(sth.root) != merkle.HASH_SIZE
        ):
            raise _fail("malformed-row", sth.size, f"tree head at size {sth.size} is malformed")
        try:
            verify_tree_head_signature(sth, public_key)
        except InvalidMessage:
            raise _fail(
                "bad-signature",
                sth.size,
                f"tree head at size {sth.size}: signature does not verify under this key",
            ) from None
        if sth.size > tree.size:
            raise _fail(
                "missing-leaf",
                tree.size,
                f"tree head at size {sth.size} covers leaves {tree.size}..{sth.size - 1}, "
                "which the log no longer holds (removed?)",
            )
        if tree.root(sth.size) != sth.root:
            raise _fail(
                "root-mismatch",
                sth.size,
                f"tree head at size {sth.size}: root does not match the logged leaves",
            )
        if prev is not None:
            if sth.timestamp_ms < prev.timestamp_ms:
                raise _fail(
                    "inconsistent-heads",
                    sth.size,
                    f"tree head at size {sth.size} is timestamped before the head at size "
                    f"{prev.size}",
                )
            try:
                merkle.verify_consistency(
                    prev.size,
                    sth.size,
                    prev.root,
                    sth.root,
                    tree.consistency_proof(prev.size, sth.size),
                )
            except InvalidMessage:
                raise _fail(
                    "inconsistent-heads",
                    sth.size,
                    f"tree head at size {sth.size} does not extend the head at size "
                    f"{prev.size} (history rewritten?)",
                ) from None
        prev = sth
    # 3. Heads a party holds (RFC 9162 2.1.4: a client keeps the heads it was shown and
    #    asks for consistency proofs): each must be signed by the log, agree with every
    #    other held head of its size, be covered by the log, and be extended by the log's
    #    latest head (a consistency proof, verified as a leafless party would).
    _check_held_heads(tree, trusted_heads, prev, public_key)
    return LogReport(
        size=tree.size,
        root=tree.root(),
        tree_heads=count,
        latest=prev,
        unsigned_leaves=tree.size - (prev.size if prev else 0),
        trusted_heads=len(trusted_heads),
    )


def _check_held_heads(
    tree: merkle.MerkleTree,
    held: Sequence[SignedTreeHead],
    latest: SignedTreeHead | None,
    public_key: Ed25519PublicKey,
) -> None:
    by_size: dict[int, SignedTreeHead] = {}
    for sth in held:
        try:
            verify_tree_head_signature(sth, public_key)
        except InvalidMessage:
            raise _fail(
                "bad-trusted-head",
                sth.size,
                f"a held tree head at size {sth.size} is not signed by this log's key; "
                "check --public-key and the head file",
            ) from None
        seen = by_size.setdefault(sth.size, sth)
        if seen.root != sth.root:
            raise _fail(
                "equivocation",
                sth.size,
                f"the log signed two different roots for size {sth.size} "
                f"({seen.root.hex()[:16]}... and {sth.root.hex()[:16]}...): it showed parties "
                "different histories",
            )
        if sth.size > tree.size:
            raise _fail(
                "truncated",
                sth.size,
                f"a held tree head covers {sth.size} leaves; the log holds only {tree.size} "
                "(truncated?)",
            )
        if tree.root(sth.size) != sth.root:
            raise _fail(
                "rewritten",
                sth.size,
                f"the log's first {sth.size} leaves no longer have the root of a held tree "
                "head (history rewritten and re-signed?)",
            )
        if latest is not None and latest.size >= sth.size:
            try:
                merkle.verify_consistency(
                    sth.size,
                    latest.size,
                    sth.root,
                    latest.root,
                    tree.consistency_proof(sth.size, latest.size),
                )
            except InvalidMessage:
                raise _fail(
                    "rewritten",
                    sth.size,
                    f"the log's latest head (size {latest.size}) does not extend a held head "
                    f"at size {sth.size}",
                ) from None


def verify_log(
    conn_or_path: sqlite3.Connection | str | os.PathLike[str],
    public_key: Ed25519PublicKey,
    *,
    trusted_heads: Sequence[SignedTreeHead] = (),
) -> LogReport:
    """Audit a whole log end to end; run by an auditor with the log's public key.

    Re-derives every leaf hash from its entry (and requires indices ``0..n-1`` without
    gaps), rebuilds the tree from the entries, and for every signed tree head in order of
    size checks the signature, that the log still holds every leaf it covers, that its
    timestamp does not go backwards and it extends the previous head (a consistency proof
    rebuilt from the leaves, verified with RFC 9162 2.1.4.2), and that its root equals
    the rebuilt root.  ``trusted_heads`` are heads a party kept (an agency, the key
    holder, a committee member, an earlier audit): each must verify under the key, no two
    may differ for one size (``equivocation``), the log must still cover each
    (``truncated``) with the same root, and its latest head must extend each, by an RFC
    9162 2.1.4.2 consistency proof (``rewritten``): a log truncated, re-appended and
    re-signed passes the checks of its own tables, not these.  A path is opened
    read-only; a connection is only read.

    Returns a :class:`LogReport`.  Raises :class:`~psc.exceptions.LogVerificationFailed`
    (an ``InvalidMessage``) naming the first problem found, or
    :class:`~psc.exceptions.LogFormatError` if the database cannot be read as a log.
    Cost: O(n) hashes and memory for ``n`` leaves, plus O(log n) per tree head.
    """
    held = tuple(trusted_heads)
    if isinstance(conn_or_path, sqlite3.Connection):
        return _audit_readable(conn_or_path, public_key, "connection", held)
    conn = _open_readonly(conn_or_path)
    try:
        return _audit_readable(conn, public_key, str(conn_or_path), held)
    finally:
        conn.close()


def _audit_readable(
    conn: sqlite3.Connection,
    public_key: Ed25519PublicKey,
    where: str,
    held: Sequence[SignedTreeHead] = (),
) -> LogReport:
    _check_tables(conn, where)
    try:
        return _audit(conn, public_key, held)
    except sqlite3.DatabaseError as exc:
        raise LogFormatError(f"{where}: cannot read the log: {exc}") from exc


@dataclass(frozen=True)
class LogSummary:
    """What :func:`summarize_log` read, *without* verifying anything."""

    #: number of leaves stored
    size: int
    #: number of tree heads stored
    tree_heads: int
    #: the stored tree head with the largest size, or None
    latest: SignedTreeHead | None


def summarize_log(conn_or_path: sqlite3.Connection | str | os.PathLike[str]) -> LogSummary:
    """Read a log's size and latest tree head without checking them (see :func:`verify_log`).

    Raises :class:`~psc.exceptions.LogFormatError` if the database cannot be read as a log.
    """
    if isinstance(conn_or_path, sqlite3.Connection):
        return _summarize(conn_or_path, "connection")
    conn = _open_readonly(conn_or_path)
    try:
        return _summarize(conn, str(conn_or_path))
    finally:
        conn.close()


def _summarize(conn: sqlite3.Connection, where: str) -> LogSummary:
    _check_tables(conn, where)
    try:
        (size,) = conn.execute("SELECT COUNT(*) FROM log_leaves").fetchone()
        (heads,) = conn.execute("SELECT COUNT(*) FROM log_tree_heads").fetchone()
        row = conn.execute(
            "SELECT size, root, timestamp_ms, signature FROM log_tree_heads "
            "ORDER BY size DESC LIMIT 1"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise LogFormatError(f"{where}: cannot read the log: {exc}") from exc
    return LogSummary(
        size=int(size), tree_heads=int(heads), latest=None if row is None else _sth_from_row(row)
    )
