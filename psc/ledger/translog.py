"""An append-only transparency log in the style of RFC 9162, stored in SQLite.

Role: the **Aggregator** runs the log; **auditors, agencies and subjects** check it with
the public key alone (:func:`~psc.ledger.log_verify.verify_log`, :func:`verify_tree_head_signature`, and the
proof verifiers in :mod:`psc.hazmat.merkle`).  The normative spec is ``protocols/log.md``.

What is logged
    Entries are opaque bytes: envelope digests or whole signed envelopes (which carry
    only ciphertexts and public metadata), agencies' event commitments (Merkle roots of
    *salted* leaves, see :func:`psc.hazmat.merkle.commitment_leaf`), and other hashes.  **No
    personal data may ever be logged**: a log is public and append-only, so anything in
    it can never be corrected or erased (PIPL Art. 46-47 would then be impossible to
    honour).  The log cannot tell what an entry means and does not try to; the callers
    that append are responsible.

Structure
    Leaf ``i`` has hash ``leaf_hash(entry_i) = SHA-256(0x00 || entry_i)``; the tree over
    the first ``n`` leaves has root ``MTH`` as in :mod:`psc.hazmat.merkle`.  A signed tree head
    (:class:`SignedTreeHead`) is an Ed25519 signature over the domain-separated encoding
    :func:`tree_head_bytes`::

        b"psc/v1/tree-head\\x00" || u64 size || u64 timestamp_ms || root (32 bytes)

Transactions
    The log **never begins, commits or rolls back a transaction**.  Its writes run on the
    caller's connection inside the caller's transaction, so an ingestion that appends an
    envelope and updates the encrypted accumulators either commits both or neither.
    Tables ``log_leaves`` and ``log_tree_heads`` are created if absent (DDL also joins an
    open transaction).  The log keeps an in-memory :class:`~psc.hazmat.merkle.MerkleTree` of the
    leaves it has seen *outside* any transaction (hence committed); leaves appended
    inside an open transaction are re-read on each query and never cached, so a rollback
    cannot leave the cache ahead of the database.

What leaks
    The log is public: its size, the entries and the timestamps of tree heads.

Errors
    Verification failures raise :class:`~psc.exceptions.InvalidMessage` (for
    :func:`~psc.ledger.log_verify.verify_log`, the subclass :class:`~psc.exceptions.LogVerificationFailed`
    naming the first problem); caller mistakes raise ``ValueError``; an unreadable
    database raises :class:`~psc.exceptions.LogFormatError`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from psc.exceptions import InvalidMessage
from psc.hazmat import merkle

__all__ = [
    "TREE_HEAD_DOMAIN",
    "SignedTreeHead",
    "TransparencyLog",
    "tree_head_bytes",
    "verify_tree_head_signature",
]

#: domain-separation prefix of the bytes a tree-head signature covers
TREE_HEAD_DOMAIN = b"psc/v1/tree-head\x00"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS log_leaves ("
    " idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, entry BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS log_tree_heads ("
    " size INTEGER PRIMARY KEY, root BLOB NOT NULL, timestamp_ms INTEGER NOT NULL,"
    " signature BLOB NOT NULL)",
)

_U64 = 1 << 64


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def tree_head_bytes(size: int, root: bytes, timestamp_ms: int) -> bytes:
    """The exact bytes a tree-head signature covers.

    ``TREE_HEAD_DOMAIN || u64be(size) || u64be(timestamp_ms) || root``.  The domain
    prefix keeps a tree-head signature from ever being valid as any other psc message
    signed by the same key (and vice versa).  Raises ValueError for out-of-range fields.
    """
    if not 0 <= size < _U64:
        raise ValueError(f"tree size must be in 0..2**64-1, got {size}")
    if not 0 <= timestamp_ms < _U64:
        raise ValueError(f"timestamp_ms must be in 0..2**64-1, got {timestamp_ms}")
    if len(root) != merkle.HASH_SIZE:
        raise ValueError(f"root must be {merkle.HASH_SIZE} bytes, got {len(root)}")
    return (
        TREE_HEAD_DOMAIN + size.to_bytes(8, "big") + timestamp_ms.to_bytes(8, "big") + bytes(root)
    )


@dataclass(frozen=True)
class SignedTreeHead:
    """The log's signed statement "my first ``size`` leaves have Merkle root ``root``"."""

    #: number of leaves covered
    size: int
    #: MTH of leaves ``0 .. size-1`` (32 bytes)
    root: bytes
    #: signing time, milliseconds since the Unix epoch (non-decreasing along the log)
    timestamp_ms: int
    #: Ed25519 signature (64 bytes) over :func:`tree_head_bytes`
    signature: bytes

    def signed_bytes(self) -> bytes:
        """The bytes :attr:`signature` covers."""
        return tree_head_bytes(self.size, self.root, self.timestamp_ms)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (hashes and signature in lowercase hex)."""
        return {
            "size": self.size,
            "root": self.root.hex(),
            "timestamp_ms": self.timestamp_ms,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SignedTreeHead:
        """Inverse of :meth:`to_json`.  Raises ValueError for a missing or malformed field."""
        try:
            size, ts = obj["size"], obj["timestamp_ms"]
            root, sig = bytes.fromhex(obj["root"]), bytes.fromhex(obj["signature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                "a tree head needs integer 'size' and 'timestamp_ms' and hex 'root' and "
                f"'signature': {exc}"
            ) from exc
        if not isinstance(size, int) or not isinstance(ts, int):
            raise ValueError("tree head 'size' and 'timestamp_ms' must be integers")
        return cls(size=size, root=root, timestamp_ms=ts, signature=sig)


def verify_tree_head_signature(sth: SignedTreeHead, public_key: Ed25519PublicKey) -> None:
    """Check the Ed25519 signature of ``sth`` under the log's ``public_key``.

    This says only that the log vouched for (size, root, time); it does not compare the
    root with any leaves.  Raises InvalidMessage on failure (including malformed fields).
    """
    try:
        msg = sth.signed_bytes()
        public_key.verify(bytes(sth.signature), msg)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise InvalidMessage("tree head signature does not verify") from exc


class TransparencyLog:
    """An append-only Merkle log over opaque entries in the tables of ``conn``.

    Run by the Aggregator.  ``signer`` is the log's Ed25519 key; without it the log can
    append and serve proofs but not sign tree heads.  ``clock`` returns milliseconds since
    the epoch and stamps tree heads (inject a fixed one in tests).

    See the module docstring: the caller owns every transaction; nothing personal may be
    appended.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        signer: Ed25519PrivateKey | None = None,
        *,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._conn = conn
        self._signer = signer
        self._clock = clock
        for stmt in _SCHEMA:
            conn.execute(stmt)
        self._tree = merkle.MerkleTree()

    # -- writing ------------------------------------------------------------------------

    def append(self, entry: bytes) -> int:
        """Append ``entry`` as the next leaf and return its index.

        Pre-condition: ``entry`` contains no personal data (it becomes public forever).
        The row joins the caller's open transaction (or opens one implicitly, as any
        INSERT does); it becomes part of the log only when the caller commits.
        Raises ValueError if ``entry`` is not bytes.
        """
        if not isinstance(entry, bytes | bytearray | memoryview):
            raise ValueError(f"a log entry must be bytes, got {type(entry).__name__}")
        data = bytes(entry)
        idx = self.size
        self._conn.execute(
            "INSERT INTO log_leaves (idx, leaf_hash, entry) VALUES (?, ?, ?)",
            (idx, merkle.leaf_hash(data), data),
        )
        return idx

    def sign_tree_head(self) -> SignedTreeHead:
        """Sign and store a tree head over the whole log as it now stands.

        Stored in ``log_tree_heads`` within the caller's transaction, like :meth:`append`.
        At most one head per size: if the latest head already covers the current size it
        is returned unchanged.  Raises ValueError if the log has no signing key or the
        clock reads earlier than the latest head's timestamp; raises InvalidMessage if the
        stored latest head does not match the stored leaves (the log is corrupt).
        """
        if self._signer is None:
            raise ValueError(
                "this TransparencyLog has no signing key: pass signer=Ed25519PrivateKey to sign"
            )
        latest = self.latest_tree_head()
        with self._tree_view() as tree:
            size = tree.size
            root = tree.root()
            if latest is not None:
                if latest.size > size or latest.root != tree.root(latest.size):
                    raise InvalidMessage("stored tree head does not match the stored leaves")
                if latest.size == size:
                    return latest
        ts = self._clock()
        if latest is not None and ts < latest.timestamp_ms:
            raise ValueError(
                f"clock reads {ts} ms, earlier than the latest tree head ({latest.timestamp_ms} "
                "ms); tree-head timestamps must not go backwards"
            )
        sig = self._signer.sign(tree_head_bytes(size, root, ts))
        sth = SignedTreeHead(size=size, root=root, timestamp_ms=ts, signature=sig)
        self._conn.execute(
            "INSERT INTO log_tree_heads (size, root, timestamp_ms, signature) VALUES (?, ?, ?, ?)",
            (sth.size, sth.root, sth.timestamp_ms, sth.signature),
        )
        return sth

    # -- reading ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The number of leaves visible on this connection (including uncommitted ones)."""
        row = self._conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaves").fetchone()
        return int(row[0])

    def entry(self, index: int) -> bytes:
        """Entry ``index``.  Raises ValueError if there is no such leaf."""
        row = self._conn.execute("SELECT entry FROM log_leaves WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise ValueError(f"leaf index {index} is out of range for a log of {self.size} leaves")
        return bytes(row[0])

    def root(self, size: int | None = None) -> bytes:
        """Merkle root of the first ``size`` leaves (default: all).  Raises ValueError if too large."""
        with self._tree_view() as tree:
            return tree.root(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of the first ``size`` leaves (default: all).

        Verify with :func:`psc.hazmat.merkle.verify_inclusion` (entry, index, size, proof, root).
        Raises ValueError unless ``0 <= index < size <= self.size``.
        """
        with self._tree_view() as tree:
            return tree.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the first ``old_size`` leaves are a prefix of the first ``new_size``.

        Verify with :func:`psc.hazmat.merkle.verify_consistency`.  Raises ValueError unless
        ``0 <= old_size <= new_size <= self.size``.
        """
        with self._tree_view() as tree:
            return tree.consistency_proof(old_size, new_size)

    def tree_heads(self) -> list[SignedTreeHead]:
        """Every stored tree head, by increasing size."""
        return list(_read_tree_heads(self._conn))

    def latest_tree_head(self) -> SignedTreeHead | None:
        """The stored tree head with the largest size, or None if none was signed."""
        row = self._conn.execute(
            "SELECT size, root, timestamp_ms, signature FROM log_tree_heads "
            "ORDER BY size DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _sth_from_row(row)

    def verify_tree_head(self, sth: SignedTreeHead, public_key: Ed25519PublicKey) -> None:
        """Check ``sth``'s signature and that its root matches this log's first ``sth.size`` leaves.

        Run by anyone holding the log and a tree head received elsewhere (gossip): a
        mismatch means the log showed different histories to different parties.
        Raises InvalidMessage on any failure.
        """
        verify_tree_head_signature(sth, public_key)
        with self._tree_view() as tree:
            if not 0 <= sth.size <= tree.size or tree.root(sth.size) != sth.root:
                raise InvalidMessage("tree head does not match the log")

    # -- cache --------------------------------------------------------------------------

    @contextmanager
    def _tree_view(self) -> Iterator[merkle.MerkleTree]:
        """The tree over every visible leaf; the cached part is only ever committed data."""
        tree = self._tree
        n = self.size
        if n < tree.size:
            # Committed leaves vanished (another connection or a hand edit); start over.
            tree = self._tree = merkle.MerkleTree()
        base = tree.size
        if n > base:
            rows = self._conn.execute(
                "SELECT idx, leaf_hash FROM log_leaves WHERE idx >= ? ORDER BY idx", (base,)
            )
            for expect, (idx, h) in enumerate(rows, start=base):
                if idx != expect or not isinstance(h, bytes) or len(h) != merkle.HASH_SIZE:
                    tree.truncate(base)
                    raise InvalidMessage("log leaves are not contiguous or are malformed")
                tree.append(h)
        try:
            yield tree
        finally:
            if self._conn.in_transaction:
                # Leaves read inside an open transaction may still be rolled back.
                tree.truncate(base)


def _sth_from_row(row: tuple[Any, ...]) -> SignedTreeHead:
    size, root, ts, sig = row
    return SignedTreeHead(size=size, root=root, timestamp_ms=ts, signature=sig)


def _read_tree_heads(conn: sqlite3.Connection) -> Iterator[SignedTreeHead]:
    for row in conn.execute(
        "SELECT size, root, timestamp_ms, signature FROM log_tree_heads ORDER BY size"
    ):
        yield _sth_from_row(row)
