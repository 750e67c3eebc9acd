"""Tree heads a party has seen: kept, cross-checked, gossiped (RFC 9162 sections 2.1.4, 8.1.2).

Normative: ``protocols/log.md`` (section "Heads parties keep").

A dishonest aggregator can rewrite its log and re-sign heads over the new history; its own
tables then verify.  What it cannot undo is what it already showed others: every signed
tree head, every :class:`~psc.protocol.messages.IngestReceipt` (a signed ``(tree_size,
tree_root)``) and every :class:`~psc.protocol.messages.LogInclusion` an agency, the key
holder or a committee member received.  A :class:`HeadKeeper` keeps all of them (durably,
in SQLite, when given a connection) and refuses a new one that is inconsistent with any
it holds:

* two statements for the same size with different roots: **equivocation**, and the two
  signed statements are the evidence (:attr:`HeadConflict.evidence`);
* a head of another size: the keeper asks for an RFC 9162 consistency proof between its
  nearest held head and the new one (``prove(old_size, new_size)``, served by anyone: the
  proof is verified, not trusted) and refuses the head if it does not verify.

:func:`gossip` runs the exchange between two keepers (two agencies, an agency and the
key holder, an auditor): each observes the other's statements, so a split view is found
by whichever pair meets.  :meth:`HeadKeeper.export_json` writes the heads in the form
``psc log verify --trusted-head`` reads.

Leaks: nothing beyond the log's public heads.  Raises
:class:`~psc.exceptions.LogVerificationFailed` (``equivocation``, ``rewritten``,
``bad-trusted-head``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from psc.exceptions import InvalidMessage, LogVerificationFailed
from psc.hazmat import merkle
from psc.ledger.translog import SignedTreeHead, verify_tree_head_signature
from psc.protocol import codec
from psc.protocol.messages import IngestReceipt, LogInclusion, RevealRequest, TreeHead
from psc.protocol.signing import open_signed

#: ``prove(old_size, new_size)``: an RFC 9162 consistency proof, from any (untrusted) server
Prover = Callable[[int, int], Sequence[bytes]]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS seen_heads ("
    " size INTEGER NOT NULL, root BLOB NOT NULL, kind TEXT NOT NULL, evidence BLOB NOT NULL,"
    " PRIMARY KEY (size, root))"
)


@dataclass(frozen=True)
class Statement:
    """One thing the log's key vouched for: "the first ``size`` leaves have ``root``".

    ``kind`` is ``"head"`` (``evidence``: the JSON of a :class:`SignedTreeHead`) or
    ``"receipt"`` (``evidence``: the sealed :class:`IngestReceipt`).
    """

    size: int
    root: bytes
    kind: str
    evidence: bytes


@dataclass(frozen=True)
class HeadConflict:
    """Two signed statements that cannot both be true: the proof of a rewritten log."""

    held: Statement
    shown: Statement

    @property
    def evidence(self) -> tuple[bytes, bytes]:
        return self.held.evidence, self.shown.evidence


class HeadKeeper:
    """A party's record of every head and receipt the log showed it (see the module doc).

    ``public_key`` is the aggregator's (log) key.  With ``conn`` the statements live in
    table ``seen_heads`` there and survive a restart; otherwise in memory.  ``conflicts``
    holds what was refused, with its evidence, for the party to publish.
    """

    def __init__(self, public_key: Ed25519PublicKey, conn: sqlite3.Connection | None = None):
        self.public_key = public_key
        self._key = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._conn = conn
        self._mem: dict[tuple[int, bytes], Statement] = {}
        self.conflicts: list[HeadConflict] = []
        if conn is not None:
            with conn:
                conn.execute(_SCHEMA)

    # -- reading ---------------------------------------------------------------------------
    def statements(self) -> list[Statement]:
        """Every statement held, by size."""
        if self._conn is None:
            return sorted(self._mem.values(), key=lambda s: (s.size, s.root))
        rows = self._conn.execute(
            "SELECT size, root, kind, evidence FROM seen_heads ORDER BY size, root"
        )
        return [Statement(int(a), bytes(b), str(c), bytes(d)) for a, b, c, d in rows]

    def heads(self) -> list[SignedTreeHead]:
        """The signed tree heads held (what ``psc log verify --trusted-head`` takes)."""
        return [
            SignedTreeHead.from_json(json.loads(s.evidence))
            for s in self.statements()
            if s.kind == "head"
        ]

    def receipts(self) -> list[bytes]:
        """The sealed receipts held (what ``psc log verify --receipts`` takes)."""
        return [s.evidence for s in self.statements() if s.kind == "receipt"]

    def export_json(self) -> tuple[str, str]:
        """(heads file text, receipts file text) for ``psc log verify``."""
        heads = json.dumps([h.to_json() for h in self.heads()], indent=1)
        receipts = json.dumps([r.hex() for r in self.receipts()], indent=1)
        return heads, receipts

    # -- observing -------------------------------------------------------------------------
    def observe_head(self, sth: SignedTreeHead, prove: Prover | None = None) -> None:
        """Keep a signed tree head, refusing it if it contradicts a held statement.

        Raises :class:`LogVerificationFailed`: ``bad-trusted-head`` (not the log's
        signature), ``equivocation`` (another root for a held size), ``rewritten`` (with
        ``prove``: the proof between the nearest held statement and this head fails).
        """
        try:
            verify_tree_head_signature(sth, self.public_key)
        except InvalidMessage:
            raise LogVerificationFailed(
                "bad-trusted-head", sth.size, "the tree head is not signed by the log's key"
            ) from None
        evidence = json.dumps(sth.to_json(), sort_keys=True).encode()
        self._observe(Statement(sth.size, sth.root, "head", evidence), prove)

    def observe_tree_head(self, th: TreeHead, prove: Prover | None = None) -> None:
        """:meth:`observe_head` for a protocol :class:`TreeHead` (as inclusions carry)."""
        self.observe_head(SignedTreeHead(th.size, th.root, th.timestamp_ms, th.signature), prove)

    def observe_inclusion(self, data: bytes, prove: Prover | None = None) -> LogInclusion:
        """Keep the tree head of an encoded :class:`LogInclusion` (after checking its path)."""
        inc = codec.decode(data, LogInclusion)
        th = inc.tree_head
        merkle.verify_inclusion(inc.entry, inc.index, th.size, inc.proof, th.root)
        self.observe_tree_head(th, prove)
        return inc

    def observe_receipt(self, sealed: bytes, prove: Prover | None = None) -> IngestReceipt:
        """Keep an aggregator-signed ingest receipt as the statement it makes.

        Raises :class:`InvalidMessage` if it is not the aggregator's, and the errors of
        :meth:`observe_head`.
        """
        r = open_signed(sealed, IngestReceipt, lambda m: self._key)
        self._observe(Statement(r.tree_size, r.tree_root, "receipt", sealed), prove)
        return r

    def observe_reveal_request(self, sealed: bytes, prove: Prover | None = None) -> RevealRequest:
        """Keep an aggregator-signed reveal request's tree head (``tree_size``, ``tree_root``)
        as the statement it makes: committee members check every task against it.

        Raises :class:`InvalidMessage` if it is not the aggregator's, and the errors of
        :meth:`observe_head`.
        """
        rr = open_signed(sealed, RevealRequest, lambda m: self._key)
        self._observe(Statement(rr.tree_size, rr.tree_root, "reveal-request", sealed), prove)
        return rr

    def _observe(self, st: Statement, prove: Prover | None) -> None:
        held = self.statements()
        for h in held:
            if h.size == st.size and h.root != st.root:
                self.conflicts.append(HeadConflict(h, st))
                raise LogVerificationFailed(
                    "equivocation",
                    st.size,
                    f"the log signed two roots for size {st.size}; it shows parties different "
                    "histories (both signed statements kept as evidence)",
                )
        if prove is not None:
            others = [h for h in held if h.size != st.size]
            if others:
                near = min(others, key=lambda h: abs(h.size - st.size))
                old, new = (near, st) if near.size < st.size else (st, near)
                try:
                    merkle.verify_consistency(
                        old.size, new.size, old.root, new.root, list(prove(old.size, new.size))
                    )
                except (InvalidMessage, ValueError):
                    self.conflicts.append(HeadConflict(near, st))
                    raise LogVerificationFailed(
                        "rewritten",
                        st.size,
                        f"the head at size {new.size} does not extend the held head at size "
                        f"{old.size}: the log's history was rewritten",
                    ) from None
        self._store(st)

    def _store(self, st: Statement) -> None:
        if self._conn is None:
            self._mem.setdefault((st.size, st.root), st)
            return
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO seen_heads VALUES (?, ?, ?, ?)",
                (st.size, st.root, st.kind, st.evidence),
            )


def gossip(a: HeadKeeper, b: HeadKeeper, prove: Prover | None = None) -> None:
    """Two parties exchange every statement they hold; each observes the other's.

    Raises :class:`LogVerificationFailed` on the first contradiction (both keepers'
    ``conflicts`` then hold the evidence that reached them).
    """
    theirs, mine = b.statements(), a.statements()
    for keeper, shown in ((a, theirs), (b, mine)):
        for st in shown:
            if st.kind == "head":
                keeper.observe_head(SignedTreeHead.from_json(json.loads(st.evidence)), prove)
            else:
                keeper.observe_receipt(st.evidence, prove)


__all__ = ["HeadConflict", "HeadKeeper", "Prover", "Statement", "gossip"]
