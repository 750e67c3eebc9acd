"""Data-subject rights on the ledger: access, correction and appeal, deletion, credit repair.

Normative: ``protocols/rights.md``.  This module wires the rights office's
:class:`~psc.policy.rights.RightsDesk` (deadlines, outcomes) to the protocol roles, so every
outcome is something the protocol did and the log shows:

access, explanation
    answered with the verified access protocol: each agency's events come with Merkle
    inclusion proofs against the commitments in its logged envelopes
    (:meth:`~psc.protocol.roles.Subject.verify_access`), logged adjustments are verified and
    applied, the subject's score and grade are recomputed with the oracle and compared with
    the grade the key holder reveals to the subject.  A failed check leaves the request open
    (and is recorded); only a verified answer closes it.
correction, appeal, deletion
    an :class:`Adjustment`: the agency's signed, encrypted *compensating delta* that cancels
    the disputed event, linked to the original envelope (its hash) and to the event's leaf
    in that envelope's commitment, logged in the transparency log (an
    :class:`AdjustmentEntry` leaf) and added to the encrypted sums from the period it is
    logged in.
repair (credit repair)
    early removal of a record class for one subject: one adjustment per logged envelope
    that holds the subject's events of that rule, cancelling all of them from now on.
consent withdrawal
    recorded by the desk; the key holder's consent gate asks the desk
    (:class:`~psc.protocol.consent_gate.TokenConsentVerifier` ``withdrawn=desk.is_withdrawn``).

Why compensating deltas (the encrypted-accumulator world)
    The aggregator holds only per-(period, retention class) sums of ciphertexts; it cannot
    take one subject's event out of a sum, and the log is append-only.  So the agency, which
    alone knows the event, encrypts a *dense* vector holding minus the event's delta (and
    minus one on the cap counter of a capping rule) in the subject's slot and zeros
    elsewhere: the aggregator cannot tell whom it concerns.  An adjustment amends the
    accumulators of the *original* period (same retention class, so it expires exactly when
    the original does) but counts only for evaluation periods from ``effective_period`` on:
    grades of earlier periods stay as they were computed and revealed, and the cancelled
    event neither counts after the correction nor resurfaces later.  Algebra (ciphertexts
    multiply, plaintexts add), for an evaluation period ``P``::

        live(P) = prod_{(p, c) live at P} ( acc[p, c] * prod_{a amends (p, c), eff(a) <= P} adj[a] )

    and ``D(acc * adj) = sum of the events that were not cancelled``, a subset-sum of the
    events the accumulator holds, so the public bound of ``acc`` still bounds it (this is
    why the sum keeps ``acc``'s bound).  The aggregator refuses an adjustment that would
    cancel a leaf twice.  What it trusts the agency for is what it already trusts a
    submission for: that the ciphertexts encrypt what the agency says.  The subject checks
    the outcome: the grade revealed to it must equal the oracle's on its proven events minus
    the cancelled ones.

Leaks: to the aggregator and the log, that agency ``A`` amended its envelope of period
``p`` by ``k`` leaves of its commitment (random positions) from period ``e``; never the slot,
the rule or the delta.  The rights office (at the registry) knows the identity, as it already
does.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc import merkle
from psc.backends.paillier import PackedCiphertext, RandomnessPool
from psc.catalog import Catalog, period_index, period_label
from psc.events import Event, EventTable
from psc.exceptions import (
    CatalogMismatch,
    DuplicateSubmission,
    InvalidMessage,
    KeyMismatch,
    OverflowRisk,
    ReplayedNonce,
    RightsRequestError,
    StalePeriod,
    UnknownParty,
)
from psc.ledger import Ledger, SQLiteLedger
from psc.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.policy.clock import Clock as PolicyClock
from psc.policy.clock import WorkingCalendar
from psc.policy.consent import SqliteRefusalLog
from psc.policy.rights import DeadlinePolicy, RightsDesk, RightsRequest
from psc.protocol import codec
from psc.protocol.consent_gate import (
    ConsentKeyDirectory,
    CredentialRegistry,
    TokenConsentVerifier,
)
from psc.protocol.driver import Deployment, setup
from psc.protocol.messages import (
    HASH_BYTES,
    NONCE_BYTES,
    AccessResponse,
    AgencyRegistration,
    CapCiphertext,
    ClassCiphertext,
    LogInclusion,
    Message,
    SignedMessage,
    Submission,
    TreeHead,
)
from psc.protocol.roles import (
    Agency,
    Aggregator,
    Clock,
    KeyHolder,
    ProtocolParameters,
    RandBytes,
    Subject,
    _fresh,
    _trivial_zero,
    cap_bounds,
    delta_bounds,
    open_agency_registration,
    read_grades,
    system_clock,
)
from psc.protocol.signing import digest, open_signed, seal
from psc.simulation import AgencyInstance
from psc.translog import SignedTreeHead, verify_tree_head_signature

#: What an adjustment does, by the rights-request kind it carries out.
ADJUSTMENT_KINDS = ("correction", "appeal", "deletion", "repair")


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise InvalidMessage(what)


# ----------------------------------------------------------------------------------------
# messages (codec: psc.protocol.codec, like every other message)


@dataclass(frozen=True)
class AdjustmentOrder(Message):
    """Registry (rights office) -> agency: compensate some of a subject's committed events.

    Signed by the registry, which authenticated the subject and decided the request; never
    shown to the aggregator (it names the slot).
    """

    TYPE: ClassVar[str] = "adjustment-order"

    agency: str  # the agency instance that must compensate
    kind: str  # one of ADJUSTMENT_KINDS
    subject: int  # the subject's slot
    original: (
        bytes  # correction/appeal/deletion: hash of the envelope holding the event; b"" for repair
    )
    leaves: tuple[
        int, ...
    ]  # correction/appeal/deletion: leaf indices to cancel, ascending; () for repair
    rule: str  # repair: the rule (record class) to remove; "" otherwise
    case: str  # the rights office's reference of the request, e.g. "rights-17"
    nonce: bytes  # 16 fresh random bytes
    issued_at: int  # when the order was made

    def check(self) -> None:
        _need(self.kind in ADJUSTMENT_KINDS, "unknown adjustment kind")
        _need(self.subject >= 0, "subject must be non-negative")
        if self.kind == "repair":
            _need(
                not self.original and not self.leaves and bool(self.rule), "a repair names a rule"
            )
        else:
            _need(len(self.original) == HASH_BYTES, "original must be an envelope hash")
            _need(not self.rule, "only a repair names a rule")
            _need(bool(self.leaves), "name the leaves to cancel")
            _need(list(self.leaves) == sorted(set(self.leaves)), "leaves must be ascending")
            _need(self.leaves[0] >= 0, "leaf indices are non-negative")
        _need(0 < len(self.case) <= 128, "case must be 1-128 characters")
        _need(len(self.nonce) == NONCE_BYTES, "nonce must be 16 bytes")
        _need(self.issued_at >= 0, "issued_at must be non-negative")


@dataclass(frozen=True)
class Adjustment(Message):
    """Agency -> aggregator: a compensating delta for events of one logged envelope (signed).

    ``deltas`` and ``caps`` carry exactly the classes and cap counters of the agency's
    submissions (public, from the catalog), each a dense encrypted vector holding minus the
    cancelled events' contribution in the subject's slot and zeros elsewhere.
    """

    TYPE: ClassVar[str] = "adjustment"

    agency: str  # registered agency instance (the signer; the original's author)
    kind: str  # one of ADJUSTMENT_KINDS
    original: bytes  # SHA-256 of the original envelope (the link)
    period: int  # the original envelope's period: the accumulators this amends
    effective_period: int  # first evaluation period it counts for (when it is logged)
    leaves: tuple[int, ...]  # leaf indices of the original commitment it cancels, ascending
    order: bytes  # SHA-256 of the registry-signed AdjustmentOrder it carries out
    catalog_version: bytes  # the catalog in force
    nonce: bytes  # 16 fresh random bytes; never reused by this agency
    n_subjects: int  # length of every dense vector
    deltas: tuple[ClassCiphertext, ...]  # per retention class, sorted: encrypted compensation
    caps: tuple[CapCiphertext, ...]  # per (class, cap label), sorted: encrypted counter decrement
    created_at: int  # when the agency sealed it

    def check(self) -> None:
        _need(self.kind in ADJUSTMENT_KINDS, "unknown adjustment kind")
        _need(len(self.original) == HASH_BYTES, "original must be an envelope hash")
        _need(0 <= self.period <= self.effective_period, "effective_period precedes period")
        _need(bool(self.leaves), "an adjustment cancels at least one leaf")
        _need(list(self.leaves) == sorted(set(self.leaves)), "leaves must be ascending")
        _need(self.leaves[0] >= 0, "leaf indices are non-negative")
        _need(len(self.order) == HASH_BYTES, "order must be a hash")
        _need(len(self.catalog_version) == HASH_BYTES, "catalog_version must be a hash")
        _need(len(self.nonce) == NONCE_BYTES, "nonce must be 16 bytes")
        _need(self.n_subjects >= 1, "n_subjects must be positive")
        classes = [d.retention for d in self.deltas]
        _need(classes == sorted(set(classes)), "deltas must be sorted by class, no repeats")
        caps = [(c.retention, c.cap) for c in self.caps]
        _need(caps == sorted(set(caps)), "caps must be sorted by (class, cap), no repeats")
        _need(self.created_at >= 0, "created_at must be non-negative")


@dataclass(frozen=True)
class AdjustmentEntry(Message):
    """The transparency-log leaf of an accepted adjustment: hashes and public metadata only."""

    TYPE: ClassVar[str] = "adjustment-entry"

    kind: str  # one of ADJUSTMENT_KINDS
    party: str  # the agency
    original: bytes  # SHA-256 of the amended envelope (the link to its "submission" entry)
    period: int  # the amended envelope's period
    effective_period: int  # first evaluation period it counts for
    leaves: tuple[int, ...]  # cancelled leaf indices of the original commitment
    digest: bytes  # SHA-256 of the sealed Adjustment
    catalog_version: bytes  # the catalog in force

    def check(self) -> None:
        _need(self.kind in ADJUSTMENT_KINDS, "unknown adjustment kind")
        _need(len(self.original) == HASH_BYTES, "original must be a hash")
        _need(0 <= self.period <= self.effective_period, "effective_period precedes period")
        _need(list(self.leaves) == sorted(set(self.leaves)) and bool(self.leaves), "bad leaves")
        _need(len(self.digest) == HASH_BYTES, "digest must be a hash")
        _need(len(self.catalog_version) == HASH_BYTES, "catalog_version must be a hash")


def adjustment_bounds(
    catalog: Catalog, catalog_agency: str, n_leaves: int
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Public bounds of an adjustment cancelling ``n_leaves`` events of one agency's envelope.

    Per class: ``min(n_leaves * max |delta| of the agency's rules in the class, the agency's
    period bound)``; per cap counter: ``min(n_leaves, the submission's bound)``.  Derived
    from public data only, so the bound says nothing about which events were cancelled.
    """
    deltas = {}
    for c, bound in delta_bounds(catalog, catalog_agency).items():
        biggest = max(
            abs(r.delta) for r in catalog.rules if r.agency == catalog_agency and r.retention == c
        )
        deltas[c] = min(n_leaves * biggest, bound)
    caps = {k: min(n_leaves, b) for k, b in cap_bounds(catalog, catalog_agency).items()}
    return deltas, caps


