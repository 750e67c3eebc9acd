"""The aggregator side of the rights workflows: adjustments verified, logged, folded in.

Normative: ``protocols/rights.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import period_index
from psc.exceptions import (
    CatalogMismatch,
    DuplicateSubmission,
    InvalidMessage,
    KeyMismatch,
    OverflowRisk,
    ReplayedNonce,
    StalePeriod,
    UnknownParty,
)
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.ledger.store import Ledger, SQLiteLedger
from psc.parties.aggregator import Aggregator
from psc.parties.rights.messages import Adjustment, AdjustmentEntry, adjustment_bounds
from psc.protocol import codec, validity
from psc.protocol.messages import (
    SignedMessage,
    Submission,
)
from psc.protocol.parameters import ProtocolParameters, delta_bounds, trivial_zero
from psc.protocol.signing import digest, open_signed
from psc.seams import Clock, system_clock

#: The adjustments' tables on the ledger's connection (a log replica keeps them too).
ADJUSTMENT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS adjustments ("
    " adjustment_hash BLOB PRIMARY KEY, agency TEXT NOT NULL, kind TEXT NOT NULL,"
    " original BLOB NOT NULL, period INTEGER NOT NULL, effective_period INTEGER NOT NULL,"
    " nonce BLOB NOT NULL, log_index INTEGER NOT NULL, adjustment BLOB NOT NULL,"
    " order_hash BLOB NOT NULL, UNIQUE (agency, nonce), UNIQUE (order_hash, original))",
    "CREATE TABLE IF NOT EXISTS adjustment_leaves ("
    " original BLOB NOT NULL, leaf INTEGER NOT NULL, adjustment_hash BLOB NOT NULL,"
    " PRIMARY KEY (original, leaf))",
)


@dataclass(frozen=True)
class AdjustmentRecord:
    """An accepted adjustment as the aggregator stores it."""

    adjustment_hash: bytes
    agency: str
    kind: str
    original: bytes
    period: int
    effective_period: int
    log_index: int
    adjustment: bytes  # the sealed Adjustment, verbatim


class RightsAggregator(Aggregator):
    """The aggregator, also accepting adjustments and counting them in the live sums.

    Its ledger must be a :class:`~psc.ledger.store.SQLiteLedger`: adjustments live in two tables of
    their own (``adjustments``, ``adjustment_leaves``) on the ledger's connection, written in
    the ledger's transactions, so the log leaf and the state change commit together.
    """

    def __init__(
        self,
        params: ProtocolParameters,
        ledger: Ledger,
        signing_key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
    ) -> None:
        if not isinstance(ledger, SQLiteLedger):
            raise TypeError("RightsAggregator keeps adjustments next to a SQLiteLedger")
        super().__init__(params, ledger, signing_key, clock=clock)
        self._sql = ledger
        with ledger.transaction():
            for stmt in ADJUSTMENT_SCHEMA:
                ledger.connection.execute(stmt)
        self._adj_live: dict[
            tuple[int, int, int], tuple[PackedCiphertext, dict[str, PackedCiphertext]]
        ] = {}

    # -- reading ---------------------------------------------------------------------------
    _ADJ = (
        "SELECT adjustment_hash, agency, kind, original, period, effective_period, log_index,"
        " adjustment FROM adjustments"
    )

    @staticmethod
    def _rec(row: tuple[Any, ...]) -> AdjustmentRecord:
        h, agency, kind, orig, p, e, idx, blob = row
        return AdjustmentRecord(
            bytes(h), str(agency), str(kind), bytes(orig), int(p), int(e), int(idx), bytes(blob)
        )

    def adjustments(self, originals: Iterable[bytes] | None = None) -> list[AdjustmentRecord]:
        """Accepted adjustments in log order (those amending ``originals``, if given)."""
        rows = [
            self._rec(r) for r in self._sql.connection.execute(self._ADJ + " ORDER BY log_index")
        ]
        if originals is None:
            return rows
        want = set(originals)
        return [r for r in rows if r.original in want]

    def adjustment_count(self) -> int:
        """How many adjustments were accepted (the live sums change only when this does)."""
        return int(self._sql.connection.execute("SELECT COUNT(*) FROM adjustments").fetchone()[0])

    def adjustment_inclusion(self, adjustment_hash: bytes) -> bytes:
        """Aggregator, for anyone: the adjustment's log entry with its audit path (encoded
        :class:`LogInclusion`, self-authenticating).  Raises ``KeyError`` if unknown."""
        row = self._sql.connection.execute(
            "SELECT log_index FROM adjustments WHERE adjustment_hash = ?", (adjustment_hash,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no accepted adjustment {adjustment_hash.hex()}")
        return self._inclusion(int(row[0]))

    # -- ingest ----------------------------------------------------------------------------
    def _adjuster_key(self, adj: Adjustment) -> bytes:
        rec = self.ledger.party(adj.agency)
        if rec is None or rec.role != "agency":
            raise UnknownParty(f"agency {adj.agency!r} is not registered")
        return rec.public_key

    def check_adjustment(
        self, sealed: bytes
    ) -> tuple[Adjustment, list[tuple[str, str, PackedCiphertext]]]:
        """Aggregator: every check of :meth:`ingest_adjustment`, writing nothing.

        Checks: signature of a registered agency; catalog version; the original is an
        accepted envelope *of the same agency* and of the stated period; the adjustment
        takes effect in the current period and the original still counts (else
        :class:`StalePeriod`); every leaf lies in the original commitment and none was
        cancelled before (else :class:`DuplicateSubmission`); the nonce is fresh for the
        agency (else :class:`ReplayedNonce`); the classes, cap counters, slot counts and
        declared bounds are those :func:`adjustment_bounds` gives; the folded sums stay in
        the slot range (else :class:`OverflowRisk`); every slot of every ciphertext within
        :func:`~psc.protocol.validity.adjustment_ranges`, by its proof (else
        :class:`~psc.exceptions.InvalidProof`).  Raises :class:`InvalidMessage`,
        :class:`UnknownParty`, :class:`CatalogMismatch` and the above.
        """
        adj = open_signed(sealed, Adjustment, self._adjuster_key)
        cat = self.params.catalog
        if adj.catalog_version != self.params.catalog_version:
            raise CatalogMismatch(
                "adjustment cites another catalog version than the one in force; seal it again"
            )
        orig = self.ledger.envelope(adj.original)
        if orig is None or orig.agency != adj.agency or orig.period != adj.period:
            raise InvalidMessage("adjustment amends no envelope of this agency and period")
        now = period_index(self._clock().date())
        if adj.effective_period != now:
            raise StalePeriod(
                f"an adjustment takes effect in the period it is logged in ({now}), not "
                f"{adj.effective_period}; seal it again"
            )
        rec = self.ledger.party(adj.agency)
        assert rec is not None  # checked by _adjuster_key
        classes = delta_bounds(cat, rec.catalog_agency)
        longest = max((cat.retention[c].months for c in classes), default=0)
        if adj.period + longest <= now:
            raise StalePeriod(f"envelope of period {adj.period} no longer counts; nothing to amend")
        sub = codec.decode(codec.decode(orig.envelope, SignedMessage).body, Submission)
        if adj.leaves[-1] >= sub.commitment_size:
            raise InvalidMessage("adjustment names a leaf beyond the original commitment")
        conn = self._sql.connection
        marks = ",".join("?" * len(adj.leaves))
        taken = conn.execute(
            f"SELECT leaf FROM adjustment_leaves WHERE original = ? AND leaf IN ({marks})",
            (adj.original, *adj.leaves),
        ).fetchall()
        if taken:
            raise DuplicateSubmission(
                f"leaves {sorted(int(r[0]) for r in taken)} of that envelope are already "
                "cancelled; an event is compensated once"
            )
        used = conn.execute(
            "SELECT 1 FROM adjustments WHERE agency = ? AND nonce = ?", (adj.agency, adj.nonce)
        ).fetchone()
        if used is not None or self.ledger.nonce_owner(adj.agency, adj.nonce) is not None:
            raise ReplayedNonce(f"agency {adj.agency!r} already used this nonce")
        if adj.n_subjects != self.params.n_subjects:
            raise InvalidMessage("adjustment has the wrong slot count")
        dbounds, cbounds = adjustment_bounds(cat, rec.catalog_agency, len(adj.leaves))
        if [d.retention for d in adj.deltas] != list(dbounds):
            raise InvalidMessage("adjustment does not carry exactly its agency's classes")
        if [(c.retention, c.cap) for c in adj.caps] != list(cbounds):
            raise InvalidMessage("adjustment does not carry exactly its agency's cap counters")
        items = [(d.retention, "", d.ciphertext, dbounds[d.retention]) for d in adj.deltas] + [
            (c.retention, c.cap, c.ciphertext, cbounds[(c.retention, c.cap)]) for c in adj.caps
        ]
        out = []
        folded = self._folded_bounds()
        for retention, label, data, bound in items:
            try:
                ct = self._backend.deserialize(data)
            except (KeyMismatch, InvalidMessage) as exc:
                raise InvalidMessage(
                    "adjustment ciphertext does not decode under this key"
                ) from exc
            if ct.n_values != self.params.n_subjects:
                raise InvalidMessage("adjustment ciphertext has the wrong slot count")
            if ct.bound != bound:
                raise InvalidMessage("adjustment ciphertext does not declare its catalog bound")
            acc = self.ledger.accumulator(adj.period, retention, label)
            assert acc is not None  # the original envelope added into it
            if acc.bound + folded.get((adj.period, retention, label), 0) + bound > (
                self.params.layout.max_value
            ):
                raise OverflowRisk(
                    "this adjustment would let the amended sum exceed the slot range; the "
                    "envelope has been amended too often"
                )
            out.append((retention, label, ct.with_bound(bound)))
        # every slot of every ciphertext within its adjustment range (rights.md, issue 11)
        header = {f: getattr(adj, f) for f in validity.ADJUSTMENT_HEADER}
        self._verify_ranges(
            out,
            validity.adjustment_ranges(cat, rec.catalog_agency, len(adj.leaves)),
            adj.proofs,
            lambda index, vr: validity.adjustment_context(**header, index=index, vector=vr),
            agency=adj.agency,
            message="adjustment",
        )
        return adj, out

    def _folded_bounds(self) -> dict[tuple[int, str, str], int]:
        out: dict[tuple[int, str, str], int] = {}
        for rec in self.adjustments():
            adj = codec.decode(codec.decode(rec.adjustment, SignedMessage).body, Adjustment)
            for retention, label, data in self._parts(adj):
                key = (adj.period, retention, label)
                out[key] = out.get(key, 0) + self._backend.deserialize(data).bound
        return out

    @staticmethod
    def _parts(adj: Adjustment) -> list[tuple[str, str, bytes]]:
        return [(d.retention, "", d.ciphertext) for d in adj.deltas] + [
            (c.retention, c.cap, c.ciphertext) for c in adj.caps
        ]

    def ingest_adjustment(self, sealed: bytes) -> bytes:
        """Aggregator: verify an adjustment, then log and store it, atomically.

        All checks of :meth:`check_adjustment` run before any state is touched; then one
        transaction appends an :class:`AdjustmentEntry` (linked to the original by its
        hash), signs a tree head, stores the adjustment and claims its leaves.  Returns the
        encoded :class:`LogInclusion` of the entry: the agency's (and anyone's) receipt.
        Idempotent on the adjustment *and on its order*: the same adjustment, or another
        adjustment of the agency carrying out the same registry order for the same
        envelope (a retry after a crash, with fresh nonces), returns the inclusion of the
        one logged first and changes nothing, so an order takes effect exactly once.
        Leaks to the log: agency, original envelope hash, periods, leaf indices.
        """
        h = digest(sealed)
        if self._known(h):
            return self.adjustment_inclusion(h)
        same = self._carried_out(open_signed(sealed, Adjustment, self._adjuster_key))
        if same is not None:  # a retry of an order already carried out: its first effect
            return self.adjustment_inclusion(same)
        adj, _ = self.check_adjustment(sealed)
        entry = AdjustmentEntry(
            kind=adj.kind,
            party=adj.agency,
            original=adj.original,
            period=adj.period,
            effective_period=adj.effective_period,
            leaves=adj.leaves,
            digest=h,
            catalog_version=adj.catalog_version,
        )
        led, conn = self.ledger, self._sql.connection
        with led.transaction():
            if self._known(h):  # another writer won the race
                return self.adjustment_inclusion(h)
            same = self._carried_out(adj, strict=True)
            if same is not None:
                return self.adjustment_inclusion(same)
            index = led.log.append(codec.encode(entry))
            led.log.sign_tree_head()
            conn.execute(
                "INSERT INTO adjustments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    h,
                    adj.agency,
                    adj.kind,
                    adj.original,
                    adj.period,
                    adj.effective_period,
                    adj.nonce,
                    index,
                    sealed,
                    adj.order,
                ),
            )
            conn.executemany(
                "INSERT INTO adjustment_leaves VALUES (?, ?, ?)",
                [(adj.original, i, h) for i in adj.leaves],
            )
        return self._inclusion(index)

    def ingest_adjustments(self, sealed: Sequence[bytes]) -> list[bytes]:
        """Aggregator: :meth:`ingest_adjustment` for several adjustments, all or nothing.

        Every adjustment not already logged (itself, or its order on its envelope) passes
        every check of :meth:`check_adjustment` before any is logged; then all are logged in
        one ledger transaction.  Returns their inclusions in order.  The same batch again
        returns the inclusions of the entries already logged and changes nothing.  Raises
        what :meth:`check_adjustment` raises (nothing is logged then).
        """
        for s in sealed:
            if self._known(digest(s)):
                continue
            if self._carried_out(open_signed(s, Adjustment, self._adjuster_key)) is None:
                self.check_adjustment(s)
        with self.ledger.transaction():
            return [self.ingest_adjustment(s) for s in sealed]

    def _carried_out(self, adj: Adjustment, *, strict: bool = False) -> bytes | None:
        """The logged adjustment of ``adj``'s agency carrying out the same order on the same
        envelope's same leaves (kind and periods too); raises :class:`DuplicateSubmission` for
        a different adjustment under an order already carried out on that envelope."""
        row = self._sql.connection.execute(
            "SELECT adjustment_hash, adjustment FROM adjustments WHERE order_hash = ?"
            " AND original = ? AND agency = ?",
            (adj.order, adj.original, adj.agency),
        ).fetchone()
        if row is None:
            return None
        old = codec.decode(codec.decode(bytes(row[1]), SignedMessage).body, Adjustment)
        same = (old.kind, old.period, old.effective_period, old.leaves) == (
            adj.kind,
            adj.period,
            adj.effective_period,
            adj.leaves,
        )
        if not same and not strict:
            return None  # the full checks say what is wrong with it
        if not same:
            raise DuplicateSubmission(
                "this registry order was already carried out on that envelope with other "
                "leaves; an order takes effect once"
            )
        return bytes(row[0])

    def adjustments_for_order(self, order_hash: bytes) -> list[AdjustmentRecord]:
        """The adjustments logged for one registry order (hash of the sealed order)."""
        rows = self._sql.connection.execute(
            self._ADJ + " WHERE order_hash = ? ORDER BY log_index", (order_hash,)
        )
        return [self._rec(r) for r in rows]

    def _known(self, h: bytes) -> bool:
        row = self._sql.connection.execute(
            "SELECT 1 FROM adjustments WHERE adjustment_hash = ?", (h,)
        ).fetchone()
        return row is not None

    # -- reveal ----------------------------------------------------------------------------
    def live_sums(self, period: int) -> tuple[PackedCiphertext, dict[str, PackedCiphertext]]:
        """Aggregator: the live sums at ``period`` with adjustments folded in (module doc).

        Each live accumulator ``(p, c, L)`` is multiplied by the adjustments amending it
        whose ``effective_period <= period``; the product keeps the accumulator's bound (a
        subset-sum of its events).  Without adjustments this is :meth:`Aggregator.live_sums`.
        """
        key = (period, self.ledger.envelope_count(), self.adjustment_count())
        if key in self._adj_live:
            return self._adj_live[key]
        cat = self.params.catalog
        amend: dict[tuple[int, str, str], list[PackedCiphertext]] = {}
        for rec in self.adjustments():
            if rec.effective_period > period:
                continue
            adj = codec.decode(codec.decode(rec.adjustment, SignedMessage).body, Adjustment)
            for retention, label, data in self._parts(adj):
                # the declared bound was checked against adjustment_bounds at ingest
                ct = self._backend.deserialize(data)
                amend.setdefault((adj.period, retention, label), []).append(ct)
        score: list[PackedCiphertext] = []
        caps: dict[str, list[PackedCiphertext]] = {label: [] for label in cat.cap_labels()}
        for acc in self.ledger.accumulators():
            months = cat.retention[acc.retention].months
            if not acc.period <= period < acc.period + months:
                continue
            ct = self._backend.deserialize(acc.ciphertext).with_bound(acc.bound)
            extra = amend.get((acc.period, acc.retention, acc.label))
            if extra:
                ct = self._backend.sum([ct, *extra]).with_bound(acc.bound)
            (score if acc.label == "" else caps[acc.label]).append(ct)
        zero = trivial_zero(self.params)
        out = (
            self._backend.sum(score) if score else zero,
            {label: self._backend.sum(v) if v else zero for label, v in caps.items()},
        )
        self._adj_live = {key: out}
        return out
