"""A verified local replica of the aggregator's public log, synced over HTTP.

Normative: ``protocols/service.md`` section 8.  A committee member (or any log reader)
must check every reveal against the public log (:mod:`psc.protocol.logview`), but it
must not trust the aggregator that serves it: the aggregator may lie about its log.
:class:`LogReplica` keeps a local SQLite copy (a :class:`~psc.ledger.store.SQLiteLedger`
without a signing key, so :class:`~psc.protocol.logview.LedgerLogView` sums it exactly as
it sums the aggregator's own file) and extends it only with what it verified:

1. the latest signed tree head (``GET /v1/log/tree-head``) verifies under the aggregator
   key of the registry-signed :class:`~psc.protocol.parameters.ProtocolParameters`
   (``protocols/log.md`` section 7.3);
2. it does not contradict the last head the replica holds: not smaller (a shrinking
   log), not another root for the same size (a fork), not earlier in time, and for a
   larger size the served consistency proof verifies between the two signed roots
   (section 7.2);
3. the leaves the replica lacks (``GET /v1/log/leaves/{start}/{end}``, bounded pages) are
   hashed here, ``H(0x00 || entry)``, and with the held leaves rebuild exactly the signed
   root: a leaf rewritten, dropped or added anywhere is refused;
4. every record a new leaf names is fetched by its digest or name and must hash to the
   leaf's digest before it is stored: a submission's envelope, a registration (also
   registry-signed, naming the leaf's party), a rights adjustment.

All of it is stored in one transaction, or nothing is: any refusal raises
:class:`~psc.exceptions.InvalidMessage` naming what differed and leaves the replica as it
was.  The replica syncs on demand: :meth:`LogReplica.live_sums` for a tree size beyond what
it holds, :meth:`LogReplica.requester` for a party it does not know yet, and
:meth:`LogReplica.prover` for a size beyond its copy.  Proofs come from its own copy.

What it leaks: to the aggregator, when and what the reader fetches (which it can infer
anyway: it prepared the reveal being checked).  Everything stored is public.  Raises
:class:`InvalidMessage` for a lying aggregator and lets
:class:`~psc.service.client.PeerUnavailable` through when the aggregator does not answer
(the replica is unchanged: a retry later resumes where it stopped).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from psc.exceptions import InvalidMessage, PscError, UnknownParty
from psc.hazmat import merkle
from psc.ledger.store import EnvelopeRecord, PartyRecord, SQLiteLedger
from psc.ledger.translog import SignedTreeHead, verify_tree_head_signature
from psc.parties.registry import open_agency_registration
from psc.parties.rights.aggregator import ADJUSTMENT_SCHEMA
from psc.parties.rights.messages import Adjustment, AdjustmentEntry
from psc.protocol import codec
from psc.protocol.heads import Prover
from psc.protocol.log_messages import MAX_PAGE_LEAVES, ConsistencyProof, LogLeaves
from psc.protocol.logview import ContributionReader, LedgerLogView, LiveSums, Requester
from psc.protocol.messages import (
    LogEntry,
    RelyingPartyRegistration,
    SignedMessage,
    Submission,
    TreeHead,
)
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.signing import digest, open_signed

__all__ = [
    "LogReplica",
    "LogSource",
    "check_extension",
    "check_leaves",
    "check_page",
    "open_tree_head",
]


class LogSource(Protocol):
    """Where a replica reads the log: ``get(path)`` returns a route's body
    (:class:`~psc.service.client.HttpPeer` is one; a refusal raises the peer's exception
    class, e.g. ``KeyError`` for 404)."""

    def get(self, path: str) -> bytes: ...


def open_tree_head(data: bytes, aggregator_key: bytes) -> SignedTreeHead:
    """Decode a served ``tree-head`` message and verify its signature under
    ``aggregator_key`` (raw Ed25519).  Raises :class:`InvalidMessage`."""
    th = codec.decode(data, TreeHead)
    sth = SignedTreeHead(th.size, th.root, th.timestamp_ms, th.signature)
    try:
        verify_tree_head_signature(sth, Ed25519PublicKey.from_public_bytes(aggregator_key))
    except InvalidMessage:
        raise InvalidMessage(
            f"the tree head at size {th.size} is not signed by the aggregator key of the "
            "registry-signed parameters: refused"
        ) from None
    return sth


def check_extension(
    held: SignedTreeHead | None, new: SignedTreeHead, proof: ConsistencyProof | None
) -> None:
    """Refuse ``new`` unless it extends ``held`` (both already signature-checked).

    A smaller size is a shrinking log; the same size with another root a fork (two signed
    heads for one size); an earlier timestamp a head going back in time; a larger size
    needs ``proof`` for exactly ``(held.size, new.size)`` verifying between the two roots
    (``protocols/log.md`` section 7.2).  Raises :class:`InvalidMessage` naming which.
    """
    if held is None:
        return
    if new.size < held.size:
        raise InvalidMessage(
            f"the log shrank: its signed head covers {new.size} leaves, the replica holds a "
            f"signed head over {held.size}"
        )
    if new.timestamp_ms < held.timestamp_ms:
        raise InvalidMessage(
            f"the signed head at size {new.size} is older than the held one at size "
            f"{held.size}: tree heads went back in time"
        )
    if new.size == held.size:
        if new.root != held.root:
            raise InvalidMessage(
                f"a forked log: the aggregator signed two different roots for size {new.size}"
            )
        return
    if proof is None or (proof.old_size, proof.new_size) != (held.size, new.size):
        raise InvalidMessage(
            f"no consistency proof from size {held.size} to size {new.size} was served"
        )
    try:
        merkle.verify_consistency(held.size, new.size, held.root, new.root, list(proof.proof))
    except InvalidMessage:
        raise InvalidMessage(
            f"a forked or rewritten log: the signed head at size {new.size} does not extend "
            f"the held head at size {held.size} (the consistency proof fails)"
        ) from None


def check_leaves(held: Sequence[bytes], entries: Sequence[bytes], head: SignedTreeHead) -> None:
    """Refuse unless the held leaf hashes followed by the new leaves' bytes (hashed here,
    ``H(0x00 || entry)``) are exactly ``head.size`` leaves with root ``head.root``.
    Raises :class:`InvalidMessage`."""
    if len(held) + len(entries) != head.size:
        raise InvalidMessage(
            f"{len(held)} held and {len(entries)} served leaves are not the {head.size} the "
            "signed head covers"
        )
    tree = merkle.MerkleTree(held)
    tree.extend(merkle.leaf_hash(e) for e in entries)
    if tree.root() != head.root:
        raise InvalidMessage(
            f"the leaves served for {len(held)}..{head.size - 1} do not rebuild the signed "
            f"root at size {head.size}: a leaf was rewritten, dropped or added"
        )


def check_page(data: bytes, start: int, end: int) -> LogLeaves:
    """Decode a served ``log-leaves`` page asked for leaves ``start .. end - 1``: it must
    start at ``start`` and carry no leaf at or past ``end``.  Raises :class:`InvalidMessage`."""
    page = codec.decode(data, LogLeaves)
    if page.start != start or len(page.entries) > end - start:
        raise InvalidMessage(
            f"the page served for leaves {start}..{end - 1} holds leaves "
            f"{page.start}..{page.start + len(page.entries) - 1}"
        )
    return page


@dataclass
class _Batch:
    """What one sync stores, all verified before the transaction opens."""

    head: SignedTreeHead
    entries: list[bytes] = field(default_factory=list)
    parties: list[PartyRecord] = field(default_factory=list)
    envelopes: list[EnvelopeRecord] = field(default_factory=list)
    adjustments: list[tuple[object, ...]] = field(default_factory=list)


class LogReplica(LedgerLogView):
    """A :class:`~psc.protocol.logview.LogView` over a verified local copy of the log.

    ``params``: the registry-signed parameters (the aggregator key comes from them).
    ``source``: the aggregator's log routes (an :class:`~psc.service.client.HttpPeer` on
    the aggregator's base URL).  ``path``: the replica's SQLite file (created if absent;
    it resumes from what it holds).  ``readers``: as for :class:`LedgerLogView`; a reader
    for another leaf type sees only the leaf and what the replica stores.

    Construct it, then read: ``LogReplica(params, HttpPeer(url), "member-1.log.sqlite")``.
    Nothing is fetched until a read needs a size, party or proof the replica lacks, or
    :meth:`sync` is called.  Use in one process (after a ``fork`` the file is reopened;
    the source is the caller's to recreate).
    """

    def __init__(
        self,
        params: ProtocolParameters,
        source: LogSource,
        path: str | os.PathLike[str],
        *,
        readers: dict[str, ContributionReader] | None = None,
    ) -> None:
        if str(path) == ":memory:":
            raise ValueError("a log replica lives in a file (pass its path), not in memory")
        ledger = SQLiteLedger(os.fspath(path))
        with ledger.transaction():
            for stmt in ADJUSTMENT_SCHEMA:
                ledger.connection.execute(stmt)
        super().__init__(params, ledger, readers=readers)
        self.source = source

    # -- what it holds ---------------------------------------------------------------------
    def _replica(self) -> SQLiteLedger:
        led = self._open()
        assert isinstance(led, SQLiteLedger)  # LedgerLogView reopens its file as one
        return led

    def head(self) -> SignedTreeHead | None:
        """The latest verified signed tree head the replica holds (``None`` before a sync)."""
        return self._replica().log.latest_tree_head()

    @property
    def size(self) -> int:
        """How many verified leaves the replica holds (the size of :meth:`head`)."""
        head = self.head()
        return 0 if head is None else head.size

    # -- reading, syncing on demand -----------------------------------------------------------
    def live_sums(self, period: int, tree_size: int, tree_root: bytes) -> LiveSums:
        if tree_size > self.size:
            self.sync()
        return super().live_sums(period, tree_size, tree_root)

    def requester(self, name: str) -> Requester:
        try:
            return super().requester(name)
        except UnknownParty:
            self.sync()
            return super().requester(name)

    def prover(self) -> Prover | None:
        own = super().prover()
        assert own is not None

        def prove(old: int, new: int) -> list[bytes]:
            if new > self.size:
                self.sync()
            return list(own(old, new))

        return prove

    # -- syncing -------------------------------------------------------------------------------
    def sync(self) -> SignedTreeHead | None:
        """Fetch, verify and store what the aggregator's latest signed head adds.

        Returns the head now held (``None`` while the log has none).  Raises
        :class:`InvalidMessage` naming what differed; the replica is then unchanged.
        """
        led = self._replica()
        held = led.log.latest_tree_head()
        try:
            served = self.source.get("/v1/log/tree-head")
        except KeyError:
            if held is None:
                return None
            raise InvalidMessage(
                f"the aggregator serves no tree head, but signed one at size {held.size}"
            ) from None
        new = open_tree_head(served, self.params.aggregator_key)
        proof = None
        if held is not None and new.size > held.size:
            raw = self._get(f"/v1/log/consistency/{held.size}/{new.size}", "consistency proof")
            proof = codec.decode(raw, ConsistencyProof)
        check_extension(held, new, proof)
        if held is not None and new.size == held.size:
            return held
        batch = self._fetch(led, 0 if held is None else held.size, new)
        self._store(led, batch)
        return new

    def _get(self, path: str, what: str) -> bytes:
        try:
            return self.source.get(path)
        except (KeyError, ValueError) as e:  # 404 or 400: the log does not serve what it signed
            raise InvalidMessage(f"the aggregator does not serve the {what} ({path}): {e}") from e

    def _fetch(self, led: SQLiteLedger, held: int, new: SignedTreeHead) -> _Batch:
        batch = _Batch(new)
        at = held
        while at < new.size:
            end = min(new.size, at + MAX_PAGE_LEAVES)
            page = check_page(self._get(f"/v1/log/leaves/{at}/{end}", "log leaves"), at, end)
            batch.entries.extend(page.entries)
            at += len(page.entries)
        hashes = [bytes(r[0]) for r in led.connection.execute(_HASHES)]
        if len(hashes) != held:
            raise InvalidMessage(f"the replica's file holds {len(hashes)} leaves, not {held}")
        check_leaves(hashes, batch.entries, new)
        known = {p.party: p.registration for p in led.parties("agency")}
        known |= {p.party: p.registration for p in led.parties("relying-party")}
        for i, entry in enumerate(batch.entries, start=held):
            self._records(batch, i, entry, known)
        return batch

    def _records(self, batch: _Batch, i: int, entry: bytes, known: dict[str, bytes]) -> None:
        """Fetch and check the record leaf ``i`` names (if any) into ``batch``."""
        try:
            kind = codec.message_type(entry)
            if kind == LogEntry.TYPE:
                le = codec.decode(entry, LogEntry)
            elif kind == AdjustmentEntry.TYPE:
                ae = codec.decode(entry, AdjustmentEntry)
            else:
                return  # kept verbatim; a log view refuses leaves it cannot account for
        except InvalidMessage:
            return  # an opaque leaf: kept verbatim, hash-checked, nothing to fetch
        if kind == AdjustmentEntry.TYPE:
            sealed = self._record(f"/v1/log/adjustments/{ae.digest.hex()}", ae.digest, i)
            adj = _body(sealed, Adjustment, i)
            batch.adjustments.append(
                (
                    ae.digest,
                    adj.agency,
                    adj.kind,
                    adj.original,
                    adj.period,
                    adj.effective_period,
                    adj.nonce,
                    i,
                    sealed,
                    adj.order,
                )
            )
        elif le.kind == "submission":
            sealed = self._record(f"/v1/log/envelopes/{le.digest.hex()}", le.digest, i)
            sub = _body(sealed, Submission, i)
            batch.envelopes.append(
                EnvelopeRecord(le.digest, sub.agency, sub.period, sub.nonce, i, sealed, b"")
            )
        elif le.kind == "registration":
            if le.party in known:
                if digest(known[le.party]) != le.digest:
                    raise InvalidMessage(
                        f"leaf {i} registers {le.party!r} again with another registration"
                    )
                return
            path = f"/v1/log/parties/{quote(le.party, safe='')}"
            sealed = self._record(path, le.digest, i)
            rec = self._party(le.party, sealed, i)
            batch.parties.append(rec)
            known[le.party] = sealed

    def _record(self, path: str, want: bytes, i: int) -> bytes:
        data = self._get(path, f"record of leaf {i}")
        if digest(data) != want:
            raise InvalidMessage(
                f"the record served for leaf {i} ({path}) does not hash to the leaf's digest"
            )
        return data

    def _party(self, name: str, sealed: bytes, i: int) -> PartyRecord:
        try:
            kind = codec.message_type(codec.decode(sealed, SignedMessage).body)
            if kind == RelyingPartyRegistration.TYPE:
                rp = open_signed(
                    sealed, RelyingPartyRegistration, lambda m: self.params.registry_key
                )
                rec = PartyRecord(rp.party, "relying-party", "", rp.public_key, rp.purposes, sealed)
            else:
                reg = open_agency_registration(sealed, self.params)
                rec = PartyRecord(
                    reg.agency, "agency", reg.catalog_agency, reg.public_key, (), sealed
                )
        except PscError as e:
            raise InvalidMessage(
                f"the registration logged at leaf {i} for {name!r} does not verify: {e}"
            ) from None
        if rec.party != name:
            raise InvalidMessage(f"the registration logged at leaf {i} is not {name!r}'s")
        return rec

    def _store(self, led: SQLiteLedger, batch: _Batch) -> None:
        head = batch.head
        try:
            with led.transaction():
                for entry in batch.entries:
                    led.log.append(entry)
                for p in batch.parties:
                    led.put_party(p)
                for env in batch.envelopes:
                    led.put_envelope(env)
                for row in batch.adjustments:
                    led.connection.execute(_ADJUSTMENT_INSERT, row)
                led.connection.execute(
                    "INSERT INTO log_tree_heads (size, root, timestamp_ms, signature)"
                    " VALUES (?, ?, ?, ?)",
                    (head.size, head.root, head.timestamp_ms, head.signature),
                )
                if led.log.size != head.size or led.log.root(head.size) != head.root:
                    raise InvalidMessage("the stored leaves do not rebuild the signed root")
        except sqlite3.IntegrityError as e:
            raise InvalidMessage(
                f"the log up to size {head.size} records one envelope, nonce, party or "
                f"adjustment twice ({e}): refused"
            ) from None


_HASHES = "SELECT leaf_hash FROM log_leaves ORDER BY idx"
_ADJUSTMENT_INSERT = "INSERT INTO adjustments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


_M = TypeVar("_M", Submission, Adjustment)


def _body(sealed: bytes, cls: type[_M], i: int) -> _M:
    """The (not yet signature-checked) body of a sealed record whose bytes the log vouches
    for; the log view checks its signature when it sums it."""
    try:
        return codec.decode(codec.decode(sealed, SignedMessage).body, cls)
    except InvalidMessage as e:
        raise InvalidMessage(f"the record of leaf {i} is not a sealed {cls.TYPE}: {e}") from None
