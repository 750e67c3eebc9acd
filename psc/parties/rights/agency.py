"""The agency side of the rights workflows: compensating its own committed events.

Normative: ``protocols/rights.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc.catalog import period_index
from psc.events import Event, EventTable
from psc.exceptions import (
    InvalidMessage,
    LogVerificationFailed,
    RightsRequestError,
)
from psc.hazmat.backends.paillier import RandomnessPool
from psc.parties.agency import Agency
from psc.parties.rights.messages import (
    Adjustment,
    AdjustmentEntry,
    AdjustmentOrder,
    _logged_adjustment,
    adjustment_bounds,
)
from psc.protocol import codec, validity
from psc.protocol.heads import HeadKeeper, Prover
from psc.protocol.messages import (
    NONCE_BYTES,
    CapCiphertext,
    ClassCiphertext,
    IngestReceipt,
    LogEntry,
    Submission,
)
from psc.protocol.parameters import ProtocolParameters, _fresh
from psc.protocol.signing import digest, open_signed, seal
from psc.seams import Clock, RandBytes, system_clock


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
        #: every head and receipt the log showed this agency (psc.protocol.heads)
        self.heads = HeadKeeper(Ed25519PublicKey.from_public_bytes(params.aggregator_key))
        #: where to ask for consistency proofs (the aggregator's log; proofs are verified)
        self.prove: Prover | None = None

    def accept_receipt(self, sealed: bytes) -> IngestReceipt:
        """Agency: :meth:`Agency.accept_receipt`, then keep the receipt's signed tree state.

        Raises :class:`~psc.exceptions.LogVerificationFailed` (and keeps nothing) if the
        receipt contradicts a head or receipt this agency holds (equivocation, or a history
        its consistency proof does not extend).
        """
        self.heads.observe_receipt(sealed, self.prove)
        return super().accept_receipt(sealed)

    def adopt_logged(self, period: int, sealed_envelope: bytes, sealed_receipt: bytes) -> None:
        """Agency, restarting: take the envelope the log holds for ``period`` as its own.

        After a restart the agency re-derives its commitment for ``period`` from its records
        (the salts come from its randomness seam), but its ciphertexts are freshly random,
        so the envelope it would submit differs from the one logged.  This keeps the
        re-derived openings and adopts the logged envelope and its receipt, once it checked
        that the logged envelope is signed by this agency, for this period, and commits to
        exactly the re-derived root.  Raises :class:`InvalidMessage` otherwise.
        """
        sub = open_signed(sealed_envelope, Submission, lambda m: self.public_key)
        c = self._committed.get(period)
        if c is None or sub.period != period or sub.commitment_root != c.tree.root():
            raise InvalidMessage("the logged envelope does not commit to this agency's records")
        c.envelope_hash = digest(sealed_envelope)
        self.accept_receipt(sealed_receipt)

    def audit_aggregator(self, inclusion_of: Callable[[bytes], bytes]) -> int:
        """Agency: check the aggregator still serves, as logged, every envelope it receipted.

        ``inclusion_of(envelope_hash)`` is the aggregator's
        :meth:`~psc.parties.aggregator.Aggregator.log_inclusion`.  For each receipt held: the
        inclusion must be served (else ``missing-row``: the envelope was dropped while its
        leaf stayed), prove the receipted entry at the receipted index (else ``rewritten``),
        and its tree head must be consistent with every head this agency holds (see
        :class:`~psc.protocol.heads.HeadKeeper`).  Returns how many envelopes were
        checked.  Raises :class:`~psc.exceptions.LogVerificationFailed`.
        """
        n = 0
        for c in self._committed.values():
            r = c.receipt
            if r is None:
                continue
            try:
                data = inclusion_of(c.envelope_hash)
            except LookupError:
                raise LogVerificationFailed(
                    "missing-row",
                    r.log_index,
                    f"the aggregator no longer serves envelope {c.envelope_hash.hex()[:16]}... "
                    f"it receipted at leaf {r.log_index}",
                ) from None
            inc = self.heads.observe_inclusion(data, self.prove)
            entry = codec.decode(inc.entry, LogEntry)
            if inc.index != r.log_index or entry.digest != c.envelope_hash:
                raise LogVerificationFailed(
                    "rewritten", r.log_index, "the served entry is not the receipted one"
                )
            n += 1
        return n

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
        leaves = tuple(sorted(i for _, i in events))
        header: dict[str, Any] = {
            "agency": self.id,
            "kind": order.kind,
            "original": original,
            "period": period,
            "effective_period": now,
            "leaves": leaves,
            "order": order_hash,
            "catalog_version": self.params.catalog_version,
            "nonce": self._randbytes(NONCE_BYTES),
            "n_subjects": self.params.n_subjects,
            "created_at": int(self._clock().timestamp()),
        }
        deltas: list[ClassCiphertext] = []
        caps: list[CapCiphertext] = []
        proofs: list[bytes] = []
        # every vector proven within its adjustment range, bound to the other fields
        ranges = validity.adjustment_ranges(cat, self.catalog_agency, len(leaves))
        for index, vr in enumerate(ranges):
            ctx = validity.adjustment_context(**header, index=index, vector=vr)
            if vr.cap:
                vec = -cvec.get((vr.retention, vr.cap), zeros)
                ct, proof = self._encrypt_proven(vec, cbounds[(vr.retention, vr.cap)], vr, ctx)
                caps.append(CapCiphertext(vr.retention, vr.cap, ct))
            else:
                vec = -dvec[vr.retention]
                ct, proof = self._encrypt_proven(vec, dbounds[vr.retention], vr, ctx)
                deltas.append(ClassCiphertext(vr.retention, ct))
            proofs.append(proof)
        msg = Adjustment(**header, deltas=tuple(deltas), caps=tuple(caps), proofs=tuple(proofs))
        sealed = seal(msg, self._key)
        self._pending[digest(sealed)] = (msg, order.subject)
        return sealed

    def recover(self, logged: Sequence[tuple[bytes, bytes]]) -> int:
        """Agency, at startup or after a crash: bring its rights state to what the log holds.

        ``logged``: (sealed adjustment, encoded log inclusion) of every logged adjustment,
        as the aggregator serves them to anyone.  Each one this agency signed and the log
        proves is applied as :meth:`accept_adjustment` would (leaves cancelled, deleted
        openings erased), whether or not this process sealed it, so a crash between the
        aggregator's commit and the agency's own record leaves no difference between the
        agency and the ledger.  Idempotent.  Returns how many were newly applied.  Raises
        :class:`InvalidMessage` for an adjustment whose inclusion does not verify.
        """
        n = 0
        for sealed, inclusion in logged:
            try:
                adj = open_signed(sealed, Adjustment, lambda m: self.public_key)
            except InvalidMessage:
                continue  # another agency's
            entry, _ = _logged_adjustment(self.params, inclusion)
            if entry.digest != digest(sealed) or entry.party != self.id:
                raise InvalidMessage("the inclusion is not for this agency's adjustment")
            self.heads.observe_inclusion(inclusion, self.prove)
            fresh = [i for i in adj.leaves if (adj.original, i) not in self._cancelled]
            for i in adj.leaves:
                self._cancelled.add((adj.original, i))
            if adj.kind == "deletion":
                c = self._committed[adj.period]
                for slot, opened in list(c.openings.items()):
                    c.openings[slot] = [t for t in opened if t[2] not in adj.leaves]
            self._pending.pop(digest(sealed), None)
            n += bool(fresh)
        return n

    def accept_adjustment(self, sealed: bytes, inclusion: bytes) -> AdjustmentEntry:
        """Agency: check the aggregator logged its adjustment, then mark the leaves cancelled.

        A deletion also erases the events' openings (the record itself, PIPL Art. 47): the
        commitment keeps only an opaque salted hash.  Raises :class:`InvalidMessage` if the
        inclusion is not the aggregator's proof for an adjustment this agency made.
        """
        h = digest(sealed)
        entry, _ = _logged_adjustment(self.params, inclusion)
        self.heads.observe_inclusion(inclusion, self.prove)
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
