"""The agency: dense encrypted delta vectors with validity proofs and event commitments.

Normative: ``protocols/submit.md`` and ``protocols/access.md``.  Holds its own records
(events, salts, commitment trees), its signing key and the Paillier *public* key.  Never:
other agencies' records, any decryption key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.events import Event, EventTable, IntArray
from psc.exceptions import (
    EventError,
    InvalidMessage,
)
from psc.hazmat import merkle
from psc.hazmat.backends.paillier import RandomnessPool
from psc.protocol import validity
from psc.protocol.messages import (
    NONCE_BYTES,
    SALT_BYTES,
    AccessRequest,
    AccessResponse,
    CapCiphertext,
    ClassCiphertext,
    EventOpening,
    IngestReceipt,
    PeriodEvents,
    Submission,
)
from psc.protocol.parameters import (
    MIN_COMMITMENT_LEAVES,
    ProtocolParameters,
    _fresh,
    cap_bounds,
    delta_bounds,
)
from psc.protocol.signing import digest, open_signed, public_bytes, seal
from psc.seams import Clock, RandBytes, _randbelow, _seconds, system_clock

__all__ = [
    "Agency",
]


@dataclass
class _Committed:
    """An agency's private record of one submitted period."""

    envelope_hash: bytes
    tree: merkle.MerkleTree
    openings: dict[int, list[tuple[Event, bytes, int]]]  # slot -> (event, salt, leaf index)
    size: int
    receipt: IngestReceipt | None = None