def _logged_adjustment(params: ProtocolParameters, data: bytes) -> tuple[AdjustmentEntry, int]:
    """Anyone: the adjustment entry (and its index) an aggregator-signed inclusion proves."""
    inc = codec.decode(data, LogInclusion)
    th = inc.tree_head
    verify_tree_head_signature(
        SignedTreeHead(th.size, th.root, th.timestamp_ms, th.signature),
        Ed25519PublicKey.from_public_bytes(params.aggregator_key),
    )
    merkle.verify_inclusion(inc.entry, inc.index, th.size, inc.proof, th.root)
    return codec.decode(inc.entry, AdjustmentEntry), inc.index


def verify_adjustment(
    params: ProtocolParameters,
    agencies: Mapping[str, AgencyRegistration],
    sealed: bytes,
    inclusion: bytes,
) -> Adjustment:
    """Subject (or auditor): check a logged adjustment and return it.

    Checks the agency's signature (through its registry-signed registration), the log
    inclusion of an :class:`AdjustmentEntry` for exactly this adjustment, and that the
    entry's public fields are the adjustment's.  Raises :class:`InvalidMessage`.
    """

    def key_of(m: Adjustment) -> bytes:
        reg = agencies.get(m.agency)
        if reg is None:
            raise InvalidMessage("adjustment from an unknown agency")
        return reg.public_key

    adj = open_signed(sealed, Adjustment, key_of)
    entry, _ = _logged_adjustment(params, inclusion)
    if (
        entry.digest != digest(sealed)
        or (entry.kind, entry.party, entry.original) != (adj.kind, adj.agency, adj.original)
        or (entry.period, entry.effective_period, entry.leaves)
        != (adj.period, adj.effective_period, adj.leaves)
    ):
        raise InvalidMessage("the log does not hold this adjustment")
    return adj


