"""Auditing the aggregator's ledger against its log, and the log against parties' receipts.

Normative: ``protocols/log.md`` (sections on receipts and the ledger audit).

:func:`psc.ledger.log_verify.verify_log` checks the log's own tables; a dishonest aggregator that
rewrites them consistently (truncate, re-append, re-sign) or edits the state *next to* the
log (delete an envelope row while its leaf and its contribution stay) passes that.  This
module adds the two checks that catch it:

receipts (:func:`verify_receipts`)
    what a party was given: an agency's signed :class:`~psc.protocol.messages.IngestReceipt`
    (``tree_size``, ``tree_root``, ``log_index`` of its envelope) or any encoded
    :class:`~psc.protocol.messages.LogInclusion` (a signed tree head and an audit path).
    Each must verify under the aggregator's key, and the log must still hold the same
    history: the root at the receipt's size and the receipted entry at its index.
ledger (:func:`audit_ledger`)
    every envelope, adjustment and reveal row maps to its log entry (same index, same
    hash, same party and period) and every logged submission or adjustment to its row;
    each accumulator's contribution count (and, given the backend, its ciphertext,
    recomputed by folding the logged envelopes' ciphertexts in log order) is what the
    logged contributions give.

Runs on a read-only connection; needs no secret.  Failures raise
:class:`~psc.exceptions.LogVerificationFailed` naming the first problem (``bad-receipt``,
``truncated``, ``rewritten``, ``missing-row``, ``unlogged-row``,
``accumulator-mismatch``).  What leaks: nothing beyond the public log and ledger.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from psc.exceptions import InvalidMessage, LogVerificationFailed
from psc.hazmat import merkle
from psc.hazmat.backends.paillier import PackedCiphertext, PackedPaillier
from psc.ledger.translog import SignedTreeHead, verify_tree_head_signature
from psc.protocol import codec
from psc.protocol.messages import (
    IngestReceipt,
    LogEntry,
    LogInclusion,
    SignedMessage,
    Submission,
)
from psc.protocol.signing import digest, open_signed


def _fail(problem: str, position: int, message: str) -> LogVerificationFailed:
    return LogVerificationFailed(problem, position, message)


def _tree(conn: sqlite3.Connection) -> tuple[merkle.MerkleTree, list[bytes]]:
    entries = [bytes(r[0]) for r in conn.execute("SELECT entry FROM log_leaves ORDER BY idx")]
    return merkle.MerkleTree(merkle.leaf_hash(e) for e in entries), entries


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def verify_receipts(
    conn: sqlite3.Connection, public_key: Ed25519PublicKey, receipts: Sequence[bytes]
) -> int:
    """Check that the log still holds the history each receipt vouches for.

    ``receipts``: sealed :class:`IngestReceipt` s or encoded :class:`LogInclusion` s, as a
    party kept them.  Returns how many were checked.  Raises
    :class:`LogVerificationFailed`: ``bad-receipt`` (not the aggregator's, or not a
    receipt), ``truncated`` (the log is shorter than a receipt's tree), ``rewritten`` (the
    root at the receipt's size, or the receipted entry, differs).
    """
    tree, entries = _tree(conn)
    key = _raw(public_key)
    for n, data in enumerate(receipts):
        size, root, index, entry = _read_receipt(data, key, public_key, n)
        if size > tree.size:
            raise _fail(
                "truncated",
                size,
                f"receipt {n} vouches for {size} leaves; the log holds only {tree.size} "
                "(truncated?)",
            )
        if tree.root(size) != root:
            raise _fail(
                "rewritten",
                size,
                f"receipt {n}: the log's first {size} leaves no longer have the root the "
                "aggregator signed (history rewritten?)",
            )
        if not entry(entries[index]):
            raise _fail(
                "rewritten", index, f"receipt {n}: leaf {index} no longer holds the receipted entry"
            )
    return len(receipts)


def _read_receipt(
    data: bytes, key: bytes, public_key: Ed25519PublicKey, n: int
) -> tuple[int, bytes, int, Any]:
    """(size, root, index, predicate on the entry at index) of a verified receipt."""
    try:
        r = open_signed(data, IngestReceipt, lambda m: key)
    except InvalidMessage:
        pass
    else:

        def submitted(entry: bytes) -> bool:
            try:
                e = codec.decode(entry, LogEntry)
            except InvalidMessage:
                return False
            return (e.kind, e.digest, e.party, e.period) == (
                "submission",
                r.envelope_hash,
                r.agency,
                r.period,
            )

        return r.tree_size, r.tree_root, r.log_index, submitted
    try:
        inc = codec.decode(data, LogInclusion)
        th = inc.tree_head
        verify_tree_head_signature(
            SignedTreeHead(th.size, th.root, th.timestamp_ms, th.signature), public_key
        )
        merkle.verify_inclusion(inc.entry, inc.index, th.size, inc.proof, th.root)
    except InvalidMessage:
        raise _fail(
            "bad-receipt",
            n,
            f"receipt {n} is neither an ingest receipt nor a log inclusion signed by this "
            "log's key; check --public-key and the receipts file",
        ) from None
    return th.size, th.root, inc.index, lambda entry: entry == inc.entry


@dataclass(frozen=True)
class LedgerAudit:
    """What :func:`audit_ledger` checked."""

    envelopes: int  # envelope rows, each mapped to its log entry and back
    adjustments: int  # adjustment rows, likewise
    reveals: int  # reveal rows, each mapped to its log entry
    accumulators: int  # accumulators whose contributions were recounted
    recomputed: bool  # whether ciphertexts were recomputed (a backend was given)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _decode_entry(entry: bytes) -> tuple[str, Any]:
    from psc.parties.rights.messages import AdjustmentEntry  # the rights layer's leaf

    for cls in (LogEntry, AdjustmentEntry):
        try:
            return cls.TYPE, codec.decode(entry, cls)
        except InvalidMessage:
            continue
    return "", None


def audit_ledger(conn: sqlite3.Connection, *, backend: PackedPaillier | None = None) -> LedgerAudit:
    """Map every ledger row to its log entry and back; recount (recompute) accumulators.

    Checks, in order: each envelope row's hash is the hash of its envelope bytes and its
    log entry is the ``submission`` entry of that hash, agency and period; each logged
    submission has its row (else ``missing-row``: a deleted envelope whose leaf and
    contribution stayed); the same for adjustments (``adjustment-entry`` leaves) and for
    reveals (each row's entry is its ``reveal`` entry); each accumulator's contribution
    count is the number of logged envelopes carrying its (period, class, label), and with
    ``backend`` its ciphertext is the fold of those envelopes' ciphertexts in log order
    (``accumulator-mismatch``).  Raises :class:`LogVerificationFailed`.
    """
    names = _tables(conn)
    _, entries = _tree(conn)
    logged: dict[str, dict[bytes, tuple[int, Any]]] = {"submission": {}, "adjustment-entry": {}}
    reveals_logged: dict[int, Any] = {}
    for idx, raw in enumerate(entries):
        kind, e = _decode_entry(raw)
        if kind == LogEntry.TYPE and e.kind == "submission":
            logged["submission"][e.digest] = (idx, e)
        elif kind == LogEntry.TYPE and e.kind == "reveal":
            reveals_logged[idx] = e
        elif kind == "adjustment-entry":
            logged["adjustment-entry"][e.digest] = (idx, e)

    envelopes = list(
        conn.execute(
            "SELECT envelope_hash, agency, period, log_index, envelope FROM envelopes "
            "ORDER BY log_index"
        )
    )
    rows: set[bytes] = set()
    for h, agency, period, idx, blob in envelopes:
        h, blob = bytes(h), bytes(blob)
        rows.add(h)
        entry = logged["submission"].get(h)
        if digest(blob) != h or entry is None or entry[0] != idx:
            raise _fail(
                "unlogged-row",
                int(idx),
                f"envelope row {h.hex()[:16]}... is not the envelope logged at leaf {idx}",
            )
        if (entry[1].party, entry[1].period) != (agency, period):
            raise _fail("unlogged-row", int(idx), f"envelope row at leaf {idx} changed owner")
    for h, (idx, _) in logged["submission"].items():
        if h not in rows:
            raise _fail(
                "missing-row",
                idx,
                f"leaf {idx} logs envelope {h.hex()[:16]}... but the ledger has no row for it "
                "(deleted while its contribution stayed?)",
            )

    n_adj = 0
    if "adjustments" in names:
        adj_rows = {
            bytes(h): (int(i), bytes(b))
            for h, i, b in conn.execute(
                "SELECT adjustment_hash, log_index, adjustment FROM adjustments"
            )
        }
        n_adj = len(adj_rows)
        for h, (idx, blob) in adj_rows.items():
            entry = logged["adjustment-entry"].get(h)
            if digest(blob) != h or entry is None or entry[0] != idx:
                raise _fail("unlogged-row", idx, f"adjustment row at leaf {idx} is not logged")
        for h, (idx, _) in logged["adjustment-entry"].items():
            if h not in adj_rows:
                raise _fail("missing-row", idx, f"leaf {idx} logs an adjustment with no row")

    n_rev = 0
    for idx, response_hash in conn.execute("SELECT log_index, response_hash FROM reveals"):
        n_rev += 1
        e = reveals_logged.get(int(idx))
        if e is None or e.digest != bytes(response_hash):
            raise _fail("unlogged-row", int(idx), f"reveal row at leaf {idx} is not logged")

    counts: dict[tuple[int, str, str], list[bytes]] = {}
    for _h, _agency, period, _idx, blob in envelopes:
        sub = codec.decode(codec.decode(bytes(blob), SignedMessage).body, Submission)
        for d in sub.deltas:
            counts.setdefault((int(period), d.retention, ""), []).append(d.ciphertext)
        for c in sub.caps:
            counts.setdefault((int(period), c.retention, c.cap), []).append(c.ciphertext)
    accs = {
        (int(p), str(r), str(lab)): (int(n), bytes(ct))
        for p, r, lab, ct, n in conn.execute(
            "SELECT period, retention, label, ciphertext, contributions FROM accumulators"
        )
    }
    for key in sorted(set(accs) | set(counts)):
        n, ct = accs.get(key, (0, b""))
        parts = counts.get(key, [])
        if n != len(parts):
            raise _fail(
                "accumulator-mismatch",
                key[0],
                f"accumulator {key} counts {n} contributions; the logged envelopes give "
                f"{len(parts)}",
            )
        if backend is not None and parts:
            fold = _fold(backend, parts)
            if fold.blocks != backend.deserialize(ct).blocks:
                raise _fail(
                    "accumulator-mismatch",
                    key[0],
                    f"accumulator {key} is not the sum of the logged envelopes' ciphertexts",
                )
    return LedgerAudit(len(envelopes), n_adj, n_rev, len(accs), backend is not None)


def _fold(backend: PackedPaillier, parts: list[bytes]) -> PackedCiphertext:
    # bounds are the aggregator's bookkeeping; only the ciphertext blocks are compared
    return backend.sum(backend.deserialize(p).with_bound(0) for p in parts)


__all__ = ["LedgerAudit", "audit_ledger", "verify_receipts"]