class Agency:
    """An agency (court, tax office...): turns its records into signed, encrypted envelopes.

    Holds its records and their commitment salts (private), its signing key and the
    Paillier public key.  Sees only its own records.
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
        self.id = agency_id
        self.catalog_agency = catalog_agency
        self.params = params
        self._key = signing_key
        self.pool = pool if pool is not None else RandomnessPool(params.public_key)
        self._backend = params.backend(self.pool)
        self._clock = clock
        self._randbytes = randbytes
        self._committed: dict[int, _Committed] = {}

    @property
    def public_key(self) -> bytes:
        return public_bytes(self._key)

    def use_pool(self, pool: RandomnessPool) -> None:
        """Agency: encrypt with randomizers from ``pool`` from now on (precomputed ones)."""
        self.pool = pool
        self._backend = self.params.backend(pool)

    def use_randbytes(self, randbytes: RandBytes) -> None:
        """Agency: draw commitment salts, dummy leaves and nonces from ``randbytes`` from now
        on (an agency that must re-derive a commitment after a restart passes a keyed
        stream per period, see :meth:`restore`; it must stay secret: the salts hide the
        other subjects' events)."""
        self._randbytes = randbytes

    def restore(
        self, events: Sequence[Event], period: int, sealed_envelope: bytes, sealed_receipt: bytes
    ) -> None:
        """Agency, restarting: re-derive the commitment of a period it submitted before.

        Pre-condition: the randomness seam gives the same bytes as when the period was
        submitted (the commitment is the first thing :meth:`submit` draws).  Re-commits to
        ``events`` and keeps the openings only if the envelope is this agency's own for
        ``period`` and commits to exactly the re-derived root and size; then checks and
        keeps the receipt (:meth:`accept_receipt`), so the agency answers access requests
        for the period again.  Raises :class:`InvalidMessage` otherwise (records changed
        since, another seam, another envelope); nothing is kept then.
        """
        sub = open_signed(sealed_envelope, Submission, lambda m: self.public_key)
        root, size, tree, openings = self._commit(sorted(events))
        if (sub.agency, sub.period, sub.commitment_root, sub.commitment_size) != (
            self.id,
            period,
            root,
            size,
        ):
            raise InvalidMessage(
                f"{self.id}'s records for period {period} do not re-derive the commitment of "
                "its logged envelope: were they changed after the submission?"
            )
        self._committed[period] = _Committed(digest(sealed_envelope), tree, openings, size)
        try:
            self.accept_receipt(sealed_receipt)
        except InvalidMessage:
            del self._committed[period]
            raise

    def ciphertexts_per_submission(self) -> int:
        """Packed Paillier ciphertext blocks one submission encrypts (for precomputation)."""
        cat = self.params.catalog
        vectors = len(delta_bounds(cat, self.catalog_agency)) + len(
            cap_bounds(cat, self.catalog_agency)
        )
        return vectors * self.params.layout.blocks(self.params.n_subjects)

    def randomizers_per_submission(self) -> int:
        """Encryption randomizers ``(r, r^n)`` one submission takes from the pool: one per
        ciphertext block plus what its validity proofs need (for precomputation)."""
        p = self.params
        proofs = sum(
            validity.proof_pool_demand(p.public_key, p.layout, p.n_subjects, vr)
            for vr in validity.vector_ranges(p.catalog, self.catalog_agency)
        )
        return self.ciphertexts_per_submission() + proofs

    def submit(self, events: Sequence[Event], period: int) -> bytes:
        """Agency, once per period: the sealed :class:`Submission` for ``events``.

        Pre-conditions: every event is this agency's (a rule of its catalog agency), falls
        in ``period`` and has evidence; a period is submitted once.  Builds the dense
        delta vector per retention class and the dense cap counters, encrypts them with
        the catalog bound as the public bound (so the bound says nothing about the data),
        commits to the events with salted Merkle leaves padded with random dummy leaves to
        a power of two (at least :data:`MIN_COMMITMENT_LEAVES`), proves every slot of every
        vector within the agency's catalog range and every padding slot zero (validity
        proofs bound to the envelope's header, :mod:`psc.protocol.validity`), and signs.
        Randomizers come from the pool (:meth:`randomizers_per_submission` of them).

        Leaks to the aggregator and the log: the period, the ciphertext count and sizes
        (public), the commitment root, the padded leaf count (a power of two: the event
        count up to a factor of two, above 16) and the proofs (zero knowledge; their sizes
        are public).  Raises :class:`EventError` for an
        event that is not this agency's or not in ``period``; ``ValueError`` for a period
        already submitted.
        """
        cat = self.params.catalog
        if period in self._committed:
            raise ValueError(f"{self.id} already submitted period {period}; submit once")
        for e in events:
            if cat.rule(e.rule).agency != self.catalog_agency:
                raise EventError(f"event {e!r}: rule {e.rule!r} is not {self.catalog_agency}'s")
            if e.period != period:
                raise EventError(f"event {e!r} is not in period {period}")
        table = EventTable.from_events(cat, events, self.params.n_subjects)
        dvec = table.delta_vectors(period)
        cvec = table.cap_vectors(period)
        zeros = np.zeros(self.params.n_subjects, dtype=np.int64)
        # the header first: every validity proof is bound to it (protocols/submit.md)
        root, size, tree, openings = self._commit(sorted(events))
        nonce = self._randbytes(NONCE_BYTES)
        created_at = _seconds(self._clock)
        bounds = {(c, ""): b for c, b in delta_bounds(cat, self.catalog_agency).items()}
        bounds.update(cap_bounds(cat, self.catalog_agency))
        deltas: list[ClassCiphertext] = []
        caps: list[CapCiphertext] = []
        proofs: list[bytes] = []
        for index, vr in enumerate(validity.vector_ranges(cat, self.catalog_agency)):
            ctx = validity.vector_context(
                agency=self.id,
                period=period,
                catalog_version=self.params.catalog_version,
                nonce=nonce,
                n_subjects=self.params.n_subjects,
                commitment_root=root,
                commitment_size=size,
                created_at=created_at,
                index=index,
                vector=vr,
            )
            vec = cvec.get((vr.retention, vr.cap), zeros) if vr.cap else dvec[vr.retention]
            ct, proof = self._encrypt_proven(vec, bounds[(vr.retention, vr.cap)], vr, ctx)
            if vr.cap:
                caps.append(CapCiphertext(vr.retention, vr.cap, ct))
            else:
                deltas.append(ClassCiphertext(vr.retention, ct))
            proofs.append(proof)
        msg = Submission(
            agency=self.id,
            period=period,
            catalog_version=self.params.catalog_version,
            nonce=nonce,
            n_subjects=self.params.n_subjects,
            deltas=tuple(deltas),
            caps=tuple(caps),
            commitment_root=root,
            commitment_size=size,
            created_at=created_at,
            proofs=tuple(proofs),
        )
        sealed = seal(msg, self._key)
        self._committed[period] = _Committed(digest(sealed), tree, openings, size)
        return sealed

    def _encrypt(self, vector: IntArray, bound: int) -> bytes:
        return self._backend.serialize(self._backend.encrypt(vector, bound=bound))

    def _encrypt_proven(
        self, vector: IntArray, bound: int, vr: validity.VectorRange, context: bytes
    ) -> tuple[bytes, bytes]:
        """Encrypt one dense vector under its catalog bound and prove every slot in range."""
        pk, layout = self.params.public_key, self.params.layout
        ct, openings = self._backend.encrypt_with_openings(vector, bound=bound)
        proof = validity.prove_vector(
            pk,
            layout,
            ct,
            openings,
            vector,
            vr,
            context,
            pool=self.pool,
            randbelow=lambda n: _randbelow(self._randbytes, n),
        )
        return self._backend.serialize(ct), proof

    def _commit(
        self, events: Sequence[Event]
    ) -> tuple[bytes, int, merkle.MerkleTree, dict[int, list[tuple[Event, bytes, int]]]]:
        size = MIN_COMMITMENT_LEAVES
        while size < len(events):
            size *= 2
        # random positions: the leaf order says nothing about who or when
        order = list(range(size))
        for i in range(size - 1, 0, -1):
            j = _randbelow(self._randbytes, i + 1)
            order[i], order[j] = order[j], order[i]
        leaves: list[bytes] = [b""] * size
        openings: dict[int, list[tuple[Event, bytes, int]]] = {}
        for k, e in enumerate(events):
            salt = self._randbytes(SALT_BYTES)
            idx = order[k]
            leaves[idx] = merkle.commitment_leaf(e.subject, e.rule, e.evidence, e.date, salt)
            openings.setdefault(e.subject, []).append((e, salt, idx))
        for k in range(len(events), size):  # dummies: random data, indistinguishable hashes
            leaves[order[k]] = self._randbytes(SALT_BYTES)
        tree = merkle.MerkleTree(merkle.leaf_hash(x) for x in leaves)
        return tree.root(), size, tree, openings

    def accept_receipt(self, sealed: bytes) -> IngestReceipt:
        """Agency: check the aggregator's receipt for a submitted envelope and keep it.

        Raises :class:`InvalidMessage` if it is not the aggregator's or names an envelope
        this agency did not submit.
        """
        r = open_signed(sealed, IngestReceipt, lambda m: self.params.aggregator_key)
        c = self._committed.get(r.period)
        if c is None or r.agency != self.id or r.envelope_hash != c.envelope_hash:
            raise InvalidMessage("receipt is for an envelope this agency did not submit")
        c.receipt = r
        return r

    def answer_access(self, sealed_request: bytes) -> bytes:
        """Agency, on a subject's request: the subject's events with inclusion proofs.

        Pre-condition: the request is signed by the registry (which authenticated the
        subject) and fresh.  Answers for every period in range whose envelope has a
        receipt.  Leaks: nothing beyond the subject's own events and sibling hashes of
        salted leaves (which hide other events).  Raises :class:`InvalidMessage`.
        """
        req = open_signed(sealed_request, AccessRequest, lambda m: self.params.registry_key)
        _fresh(req.issued_at, _seconds(self._clock))
        if not 0 <= req.subject < self.params.n_subjects:
            raise InvalidMessage("subject slot out of range")
        periods = []
        for p in sorted(self._committed):
            c = self._committed[p]
            if not req.first_period <= p <= req.last_period or c.receipt is None:
                continue
            openings = tuple(
                EventOpening(
                    rule=e.rule,
                    date=e.date.isoformat(),
                    evidence=e.evidence,
                    salt=salt,
                    index=idx,
                    proof=tuple(c.tree.inclusion_proof(idx)),
                )
                for e, salt, idx in sorted(c.openings.get(req.subject, []), key=lambda t: t[2])
            )
            periods.append(PeriodEvents(p, c.envelope_hash, c.size, openings))
        msg = AccessResponse(
            agency=self.id,
            subject=req.subject,
            request_hash=digest(sealed_request),
            periods=tuple(periods),
        )
        return seal(msg, self._key)