# ----------------------------------------------------------------------------------------
# roles, extended


class RightsRegistry(CredentialRegistry):
    """The registry with its rights office's one protocol act: ordering an adjustment.

    The order is signed, so an agency compensates only what the rights office decided.
    """

    def adjustment_order(
        self,
        identity: str,
        agency: str,
        kind: str,
        *,
        case: str,
        original: bytes = b"",
        leaves: Sequence[int] = (),
        rule: str = "",
    ) -> bytes:
        """Registry (rights office): a sealed :class:`AdjustmentOrder` for an agency.

        Leaks to the agency: that this slot's request was granted (it knows the slot's
        events anyway).  Raises :class:`UnknownParty` for an identity not enrolled,
        :class:`InvalidMessage` for an order that is malformed.
        """
        msg = AdjustmentOrder(
            agency=agency,
            kind=kind,
            subject=self.slot_of(identity),
            original=original,
            leaves=tuple(sorted(set(leaves))),
            rule=rule,
            case=case,
            nonce=self._randbytes(NONCE_BYTES),
            issued_at=int(self._clock().timestamp()),
        )
        return seal(msg, self._key)


class RightsAgency(Agency):
    """An agency that can compensate its own committed events when the rights office orders it.

    Holds, besides what :class:`Agency` holds, the set of its leaves already cancelled.
    """

    def __init__(
        self,
        agency_id: str,
        catalog_agency: str,
        params: ProtocolParameters,
        signing_key: Ed25519PrivateKey,
        *,
        pool: RandomnessPool | None = None,
        clock: Clock = system_clock,
        randbytes: RandBytes = os.urandom,
    ) -> None:
        super().__init__(
            agency_id,
            catalog_agency,
            params,
            signing_key,
            pool=pool,
            clock=clock,
            randbytes=randbytes,
        )
        self._cancelled: set[tuple[bytes, int]] = set()
        self._pending: dict[bytes, tuple[Adjustment, int]] = {}  # adjustment hash -> (msg, slot)

    def compensate(self, sealed_order: bytes) -> list[bytes]:
        """Agency, on a registry-signed order: the sealed :class:`Adjustment` s that carry it out.

        Pre-conditions: the order is the registry's, fresh and for this agency; every
        named leaf is one of the subject's events in the named envelope (accepted, with a
        receipt) and not yet cancelled.  A repair cancels every not-yet-cancelled event of
        the rule for the subject in every envelope whose class still counts (one adjustment
        per envelope).  Each adjustment's dense vectors hold minus the events' deltas (and
        cap counts) in the subject's slot, zeros elsewhere, encrypted under the bounds of
        :func:`adjustment_bounds`; it takes effect in the current period.  Changes no state
        until :meth:`accept_adjustment`.  Raises :class:`InvalidMessage` for an order that
        is not acceptable, :class:`~psc.exceptions.RightsRequestError` when there is
        nothing to compensate.
        """
        order = open_signed(sealed_order, AdjustmentOrder, lambda m: self.params.registry_key)
        _fresh(order.issued_at, int(self._clock().timestamp()))
        if order.agency != self.id or not 0 <= order.subject < self.params.n_subjects:
            raise InvalidMessage("the order is not for this agency or names no slot")
        cat = self.params.catalog
        now = period_index(self._clock().date())
        batches: list[tuple[int, bytes, list[tuple[Event, int]]]] = []
        if order.kind == "repair":
            if order.rule not in cat.rule_ids or cat.rule(order.rule).agency != self.catalog_agency:
                raise InvalidMessage(f"rule {order.rule!r} is not one of this agency's rules")
            months = cat.retention[cat.rule(order.rule).retention].months
            for p, c in sorted(self._committed.items()):
                if c.receipt is None or p + months <= now:
                    continue
                mine = [
                    (e, idx)
                    for e, _, idx in c.openings.get(order.subject, [])
                    if e.rule == order.rule and (c.envelope_hash, idx) not in self._cancelled
                ]
                if mine:
                    batches.append((p, c.envelope_hash, mine))
        else:
            hit = [(p, c) for p, c in self._committed.items() if c.envelope_hash == order.original]
            if not hit or hit[0][1].receipt is None:
                raise InvalidMessage("the order names no envelope this agency had accepted")
            p, c = hit[0]
            by_leaf = {idx: e for e, _, idx in c.openings.get(order.subject, [])}
            if any(i not in by_leaf for i in order.leaves):
                raise InvalidMessage("the order names a leaf that is not one of the subject's")
            if any((c.envelope_hash, i) in self._cancelled for i in order.leaves):
                raise InvalidMessage("the order names a leaf that is already cancelled")
            batches.append((p, c.envelope_hash, [(by_leaf[i], i) for i in order.leaves]))
        if not batches:
            raise RightsRequestError(
                f"{self.id} holds no live, uncancelled event of {order.rule!r} for this subject"
            )
        return [
            self._adjustment(order, digest(sealed_order), p, h, evs, now) for p, h, evs in batches
        ]

    def _adjustment(
        self,
        order: AdjustmentOrder,
        order_hash: bytes,
        period: int,
        original: bytes,
        events: list[tuple[Event, int]],
        now: int,
    ) -> bytes:
        cat = self.params.catalog
        table = EventTable.from_events(cat, [e for e, _ in events], self.params.n_subjects)
        dvec, cvec = table.delta_vectors(period), table.cap_vectors(period)
        dbounds, cbounds = adjustment_bounds(cat, self.catalog_agency, len(events))
        zeros = np.zeros(self.params.n_subjects, dtype=np.int64)
        msg = Adjustment(
            agency=self.id,
            kind=order.kind,
            original=original,
            period=period,
            effective_period=now,
            leaves=tuple(sorted(i for _, i in events)),
            order=order_hash,
            catalog_version=self.params.catalog_version,
            nonce=self._randbytes(NONCE_BYTES),
            n_subjects=self.params.n_subjects,
            deltas=tuple(
                ClassCiphertext(c, self._encrypt(-dvec[c], b)) for c, b in dbounds.items()
            ),
            caps=tuple(
                CapCiphertext(c, label, self._encrypt(-cvec.get((c, label), zeros), b))
                for (c, label), b in cbounds.items()
            ),
            created_at=int(self._clock().timestamp()),
        )
        sealed = seal(msg, self._key)
        self._pending[digest(sealed)] = (msg, order.subject)
        return sealed

    def accept_adjustment(self, sealed: bytes, inclusion: bytes) -> AdjustmentEntry:
        """Agency: check the aggregator logged its adjustment, then mark the leaves cancelled.

        A deletion also erases the events' openings (the record itself, PIPL Art. 47): the
        commitment keeps only an opaque salted hash.  Raises :class:`InvalidMessage` if the
        inclusion is not the aggregator's proof for an adjustment this agency made.
        """
        h = digest(sealed)
        entry, _ = _logged_adjustment(self.params, inclusion)
        pending = self._pending.get(h)
        if pending is None or entry.digest != h or entry.party != self.id:
            raise InvalidMessage("the inclusion is not for an adjustment this agency made")
        msg, slot = pending
        for i in msg.leaves:
            self._cancelled.add((msg.original, i))
        if msg.kind == "deletion":
            c = self._committed[msg.period]
            c.openings[slot] = [t for t in c.openings.get(slot, []) if t[2] not in msg.leaves]
        del self._pending[h]
        return entry


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS adjustments ("
    " adjustment_hash BLOB PRIMARY KEY, agency TEXT NOT NULL, kind TEXT NOT NULL,"
    " original BLOB NOT NULL, period INTEGER NOT NULL, effective_period INTEGER NOT NULL,"
    " nonce BLOB NOT NULL, log_index INTEGER NOT NULL, adjustment BLOB NOT NULL,"
    " UNIQUE (agency, nonce))",
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

    Its ledger must be a :class:`~psc.ledger.SQLiteLedger`: adjustments live in two tables of
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
            for stmt in _SCHEMA:
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

    def _inclusion(self, index: int) -> bytes:
        log = self.ledger.log
        sth = log.latest_tree_head()
        assert sth is not None and sth.size > index  # signed at every append
        return codec.encode(
            LogInclusion(
                entry=log.entry(index),
                index=index,
                proof=tuple(log.inclusion_proof(index, sth.size)),
                tree_head=TreeHead(sth.size, sth.root, sth.timestamp_ms, sth.signature),
            )
        )

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
        the slot range (else :class:`OverflowRisk`).  Raises :class:`InvalidMessage`,
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
        Idempotent: the same adjustment again returns its inclusion and changes nothing.
        Leaks to the log: agency, original envelope hash, periods, leaf indices.
        """
        h = digest(sealed)
        if self._known(h):
            return self.adjustment_inclusion(h)
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
            index = led.log.append(codec.encode(entry))
            led.log.sign_tree_head()
            conn.execute(
                "INSERT INTO adjustments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            conn.executemany(
                "INSERT INTO adjustment_leaves VALUES (?, ?, ?)",
                [(adj.original, i, h) for i in adj.leaves],
            )
        return self._inclusion(index)

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
        zero = _trivial_zero(self.params)
        out = (
            self._backend.sum(score) if score else zero,
            {label: self._backend.sum(v) if v else zero for label, v in caps.items()},
        )
        self._adj_live = {key: out}
        return out


# ----------------------------------------------------------------------------------------
# the rights office


@dataclass(frozen=True)
class ProvenEvent:
    """One of the subject's events as the verified access protocol proved it."""

    agency: str
    envelope: bytes  # hash of the logged envelope whose commitment holds it
    leaf: int  # its leaf index there (what a correction cites)
    event: Event
    cancelled_by: bytes | None  # hash of the logged adjustment cancelling it, if any
    cancelled_from: int | None  # the adjustment's effective period

    @property
    def ref(self) -> str:
        """The reference a correction, appeal or deletion request cites: ``envelope#leaf``."""
        return f"{self.envelope.hex()}#{self.leaf}"

    def counts_at(self, period: int) -> bool:
        """Whether the event still counts in the score at ``period``."""
        return self.cancelled_from is None or period < self.cancelled_from


@dataclass(frozen=True)
class AccessAnswer:
    """What an access request returned: proven events, recomputed score, revealed grade."""

    at: int  # evaluation period
    events: tuple[ProvenEvent, ...]
    score: int  # recomputed with the oracle from the events that count at ``at``
    grade: str  # the oracle's grade for that score (with caps)
    revealed_grade: str  # the grade the key holder revealed to the subject

    def to_json(self) -> dict[str, Any]:
        """The answer as the desk records it (no salts, no proofs: those were checked)."""
        return {
            "at": period_label(self.at),
            "score": self.score,
            "grade": self.grade,
            "revealed_grade": self.revealed_grade,
            "verified": True,
            "events": [
                {
                    "ref": e.ref,
                    "agency": e.agency,
                    "rule": e.event.rule,
                    "date": e.event.date.isoformat(),
                    "evidence": e.event.evidence,
                    "cancelled_by": e.cancelled_by.hex() if e.cancelled_by else None,
                    "cancelled_from": (
                        period_label(e.cancelled_from) if e.cancelled_from is not None else None
                    ),
                }
                for e in self.events
            ],
        }


_LINKS = (
    "CREATE TABLE IF NOT EXISTS rights_ledger_links ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL,"
    " at TEXT NOT NULL, action TEXT NOT NULL, adjustment_hash BLOB, log_index INTEGER,"
    " note TEXT NOT NULL DEFAULT '')"
)


@dataclass(frozen=True)
class LedgerLink:
    """What the rights office did on the ledger for a request (or tried to)."""

    request_id: int
    at: dt.datetime
    action: str  # "adjustment-logged", "access-verified" or "access-failed"
    adjustment_hash: bytes | None
    log_index: int | None
    note: str


def parse_ref(ref: str) -> tuple[bytes, int]:
    """``envelope-hash-hex#leaf`` -> (envelope hash, leaf).  Raises :class:`RightsRequestError`."""
    head, sep, tail = ref.partition("#")
    try:
        h, leaf = bytes.fromhex(head), int(tail)
    except ValueError:
        h, leaf = b"", -1
    if not sep or len(h) != HASH_BYTES or leaf < 0:
        raise RightsRequestError(
            f"ref {ref!r} is not ENVELOPE#LEAF (64 hex digits, '#', a leaf index); take it from "
            "the access answer"
        )
    return h, leaf


class RightsOffice:
    """The rights office: runs each rights request through the desk *and* the protocol.

    Run by the scheme operator next to the registry (it knows identities, as the registry
    does).  It talks to the agencies, the aggregator and the key holder only through their
    protocol methods, and checks answers with a :class:`~psc.protocol.roles.Subject` client,
    as the subject's own software would.  ``registrations`` are the registry-signed agency
    registrations (public).  The desk's connection also holds ``rights_ledger_links``: per
    request, the adjustments logged and the access attempts, failed ones included.
    """

    def __init__(
        self,
        desk: RightsDesk,
        registry: RightsRegistry,
        aggregator: RightsAggregator,
        key_holder: KeyHolder,
        agencies: Sequence[RightsAgency],
        registrations: Sequence[bytes],
        *,
        by: str = "rights-office",
    ) -> None:
        self.desk = desk
        self.registry = registry
        self.aggregator = aggregator
        self.key_holder = key_holder
        self.params = aggregator.params
        self.agencies = {a.id: a for a in agencies}
        self.registrations = list(registrations)
        #: agency id -> its registry-signed registration, verified
        self.agency_registrations = {
            r.agency: r for r in (open_agency_registration(s, self.params) for s in registrations)
        }
        self.by = by
        with desk.conn:
            desk.conn.execute(_LINKS)

    # -- bookkeeping -----------------------------------------------------------------------
    def _link(
        self,
        request_id: int,
        action: str,
        *,
        adjustment_hash: bytes | None = None,
        log_index: int | None = None,
        note: str = "",
    ) -> None:
        with self.desk.conn:
            self.desk.conn.execute(
                "INSERT INTO rights_ledger_links (request_id, at, action, adjustment_hash,"
                " log_index, note) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    self.desk.clock.now().isoformat(),
                    action,
                    adjustment_hash,
                    log_index,
                    note,
                ),
            )

    def links(self, request_id: int) -> list[LedgerLink]:
        """What was done on the ledger for a request, oldest first."""
        rows = self.desk.conn.execute(
            "SELECT request_id, at, action, adjustment_hash, log_index, note"
            " FROM rights_ledger_links WHERE request_id = ? ORDER BY id",
            (request_id,),
        )
        return [
            LedgerLink(
                int(r[0]),
                dt.datetime.fromisoformat(r[1]),
                str(r[2]),
                None if r[3] is None else bytes(r[3]),
                None if r[4] is None else int(r[4]),
                str(r[5]),
            )
            for r in rows
        ]

    def overdue(self) -> list[RightsRequest]:
        """Open requests past their deadline (the desk's timer)."""
        return self.desk.overdue()

    def _current_period(self) -> int:
        return period_index(self.desk.clock.now().astimezone(dt.UTC).date())

    # -- access and explanation -------------------------------------------------------------
    def open_access(self, identity: str, *, kind: str = "access", note: str = "") -> RightsRequest:
        """Open an access (or explanation) request for an enrolled identity."""
        if kind not in ("access", "explanation"):
            raise RightsRequestError("open_access opens access or explanation requests")
        self.registry.slot_of(identity)
        return self.desk.open(kind, identity, details={"note": note} if note else None)

    def answer_access(
        self, request_id: int, *, first_period: int, at: int | None = None
    ) -> AccessAnswer:
        """Answer an open access request with the verified access protocol, then close it.

        For every agency: the registry's signed access request, the agency's answer, the
        subject client's check of every inclusion proof against the logged commitments.
        Then the logged adjustments amending those envelopes are verified and applied, the
        score and grade at ``at`` (default: the current period) are recomputed with the
        oracle, and compared with the grade the key holder reveals to the subject.  Only if
        all of that holds is the answer recorded and the request granted.  Otherwise the
        failure is recorded (``access-failed``), the request stays open, and the error
        (:class:`InvalidMessage`) propagates.
        """
        req = self.desk.get(request_id)
        if req.kind not in ("access", "explanation") or req.status != "open":
            raise RightsRequestError(f"request {request_id} is not an open access request")
        at = self._current_period() if at is None else at
        try:
            answer = self.verified_access(req.subject, first_period=first_period, at=at)
        except InvalidMessage as exc:
            self._link(request_id, "access-failed", note=str(exc))
            raise
        self.desk.answer_access(request_id, answer.to_json(), by=self.by)
        self._link(request_id, "access-verified", note=f"{len(answer.events)} events proven")
        return answer

    def verified_access(self, identity: str, *, first_period: int, at: int) -> AccessAnswer:
        """The verified access protocol for one subject (what :meth:`answer_access` records).

        Raises :class:`InvalidMessage` if any answer, proof or adjustment fails to verify,
        or if the proven events do not explain the grade revealed to the subject.  Leaves
        a ``reveal`` entry in the log (the subject's own grade).
        """
        first = first_period
        slot = self.registry.slot_of(identity)
        subject = Subject(slot, self.params)
        for reg in self.registrations:
            subject.learn_agency(reg)
        inclusions = {
            rec.envelope_hash: self.aggregator.log_inclusion(rec.envelope_hash)
            for rec in self.aggregator.ledger.envelopes()
        }
        proven: list[tuple[str, bytes, int, Event]] = []
        for agency in self.agencies.values():
            request = self.registry.access_request(identity, first, at)
            response = agency.answer_access(request)
            events = subject.verify_access(request, response, inclusions)
            # verify_access checked the signature and every proof; read the leaf positions
            resp = open_signed(
                response, AccessResponse, lambda m: self.agency_registrations[m.agency].public_key
            )
            where = [(pe.envelope_hash, op.index) for pe in resp.periods for op in pe.events]
            if len(where) != len(events):
                raise InvalidMessage("access response changed between checks")
            proven += [(resp.agency, h, i, e) for (h, i), e in zip(where, events, strict=True)]
        cancelled: dict[tuple[bytes, int], tuple[bytes, int]] = {}
        for rec in self.aggregator.adjustments({h for _, h, _, _ in proven}):
            adj = verify_adjustment(
                self.params,
                self.agency_registrations,
                rec.adjustment,
                self.aggregator.adjustment_inclusion(rec.adjustment_hash),
            )
            for leaf in adj.leaves:
                cancelled[(adj.original, leaf)] = (rec.adjustment_hash, adj.effective_period)
        out = []
        for agency_id, h, leaf, e in proven:
            by, eff = cancelled.get((h, leaf), (None, None))
            out.append(ProvenEvent(agency_id, h, leaf, e, by, eff))
        counting = [p.event for p in out if p.counts_at(at)]
        score, grade = subject.explain(counting, at)
        revealed = self._reveal_own_grade(slot, at)
        if revealed != grade:
            raise InvalidMessage(
                f"the proven events give grade {grade} at {period_label(at)}, but {revealed} "
                "was revealed: an agency left an event out of its answer"
            )
        return AccessAnswer(at, tuple(out), score, grade, revealed)

    def _reveal_own_grade(self, slot: int, period: int) -> str:
        request = self.registry.grade_request([slot], period)
        answer = self.key_holder.answer(self.aggregator.prepare_reveal(request))
        self.key_holder.check_logged(answer, self.aggregator.release(answer.notice))
        return read_grades(self.params, request, answer.response)[slot]

    # -- correction, appeal, deletion ------------------------------------------------------
    def open_correction(
        self, identity: str, ref: str, *, kind: str = "correction", note: str = ""
    ) -> RightsRequest:
        """Open a correction, appeal or deletion of the event ``ref`` (``envelope#leaf``, from
        the access answer).  The rule is looked up from the subject's proven event at grant
        time; here only the reference's shape and the envelope's existence are checked."""
        if kind not in ("correction", "appeal", "deletion"):
            raise RightsRequestError("open_correction opens correction, appeal or deletion")
        h, _ = parse_ref(ref)
        env = self.aggregator.ledger.envelope(h)
        if env is None:
            raise RightsRequestError(f"no logged envelope {h.hex()[:16]}...; check the ref")
        self.registry.slot_of(identity)
        details: dict[str, Any] = {"agency": env.agency}
        if note:
            details["note"] = note
        return self.desk.open(kind, identity, ref=ref, details=details)

    def grant_correction(self, request_id: int) -> list[AdjustmentRecord]:
        """Grant a correction, appeal or deletion: the agency's compensating adjustment.

        The registry orders the agency to cancel the event; the agency seals the
        adjustment; the aggregator verifies, logs (linked to the original envelope) and
        stores it; the agency checks the log; then the office records the link and the desk
        the outcome (for a correction or appeal, the compensating delta ``-delta`` of the
        rule, for the current period).  Raises :class:`RightsRequestError` (not an open
        request of that kind), or the protocol's errors (then nothing was recorded).
        """
        req = self.desk.get(request_id)
        if req.kind not in ("correction", "appeal", "deletion") or req.status != "open":
            raise RightsRequestError(f"request {request_id} is not an open correction request")
        assert req.ref is not None  # the desk requires it for these kinds
        h, leaf = parse_ref(req.ref)
        agency = self._agency_of(h)
        event = self._proven_event(agency, req.subject, h, leaf)
        order = self.registry.adjustment_order(
            req.subject, agency.id, req.kind, case=f"rights-{req.id}", original=h, leaves=[leaf]
        )
        records = self._apply(agency, agency.compensate(order))
        self._link_all(request_id, records)  # before the decision: see rights.md §6
        if req.kind == "deletion":
            self.desk.grant_deletion(
                request_id, by=self.by, note=f"adjustment {records[0].adjustment_hash.hex()}"
            )
        else:
            self.desk.grant_correction(
                request_id,
                agency=agency.id,
                compensating_delta=-self.params.catalog.rule(event.rule).delta,
                period=period_label(records[0].effective_period),
                by=self.by,
            )
        return records

    def _link_all(self, request_id: int, records: Sequence[AdjustmentRecord]) -> None:
        for r in records:
            self._link(
                request_id,
                "adjustment-logged",
                adjustment_hash=r.adjustment_hash,
                log_index=r.log_index,
                note=f"amends envelope {r.original.hex()}",
            )

    def _proven_events(
        self, agency: RightsAgency, identity: str, first: int, last: int
    ) -> list[tuple[bytes, int, Event]]:
        """The subject's events at ``agency`` in ``[first, last]``, through a verified
        access answer: (envelope hash, leaf, event).  Raises :class:`InvalidMessage` if the
        answer does not verify."""
        subject = Subject(self.registry.slot_of(identity), self.params)
        for reg in self.registrations:
            subject.learn_agency(reg)
        inclusions = {
            rec.envelope_hash: self.aggregator.log_inclusion(rec.envelope_hash)
            for rec in self.aggregator.ledger.envelopes()
            if rec.agency == agency.id and first <= rec.period <= last
        }
        request = self.registry.access_request(identity, first, last)
        response = agency.answer_access(request)
        events = subject.verify_access(request, response, inclusions)
        resp = open_signed(
            response, AccessResponse, lambda m: self.agency_registrations[m.agency].public_key
        )
        where = [(pe.envelope_hash, op.index) for pe in resp.periods for op in pe.events]
        return [(h, i, e) for (h, i), e in zip(where, events, strict=True)]

    def _proven_event(
        self, agency: RightsAgency, identity: str, envelope: bytes, leaf: int
    ) -> Event:
        """The subject's event at ``envelope#leaf``, through a verified access answer.

        Raises :class:`RightsRequestError` if the reference is not one of the subject's
        proven events (and :class:`InvalidMessage` if the agency's answer does not verify).
        """
        env = self.aggregator.ledger.envelope(envelope)
        assert env is not None  # _agency_of found it
        for h, i, e in self._proven_events(agency, identity, env.period, env.period):
            if (h, i) == (envelope, leaf):
                return e
        raise RightsRequestError(
            f"{envelope.hex()}#{leaf} is not one of the subject's records; take the ref from "
            "the access answer"
        )

    def _agency_of(self, envelope_hash: bytes) -> RightsAgency:
        env = self.aggregator.ledger.envelope(envelope_hash)
        if env is None or env.agency not in self.agencies:
            raise RightsRequestError("the referenced envelope is not from a known agency")
        return self.agencies[env.agency]

    def _apply(self, agency: RightsAgency, sealed: Sequence[bytes]) -> list[AdjustmentRecord]:
        for s in sealed:  # all or nothing: check every adjustment before logging any
            self.aggregator.check_adjustment(s)
        with self.aggregator.ledger.transaction():
            inclusions = [self.aggregator.ingest_adjustment(s) for s in sealed]
        for s, inc in zip(sealed, inclusions, strict=True):
            agency.accept_adjustment(s, inc)
        want = {digest(s) for s in sealed}
        return [r for r in self.aggregator.adjustments() if r.adjustment_hash in want]

    # -- credit repair ---------------------------------------------------------------------
    def open_repair(self, identity: str, rule: str, ref: str, *, note: str = "") -> RightsRequest:
        """Open a credit-repair request: remove ``rule``'s record class for the subject early.

        ``ref`` is the event the subject cites (``envelope#leaf``, e.g. the latest record).
        """
        parse_ref(ref)
        self.registry.slot_of(identity)
        return self.desk.open(
            "repair", identity, ref=ref, rule=rule, details={"note": note} if note else None
        )

    def decide_repair(
        self,
        request_id: int,
        *,
        performance_proven: bool,
        event_date: dt.date | None = None,
    ) -> list[AdjustmentRecord]:
        """Decide a repair: if the desk's conditions hold, the agency cancels the class.

        ``event_date`` (the date the minimum publication period runs from) defaults to the
        latest of the subject's events of the rule that a verified access answer of the
        agency proves, so nobody has to be taken at their word for it.  The agency's
        adjustments (one per envelope holding the subject's live events of the rule) are
        sealed and checked by the aggregator *before* the desk decides, so a granted repair
        is never left without its effect; on a refusal nothing is logged.  Returns the
        logged adjustments (empty when refused).
        """
        req = self.desk.get(request_id)
        if req.kind != "repair" or req.status != "open" or req.rule is None:
            raise RightsRequestError(f"request {request_id} is not an open repair request")
        assert req.ref is not None
        agency = self._agency_of(parse_ref(req.ref)[0])
        if event_date is None:
            now = self._current_period()
            longest = self.params.catalog.max_retention_months
            dates = [
                e.date
                for _, _, e in self._proven_events(agency, req.subject, now - longest, now)
                if e.rule == req.rule
            ]
            if not dates:
                raise RightsRequestError(
                    f"{agency.id} proves no event of {req.rule!r} for the subject to repair"
                )
            event_date = max(dates)
        order = self.registry.adjustment_order(
            req.subject, agency.id, "repair", case=f"rights-{req.id}", rule=req.rule
        )
        sealed = agency.compensate(order)
        for s in sealed:
            self.aggregator.check_adjustment(s)
        decided = self.desk.decide_repair(
            request_id, event_date=event_date, performance_proven=performance_proven, by=self.by
        )
        if decided.status != "granted":
            return []
        records = self._apply(agency, sealed)
        self._link_all(request_id, records)  # the desk's grant came first: see rights.md §6
        return records

    # -- consent withdrawal ----------------------------------------------------------------
    def withdraw_consent(self, identity: str, token_id: str, relying_party: str) -> RightsRequest:
        """Withdraw a consent token: effective at once (the key holder's gate asks the desk)."""
        self.registry.slot_of(identity)
        return self.desk.open(
            "consent-withdrawal", identity, ref=token_id, details={"relying_party": relying_party}
        )


# ----------------------------------------------------------------------------------------
# a deployment with the rights office and the consent gate


@dataclass
class RightsDeployment:
    """A reference deployment (:func:`psc.protocol.driver.setup`) with rights workflows.

    ``directory`` is the key holder's consent-key directory (add registry-signed
    credentials to it), ``refusals`` the key holder's consent refusal log, ``office`` the
    rights office (its desk on ``office.desk``).
    """

    deployment: Deployment
    office: RightsOffice
    registry: RightsRegistry
    aggregator: RightsAggregator
    agencies: list[RightsAgency]
    directory: ConsentKeyDirectory
    refusals: SqliteRefusalLog


def setup_rights(
    catalog: Catalog,
    agencies: Sequence[AgencyInstance],
    n_subjects: int,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey],
    *,
    clock: PolicyClock,
    desk_db: sqlite3.Connection,
    key_holder_db: sqlite3.Connection,
    randbytes: RandBytes = os.urandom,
    ledger_path: str = ":memory:",
    calendar: WorkingCalendar | None = None,
    deadlines: DeadlinePolicy | None = None,
    max_validity: dt.timedelta | None = None,
) -> RightsDeployment:
    """Set up every party with the rights extensions, one clock for all of them.

    The key holder's consent gate is a :class:`TokenConsentVerifier` whose withdrawals come
    from the rights desk and whose refusals go to ``consent_refusals`` on ``key_holder_db``;
    the desk's tables live on ``desk_db``.  Keys, slots, nonces and pseudonyms come from
    ``randbytes``.
    """
    desk = RightsDesk(desk_db, clock, calendar=calendar, deadlines=deadlines, catalog=catalog)
    refusals = SqliteRefusalLog(key_holder_db)
    made: list[ConsentKeyDirectory] = []

    def gate(params: ProtocolParameters) -> TokenConsentVerifier:
        made.append(ConsentKeyDirectory(params))
        return TokenConsentVerifier(
            catalog,
            made[0],
            clock=clock.now,
            withdrawn=desk.is_withdrawn,
            refusals=refusals,
            max_validity=max_validity,
        )

    d = setup(
        catalog,
        agencies,
        n_subjects,
        keypair,
        clock=clock.now,
        ledger_path=ledger_path,
        randbytes=randbytes,
        registry_cls=RightsRegistry,
        agency_cls=RightsAgency,
        aggregator_cls=RightsAggregator,
        consent=gate,
    )
    registry, aggregator = d.registry, d.aggregator
    assert isinstance(registry, RightsRegistry) and isinstance(aggregator, RightsAggregator)
    parties = [a for a in d.agencies if isinstance(a, RightsAgency)]
    assert len(parties) == len(d.agencies)
    office = RightsOffice(desk, registry, aggregator, d.key_holder, parties, d.registrations)
    return RightsDeployment(d, office, registry, aggregator, parties, made[0], refusals)


__all__ = [
    "ADJUSTMENT_KINDS",
    "AccessAnswer",
    "Adjustment",
    "AdjustmentEntry",
    "AdjustmentOrder",
    "AdjustmentRecord",
    "LedgerLink",
    "ProvenEvent",
    "RightsAgency",
    "RightsAggregator",
    "RightsDeployment",
    "RightsOffice",
    "RightsRegistry",
    "adjustment_bounds",
    "parse_ref",
    "setup_rights",
    "verify_adjustment",
]
