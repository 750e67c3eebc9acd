"""The parties of one scoring period, as code (normative: ``protocols/*.md``).

Who holds what (and who must never hold it):

* :class:`Registry` (scheme operator): the identity -> slot mapping, its signing key, the
  registrations it signed.  Never: records, ciphertexts, anyone else's keys.
* :class:`Agency`: its own records (events, salts, commitment trees), its signing key, the
  Paillier *public* key.  Never: other agencies' records, any decryption key.
* :class:`Aggregator`: the ledger (envelopes, encrypted accumulators, the transparency
  log) and its signing key.  Never: a decryption key, an identity, an event or a grade.
* :class:`KeyHolder`: the Paillier private key (behind a :class:`Revealer`) and its
  signing key.  Never: records or identities.
* :class:`RelyingParty`: its signing key and the grades it was given.  Never: scores.
* :class:`Subject`: its slot and what access returns to it.  Never: others' data.

Every message between parties is sealed (:func:`psc.protocol.signing.seal`) and opened
with the sender's registered key before anything in it is used.  Every method's docstring
says which role runs it, its pre-conditions, what it leaks and what it raises.

Time and randomness enter only through the ``clock`` (an aware UTC ``datetime``) and
``randbytes`` (``n -> n random bytes``) arguments each role takes, so test vectors are
fixed; the defaults are the system clock and the OS CSPRNG.

The reveal step is pluggable (:class:`Revealer`): the baseline :class:`TrustedDecryptor`
is one trusted key holder that decrypts; later issues put a k-of-n committee and
homomorphic grading behind the same interface.
"""

from __future__ import annotations

import datetime as dt
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from gmpy2 import mpz

from psc.catalog import Catalog, period_index
from psc.events import Event, EventTable, IntArray
from psc.exceptions import (
    CatalogMismatch,
    DuplicateSubmission,
    EventError,
    InvalidMessage,
    KeyMismatch,
    ParameterError,
    PolicyViolation,
    ReplayedNonce,
    StalePeriod,
    UnknownParty,
)
from psc.hazmat import merkle
from psc.hazmat.backends.paillier import PackedCiphertext, PackedPaillier, RandomnessPool
from psc.hazmat.packing import SlotLayout, worst_case_sum
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.store import AccumulatorRecord, EnvelopeRecord, Ledger, PartyRecord, RevealRecord
from psc.ledger.translog import SignedTreeHead, verify_tree_head_signature
from psc.oracle import grades_of
from psc.protocol import codec, validity
from psc.protocol.heads import HeadKeeper, Prover
from psc.protocol.messages import (
    NONCE_BYTES,
    SALT_BYTES,
    AccessRequest,
    AccessResponse,
    AgencyRegistration,
    BlockCiphertext,
    CapCiphertext,
    ClassCiphertext,
    EventOpening,
    GradeRequest,
    GradeResponse,
    IngestReceipt,
    LogEntry,
    LogInclusion,
    PeriodEvents,
    PublicParameters,
    RelyingPartyRegistration,
    RevealNotice,
    RevealRequest,
    SignedMessage,
    SlotGrade,
    Submission,
    TreeHead,
)
from psc.protocol.replay import AnsweredRequests
from psc.protocol.signing import digest, open_signed, public_bytes, seal

Clock = Callable[[], dt.datetime]
RandBytes = Callable[[int], bytes]

#: The registry's party id (it signs registrations and requests made for subjects).
REGISTRY_ID = "registry"
#: The purpose of a subject asking for its own grade; must be in the catalog's purposes.
SELF_ACCESS_PURPOSE = "subject-self-access"
#: The label of the score sum in a reveal request (cap counters use their cap label).
SCORE_LABEL = "score"
#: How old (seconds) a grade or access request may be when it is answered.
REQUEST_MAX_AGE = 600
#: How far (seconds) a request's time may run ahead of the answering party's clock.
CLOCK_SKEW = 60
#: Smallest number of leaves an event commitment is padded to (see ``protocols/submit.md``).
MIN_COMMITMENT_LEAVES = 16


def system_clock() -> dt.datetime:
    """The current UTC time (the default ``clock``)."""
    return dt.datetime.now(dt.UTC)


def _seconds(clock: Clock) -> int:
    return int(clock().timestamp())


def _randbelow(randbytes: RandBytes, n: int) -> int:
    """Uniform in ``[0, n)`` from ``randbytes`` by rejection sampling."""
    k = max(1, (n.bit_length() + 7) // 8 + 1)
    limit = (1 << (8 * k)) - (1 << (8 * k)) % n
    while True:
        x = int.from_bytes(randbytes(k), "big")
        if x < limit:
            return x % n


def _fresh(issued_at: int, now: int) -> None:
    if not now - REQUEST_MAX_AGE <= issued_at <= now + CLOCK_SKEW:
        raise InvalidMessage("request is not fresh")


# ----------------------------------------------------------------------------------------
# public parameters


def protocol_layout(catalog: Catalog, key_bits: int, *, multiplicity: int = 1) -> SlotLayout:
    """The slot layout for a deployment: every lawful live sum of deltas *and* cap counters fits.

    Deltas: :meth:`SlotLayout.for_catalog` (each rule summed over its retention, times
    ``multiplicity``).  Cap counters: ``multiplicity * sum over capping rules of
    months * max_per_period``; the wider of the two sets the slot width.
    """
    caps = multiplicity * sum(
        catalog.retention[r.retention].months * r.max_per_period
        for r in catalog.rules
        if r.grade_cap is not None
    )
    need = max(worst_case_sum(catalog, multiplicity=multiplicity), caps)
    return SlotLayout.for_catalog(
        catalog, key_bits, multiplicity=multiplicity, slot_bits=need.bit_length() + 1
    )


def delta_bounds(catalog: Catalog, catalog_agency: str) -> dict[str, int]:
    """Retention class -> public bound of one agency's dense delta vector in one period.

    Only classes in which the agency has a rule with a non-zero delta appear: exactly the
    ``deltas`` its submissions carry.
    """
    out: dict[str, int] = {}
    for r in catalog.rules:
        if r.agency == catalog_agency and r.delta != 0:
            out[r.retention] = catalog.agency_period_bound(catalog_agency, r.retention)
    return dict(sorted(out.items()))


def cap_bounds(catalog: Catalog, catalog_agency: str) -> dict[tuple[str, str], int]:
    """(retention class, cap label) -> public bound of one agency's cap counter per period."""
    out: dict[tuple[str, str], int] = {}
    for r in catalog.rules:
        if r.agency == catalog_agency and r.grade_cap is not None:
            key = (r.retention, r.grade_cap)
            out[key] = out.get(key, 0) + r.max_per_period
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class ProtocolParameters:
    """What every party knows after setup: the catalog, the Paillier public key, the layout,
    the subject count and the three infrastructure keys.

    ``allow_insecure_key`` is a local decision (tests and small demos): it lets keys below
    2048 bits through :class:`~psc.hazmat.backends.paillier.PackedPaillier`.
    """

    catalog: Catalog
    public_key: PaillierPublicKey
    layout: SlotLayout
    n_subjects: int
    multiplicity: int
    registry_key: bytes
    aggregator_key: bytes
    key_holder_key: bytes
    issued_at: int = 0
    allow_insecure_key: bool = False

    @property
    def catalog_version(self) -> bytes:
        return bytes.fromhex(self.catalog.version_hash)

    def backend(self, pool: RandomnessPool | None = None) -> PackedPaillier:
        """A packed Paillier backend under the public key (encryption only)."""
        return PackedPaillier(
            self.public_key, self.layout, pool=pool, allow_insecure_key=self.allow_insecure_key
        )

    def to_message(self) -> PublicParameters:
        n = int(self.public_key.n)
        return PublicParameters(
            scheme=self.catalog.scheme.name,
            catalog_version=self.catalog_version,
            paillier_n=n.to_bytes((n.bit_length() + 7) // 8, "big"),
            slot_bits=self.layout.slot_bits,
            slots=self.layout.slots,
            n_subjects=self.n_subjects,
            multiplicity=self.multiplicity,
            registry_key=self.registry_key,
            aggregator_key=self.aggregator_key,
            key_holder_key=self.key_holder_key,
            issued_at=self.issued_at,
        )

    @classmethod
    def from_sealed(
        cls,
        sealed: bytes,
        catalog: Catalog,
        registry_key: bytes,
        *,
        allow_insecure_key: bool = False,
    ) -> ProtocolParameters:
        """Any party, at setup: open the registry's published parameters.

        Pre-condition: ``registry_key`` was obtained out of band (the root of trust).
        Raises :class:`InvalidMessage` (bad signature, malformed), :class:`CatalogMismatch`
        if the parameters are for another catalog, :class:`ParameterError` if the layout
        cannot hold every lawful sum.
        """
        msg = open_signed(sealed, PublicParameters, lambda m: registry_key)
        if msg.registry_key != registry_key:
            raise InvalidMessage("parameters name another registry key")
        if msg.catalog_version != bytes.fromhex(catalog.version_hash):
            raise CatalogMismatch(
                "the published parameters are for another catalog version; load the catalog "
                f"whose version hash is {msg.catalog_version.hex()}"
            )
        pk = PaillierPublicKey(mpz(int.from_bytes(msg.paillier_n, "big")))
        layout = SlotLayout(msg.slot_bits, msg.slots)
        want = protocol_layout(catalog, pk.bits, multiplicity=msg.multiplicity)
        # wider slots than the catalog needs are safe (the committee's DP reveal adds
        # noise and masks in that headroom); the slot count must follow from the width
        wider = msg.slot_bits > want.slot_bits and layout == SlotLayout.for_key(
            pk.bits, msg.slot_bits
        )
        if layout != want and not wider:
            raise ParameterError(
                f"published layout {layout} differs from the one the catalog requires ({want})"
            )
        return cls(
            catalog,
            pk,
            layout,
            msg.n_subjects,
            msg.multiplicity,
            msg.registry_key,
            msg.aggregator_key,
            msg.key_holder_key,
            msg.issued_at,
            allow_insecure_key,
        )


# ----------------------------------------------------------------------------------------
# registry


class Registry:
    """The scheme operator at setup, and the pseudonymisation service afterwards.

    Holds the identity -> slot mapping (never given to the aggregator or key holder), signs
    the public parameters and every registration, and signs requests made on behalf of
    subjects it has authenticated.  It tells an agency the slots of the identities the
    agency already holds records about (so the agency can address them) and nothing else.
    """

    def __init__(
        self,
        catalog: Catalog,
        signing_key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
        randbytes: RandBytes = os.urandom,
    ) -> None:
        self.catalog = catalog
        self._key = signing_key
        self._clock = clock
        self._randbytes = randbytes
        self._slots: dict[str, int] = {}
        self._instances: dict[str, list[str]] = {}
        self.id = REGISTRY_ID

    @property
    def public_key(self) -> bytes:
        return public_bytes(self._key)

    @property
    def n_subjects(self) -> int:
        return len(self._slots)

    def enroll(self, identities: Sequence[str]) -> dict[str, int]:
        """Registry, at setup: give every identity a pseudonymous slot (a random permutation).

        Pre-condition: called once.  Leaks nothing: slots are uniformly permuted, so a slot
        says nothing about enrolment order.  Raises ``ValueError`` on repeats or a second call.
        """
        if self._slots:
            raise ValueError("subjects are already enrolled; enrol once, at setup")
        if len(set(identities)) != len(identities) or not identities:
            raise ValueError("enrol a non-empty list of distinct identities")
        order = list(range(len(identities)))
        for i in range(len(order) - 1, 0, -1):  # Fisher-Yates from the randomness seam
            j = _randbelow(self._randbytes, i + 1)
            order[i], order[j] = order[j], order[i]
        self._slots = {ident: order[k] for k, ident in enumerate(identities)}
        return dict(self._slots)

    def slot_of(self, identity: str) -> int:
        """The slot of an enrolled identity.  Raises :class:`UnknownParty` if not enrolled."""
        try:
            return self._slots[identity]
        except KeyError:
            raise UnknownParty(f"{identity!r} is not enrolled with the registry") from None

    def publish(
        self,
        public_key: PaillierPublicKey,
        *,
        multiplicity: int,
        aggregator_key: bytes,
        key_holder_key: bytes,
        allow_insecure_key: bool = False,
        layout: SlotLayout | None = None,
    ) -> tuple[ProtocolParameters, bytes]:
        """Registry, at setup: fix and sign the public parameters.

        Pre-condition: subjects enrolled; the key holder's Paillier key and the aggregator's
        and key holder's Ed25519 keys exist.  ``layout`` may widen the slots beyond
        :func:`protocol_layout` (the committee's DP reveal needs headroom for noise and
        masks: :func:`psc.parties.committee.reveal_layout`); narrower is refused with
        :class:`ParameterError`.  Leaks: the subject count (public anyway).
        """
        if not self._slots:
            raise ValueError("enrol subjects before publishing parameters")
        base = protocol_layout(self.catalog, public_key.bits, multiplicity=multiplicity)
        if layout is not None and (
            layout.slot_bits < base.slot_bits
            or layout != SlotLayout.for_key(public_key.bits, layout.slot_bits)
        ):
            raise ParameterError(f"layout {layout} is narrower than the catalog needs ({base})")
        params = ProtocolParameters(
            self.catalog,
            public_key,
            base if layout is None else layout,
            self.n_subjects,
            multiplicity,
            self.public_key,
            aggregator_key,
            key_holder_key,
            _seconds(self._clock),
            allow_insecure_key,
        )
        return params, seal(params.to_message(), self._key)

    def register_agency(
        self, agency: str, catalog_agency: str, public_key: bytes, *, multiplicity: int
    ) -> bytes:
        """Registry, at setup: admit an agency instance acting as ``catalog_agency``.

        Raises ``ValueError`` if the catalog has no such agency, or
        :class:`ParameterError` if it would exceed ``multiplicity`` instances (the slot
        width was sized for at most that many).
        """
        if catalog_agency not in self.catalog.agencies:
            raise ValueError(
                f"{catalog_agency!r} is not an agency of catalog {self.catalog.scheme.name!r} "
                f"(have {', '.join(self.catalog.agencies)})"
            )
        inst = self._instances.setdefault(catalog_agency, [])
        if agency not in inst and len(inst) >= multiplicity:
            raise ParameterError(
                f"{catalog_agency!r} already has {multiplicity} instances; the slot layout was "
                "sized for that many, so publish parameters with a larger multiplicity"
            )
        if agency not in inst:
            inst.append(agency)
        msg = AgencyRegistration(
            agency=agency,
            catalog_agency=catalog_agency,
            public_key=public_key,
            catalog_version=bytes.fromhex(self.catalog.version_hash),
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def register_relying_party(
        self, party: str, purposes: Sequence[str], public_key: bytes
    ) -> bytes:
        """Registry, at setup: admit a relying party for declared purposes.

        Raises :class:`PolicyViolation` if a purpose is not one of the scheme's purposes.
        """
        bad = [p for p in purposes if p not in self.catalog.scheme.purposes]
        if bad or not purposes:
            raise PolicyViolation(
                f"purposes {bad or list(purposes)} are not among the scheme's purposes "
                f"{list(self.catalog.scheme.purposes)}"
            )
        msg = RelyingPartyRegistration(
            party=party,
            purposes=tuple(purposes),
            public_key=public_key,
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def grade_request(self, slots: Iterable[int], period: int) -> bytes:
        """Registry, for authenticated subjects: each subject asks for its own grade.

        Pre-condition: the registry authenticated every subject whose slot is listed (in
        the demo, every subject asks at once; requests falling in one packed block are
        answered together).  Leaks to the aggregator and key holder: which slots asked.
        """
        msg = GradeRequest(
            requester=self.id,
            purpose=SELF_ACCESS_PURPOSE,
            period=period,
            slots=tuple(sorted(set(slots))),
            nonce=self._randbytes(NONCE_BYTES),
            consent=b"",
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def access_request(self, identity: str, first_period: int, last_period: int) -> bytes:
        """Registry, for an authenticated subject: ask agencies for the subject's events.

        Leaks to each agency: that this slot asked (agencies know their subjects anyway).
        """
        msg = AccessRequest(
            requester=self.id,
            subject=self.slot_of(identity),
            first_period=first_period,
            last_period=last_period,
            nonce=self._randbytes(NONCE_BYTES),
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)


def open_agency_registration(sealed: bytes, params: ProtocolParameters) -> AgencyRegistration:
    """Any party: verify a registry-signed agency registration for this catalog.

    Raises :class:`InvalidMessage` (signature, shape) or :class:`CatalogMismatch`.
    """
    reg = open_signed(sealed, AgencyRegistration, lambda m: params.registry_key)
    if reg.catalog_version != params.catalog_version:
        raise CatalogMismatch("the registration is for another catalog version")
    if reg.catalog_agency not in params.catalog.agencies:
        raise InvalidMessage("registration names an agency the catalog does not have")
    return reg


# ----------------------------------------------------------------------------------------
# agency


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


# ----------------------------------------------------------------------------------------
# aggregator


def trivial_zero(params: ProtocolParameters) -> PackedCiphertext:
    """``E(0; r=1) = 1`` per block: the live sum of a label with no live contribution
    (nothing is hidden, and nothing needs to be)."""
    pk = params.public_key
    blocks = tuple(mpz(1) for _ in range(params.layout.blocks(params.n_subjects)))
    return PackedCiphertext(pk.fingerprint, params.layout, params.n_subjects, 0, blocks)


class Aggregator:
    """The scoring authority: verifies envelopes, keeps the encrypted accumulators and the log.

    Holds the :class:`~psc.ledger.store.Ledger` (ciphertexts, hashes, public metadata) and its
    signing key (receipts, reveal requests, tree heads).  Never holds a decryption key, an
    identity, or an event.
    """

    def __init__(
        self,
        params: ProtocolParameters,
        ledger: Ledger,
        signing_key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
    ) -> None:
        if public_bytes(signing_key) != params.aggregator_key:
            raise KeyMismatch("this signing key is not the aggregator key in the parameters")
        self.params = params
        self.ledger = ledger
        self._key = signing_key
        self._clock = clock
        self._backend = params.backend(RandomnessPool(params.public_key))
        self._pending: dict[bytes, GradeRequest] = {}
        self._live_cache: dict[
            tuple[int, int], tuple[PackedCiphertext, dict[str, PackedCiphertext]]
        ] = {}
        cat = params.catalog
        with ledger.transaction():
            ledger.put_catalog(cat.version_hash, cat.scheme.name, "")

    # -- setup ----------------------------------------------------------------------------
    def register_agency(self, sealed: bytes) -> AgencyRegistration:
        """Aggregator, at setup: record a registry-signed agency registration.

        One transaction: the party record and a ``registration`` log entry (its hash), so
        auditors see every key that was ever admitted.  Idempotent.  Raises :class:`InvalidMessage`, :class:`CatalogMismatch`,
        :class:`ParameterError` (more instances than ``multiplicity``) or ``ValueError``
        (the same agency id registered with another key).
        """
        reg = open_agency_registration(sealed, self.params)
        old = self.ledger.party(reg.agency)
        if old is not None:
            if old.public_key != reg.public_key or old.catalog_agency != reg.catalog_agency:
                raise ValueError(f"agency {reg.agency!r} is already registered with another key")
            return reg
        same = [p for p in self.ledger.parties("agency") if p.catalog_agency == reg.catalog_agency]
        if len(same) >= self.params.multiplicity:
            raise ParameterError(
                f"{reg.catalog_agency!r} already has {self.params.multiplicity} instances, the "
                "most the slot layout was sized for"
            )
        with self.ledger.transaction():
            self.ledger.put_party(
                PartyRecord(reg.agency, "agency", reg.catalog_agency, reg.public_key, (), sealed)
            )
            self._log_registration(reg.agency, sealed)
        return reg

    def _log_registration(self, party: str, sealed: bytes) -> None:
        entry = LogEntry(
            kind="registration",
            party=party,
            period=period_index(self._clock().date()),
            digest=digest(sealed),
            commitment_root=b"",
            commitment_size=0,
            catalog_version=self.params.catalog_version,
        )
        self.ledger.log.append(codec.encode(entry))
        self.ledger.log.sign_tree_head()

    def register_relying_party(self, sealed: bytes) -> RelyingPartyRegistration:
        """Aggregator, at setup: record (and log) a registry-signed relying-party registration."""
        reg = open_signed(sealed, RelyingPartyRegistration, lambda m: self.params.registry_key)
        old = self.ledger.party(reg.party)
        if old is not None:
            if old.public_key != reg.public_key:
                raise ValueError(f"party {reg.party!r} is already registered with another key")
            return reg
        with self.ledger.transaction():
            self.ledger.put_party(
                PartyRecord(reg.party, "relying-party", "", reg.public_key, reg.purposes, sealed)
            )
            self._log_registration(reg.party, sealed)
        return reg

    # -- ingest ---------------------------------------------------------------------------
    def _agency_key(self, sub: Submission) -> bytes:
        rec = self.ledger.party(sub.agency)
        if rec is None or rec.role != "agency":
            raise UnknownParty(
                f"agency {sub.agency!r} is not registered; the registry must register it at "
                "setup (protocols/setup.md)"
            )
        return rec.public_key

    def ingest(self, sealed: bytes) -> bytes:
        """Aggregator: verify an agency's envelope, then log it and add it, atomically.

        Checks, all before any state is touched: the wrapper and body decode canonically;
        the agency is registered; the signature verifies; the catalog version is the one in
        force; the period is neither in the future nor older than the longest retention;
        the nonce is fresh for this agency; the agency has no other envelope for the
        period; the slot count, the set of classes and cap counters, every ciphertext and
        its public bound match the catalog; every ciphertext's validity proof shows each
        slot within the agency's catalog range and each padding slot zero, bound to this
        envelope (:mod:`psc.protocol.validity`, ``protocols/proofs.md``).  Then one
        transaction: append a :class:`LogEntry`, sign a tree head, store the envelope and
        its receipt, claim the nonce, add every ciphertext into its (period, class, label)
        accumulator with the bound the aggregator sets from the catalog.

        Idempotent: the same envelope again returns the same receipt and changes nothing.
        Leaks nothing beyond the envelope's public fields.  Raises :class:`InvalidMessage`
        (:class:`~psc.exceptions.InvalidProof`, naming the agency and vector, for a failed
        validity proof), :class:`UnknownParty`, :class:`CatalogMismatch`,
        :class:`StalePeriod`, :class:`ReplayedNonce` or :class:`DuplicateSubmission`; on
        any of them nothing changed.
        """
        sub = open_signed(sealed, Submission, self._agency_key)
        env_hash = digest(sealed)
        known = self.ledger.envelope(env_hash)
        if known is not None:
            return known.receipt
        cat = self.params.catalog
        if sub.catalog_version != self.params.catalog_version:
            raise CatalogMismatch(
                f"envelope cites catalog version {sub.catalog_version.hex()[:16]}..., but "
                f"{cat.version_hash[:16]}... is in force; re-submit under the current catalog"
            )
        now = period_index(self._clock().date())
        if sub.period > now:
            raise StalePeriod(f"period {sub.period} is in the future (now {now})")
        if sub.period <= now - cat.max_retention_months:
            raise StalePeriod(
                f"period {sub.period} is older than the longest retention "
                f"({cat.max_retention_months} months before {now}); it can no longer count"
            )
        self._check_replay(sub, env_hash)
        adds = self._check_shape(sub)
        receipt = self._commit_envelope(sub, sealed, env_hash, adds)
        return receipt

    def _check_replay(self, sub: Submission, env_hash: bytes) -> None:
        owner = self.ledger.nonce_owner(sub.agency, sub.nonce)
        if owner is not None and owner != env_hash:
            raise ReplayedNonce(
                f"agency {sub.agency!r} already used this nonce for another envelope; every "
                "envelope needs a fresh nonce"
            )
        other = self.ledger.envelope_for(sub.agency, sub.period)
        if other is not None and other.envelope_hash != env_hash:
            raise DuplicateSubmission(
                f"agency {sub.agency!r} already submitted a different envelope for period "
                f"{sub.period}; one envelope per agency and period (corrections are a later "
                "protocol)"
            )

    def _check_shape(self, sub: Submission) -> list[tuple[str, str, PackedCiphertext]]:
        rec = self.ledger.party(sub.agency)
        assert rec is not None  # checked by _agency_key
        cat = self.params.catalog
        if sub.n_subjects != self.params.n_subjects:
            raise InvalidMessage("envelope has the wrong slot count")
        want_d = delta_bounds(cat, rec.catalog_agency)
        want_c = cap_bounds(cat, rec.catalog_agency)
        if [d.retention for d in sub.deltas] != list(want_d):
            raise InvalidMessage("envelope does not carry exactly its agency's retention classes")
        if [(c.retention, c.cap) for c in sub.caps] != list(want_c):
            raise InvalidMessage("envelope does not carry exactly its agency's cap counters")
        items = [(d.retention, "", d.ciphertext, want_d[d.retention]) for d in sub.deltas] + [
            (c.retention, c.cap, c.ciphertext, want_c[(c.retention, c.cap)]) for c in sub.caps
        ]
        out = []
        for retention, label, data, bound in items:
            try:
                ct = self._backend.deserialize(data)
            except KeyMismatch as exc:
                raise InvalidMessage("ciphertext is under another key") from exc
            if ct.n_values != self.params.n_subjects:
                raise InvalidMessage("ciphertext has the wrong slot count")
            if ct.bound != bound:
                raise InvalidMessage("ciphertext does not declare its catalog bound")
            out.append((retention, label, ct.with_bound(bound)))
        # every slot of every ciphertext within the agency's catalog range (issue 11)
        for index, vr in enumerate(validity.vector_ranges(cat, rec.catalog_agency)):
            retention, label, ct = out[index]
            if (vr.retention, vr.cap) != (retention, label):
                raise InvalidMessage("envelope vectors are not in catalog order")
            ctx = validity.vector_context(
                agency=sub.agency,
                period=sub.period,
                catalog_version=sub.catalog_version,
                nonce=sub.nonce,
                n_subjects=sub.n_subjects,
                commitment_root=sub.commitment_root,
                commitment_size=sub.commitment_size,
                created_at=sub.created_at,
                index=index,
                vector=vr,
            )
            validity.verify_vector(
                self.params.public_key,
                self.params.layout,
                ct,
                vr,
                sub.proofs[index],
                ctx,
                agency=sub.agency,
            )
        return out

    def _commit_envelope(
        self,
        sub: Submission,
        sealed: bytes,
        env_hash: bytes,
        adds: list[tuple[str, str, PackedCiphertext]],
    ) -> bytes:
        entry = LogEntry(
            kind="submission",
            party=sub.agency,
            period=sub.period,
            digest=env_hash,
            commitment_root=sub.commitment_root,
            commitment_size=sub.commitment_size,
            catalog_version=sub.catalog_version,
        )
        led = self.ledger
        with led.transaction():
            # re-check under the write lock: another writer may have won the race
            known = led.envelope(env_hash)
            if known is not None:
                return known.receipt
            self._check_replay(sub, env_hash)
            index = led.log.append(codec.encode(entry))
            sth = led.log.sign_tree_head()
            receipt = seal(
                IngestReceipt(
                    envelope_hash=env_hash,
                    agency=sub.agency,
                    period=sub.period,
                    log_index=index,
                    tree_size=sth.size,
                    tree_root=sth.root,
                    issued_at=_seconds(self._clock),
                ),
                self._key,
            )
            led.put_envelope(
                EnvelopeRecord(env_hash, sub.agency, sub.period, sub.nonce, index, sealed, receipt)
            )
            for retention, label, ct in adds:
                old = led.accumulator(sub.period, retention, label)
                if old is None:
                    total, count = ct, 1
                else:
                    prev = self._backend.deserialize(old.ciphertext).with_bound(old.bound)
                    total, count = self._backend.add(prev, ct), old.contributions + 1
                led.put_accumulator(
                    AccumulatorRecord(
                        sub.period,
                        retention,
                        label,
                        self._backend.serialize(total),
                        total.bound,
                        count,
                    )
                )
        return receipt

    # -- reveal ---------------------------------------------------------------------------
    def live_sums(self, period: int) -> tuple[PackedCiphertext, dict[str, PackedCiphertext]]:
        """Aggregator: encrypted live sums at the close of ``period``.

        ``score = sum over accumulators (p, c, "") with p <= period < p + months(c)``, and
        per cap label ``L`` the same sum over ``(p, c, L)``: expiry is just leaving expired
        accumulators out.  Cap labels with nothing live get the trivial zero.  Raises
        :class:`OverflowRisk` only if the ledger holds more than the layout was sized for
        (impossible through :meth:`ingest`).
        """
        key = (period, self.ledger.envelope_count())
        if key in self._live_cache:
            return self._live_cache[key]
        cat = self.params.catalog
        score: list[PackedCiphertext] = []
        caps: dict[str, list[PackedCiphertext]] = {label: [] for label in cat.cap_labels()}
        for acc in self.ledger.accumulators():
            months = cat.retention[acc.retention].months
            if not acc.period <= period < acc.period + months:
                continue
            ct = self._backend.deserialize(acc.ciphertext).with_bound(acc.bound)
            (score if acc.label == "" else caps[acc.label]).append(ct)
        zero = trivial_zero(self.params)
        out = (
            self._backend.sum(score) if score else zero,
            {label: self._backend.sum(v) if v else zero for label, v in caps.items()},
        )
        self._live_cache = {key: out}
        return out

    def _requester_key(self, req: GradeRequest) -> bytes:
        if req.requester == REGISTRY_ID:
            return self.params.registry_key
        rec = self.ledger.party(req.requester)
        if rec is None or rec.role != "relying-party":
            raise UnknownParty(f"requester {req.requester!r} is not a registered relying party")
        return rec.public_key

    def prepare_reveal(self, sealed_request: bytes) -> bytes:
        """Aggregator: check a grade request and send the key holder only the blocks it needs.

        Pre-condition: the requester is the registry (for subjects) or a registered relying
        party.  Checks signature, purpose (:func:`check_purpose`), freshness, that the
        period is not in the future and the slots exist.  Leaks to the key holder: the
        blocks holding the requested slots (in the baseline the key holder decrypts whole
        blocks: it learns the live sums of every slot in them; see reveal-baseline.md).
        Raises :class:`InvalidMessage`, :class:`UnknownParty`, :class:`PolicyViolation`.
        """
        req = open_signed(sealed_request, GradeRequest, self._requester_key)
        rec = self.ledger.party(req.requester)
        check_purpose(self.params.catalog, req, rec.purposes if rec else None)
        _fresh(req.issued_at, _seconds(self._clock))
        if req.period > period_index(self._clock().date()):
            raise PolicyViolation(f"period {req.period} has not happened yet")
        if req.slots[-1] >= self.params.n_subjects:
            raise InvalidMessage("a requested slot does not exist")
        score, caps = self.live_sums(req.period)
        S = self.params.layout.slots
        needed = sorted({s // S for s in req.slots})
        blocks = []
        for label, ct in sorted([(SCORE_LABEL, score), *caps.items()]):
            for j in needed:
                one = PackedCiphertext(
                    ct.key_fingerprint,
                    ct.layout,
                    min(S, ct.n_values - j * S),
                    ct.bound,
                    (ct.blocks[j],),
                )
                blocks.append(BlockCiphertext(label, j, self._backend.serialize(one)))
        log = self.ledger.log
        msg = RevealRequest(
            request=sealed_request,
            period=req.period,
            blocks=tuple(blocks),
            tree_size=log.size,
            tree_root=log.root(),
        )
        self._pending[digest(sealed_request)] = req
        return seal(msg, self._key)

    def release(self, sealed_notice: bytes) -> bytes:
        """Aggregator: log that the key holder released a grade response.

        Pre-condition: the notice answers a request this aggregator prepared.  One
        transaction: a ``reveal`` :class:`LogEntry` (hashes only) and a reveal record.  The
        aggregator never sees the response (and so no grade).  Returns the encoded
        :class:`LogInclusion` of the entry, which the key holder checks before it delivers
        the response.  Raises :class:`InvalidMessage` if the notice is not the key holder's
        or answers no pending request.
        """
        notice = open_signed(sealed_notice, RevealNotice, lambda m: self.params.key_holder_key)
        req = self._pending.get(notice.request_hash)
        if (
            req is None
            or notice.slots != len(req.slots)
            or (notice.requester, notice.purpose, notice.period)
            != (req.requester, req.purpose, req.period)
        ):
            raise InvalidMessage("reveal notice does not answer a pending request")
        entry = LogEntry(
            kind="reveal",
            party=req.requester,
            period=req.period,
            digest=notice.response_hash,
            commitment_root=b"",
            commitment_size=0,
            catalog_version=self.params.catalog_version,
        )
        log = self.ledger.log
        with self.ledger.transaction():
            index = log.append(codec.encode(entry))
            sth = log.sign_tree_head()
            self.ledger.put_reveal(
                RevealRecord(
                    notice.request_hash,
                    notice.response_hash,
                    req.requester,
                    req.purpose,
                    req.period,
                    len(req.slots),
                    index,
                    sealed_notice,
                )
            )
        del self._pending[notice.request_hash]
        return codec.encode(
            LogInclusion(
                entry=codec.encode(entry),
                index=index,
                proof=tuple(log.inclusion_proof(index, sth.size)),
                tree_head=TreeHead(sth.size, sth.root, sth.timestamp_ms, sth.signature),
            )
        )

    # -- access support -------------------------------------------------------------------
    def log_inclusion(self, envelope_hash: bytes) -> bytes:
        """Aggregator, for anyone: the log entry of an envelope with its audit path.

        Raises ``KeyError`` if no such envelope was accepted.
        """
        rec = self.ledger.envelope(envelope_hash)
        if rec is None:
            raise KeyError(f"no accepted envelope {envelope_hash.hex()}")
        log = self.ledger.log
        sth = log.latest_tree_head()
        assert sth is not None and sth.size > rec.log_index  # signed at every append
        msg = LogInclusion(
            entry=log.entry(rec.log_index),
            index=rec.log_index,
            proof=tuple(log.inclusion_proof(rec.log_index, sth.size)),
            tree_head=TreeHead(sth.size, sth.root, sth.timestamp_ms, sth.signature),
        )
        return codec.encode(msg)


def check_purpose(
    catalog: Catalog, request: GradeRequest, registered: Sequence[str] | None
) -> None:
    """Policy, run by the aggregator and the key holder: may this request be answered?

    The purpose must be one of the scheme's purposes; a relying party's must also be one
    it registered; the registry may only ask for subjects' self-access.  Consent is
    checked separately by the key holder's :class:`ConsentVerifier`.  Raises :class:`PolicyViolation` naming what to change.
    """
    purposes = catalog.scheme.purposes
    if request.purpose not in purposes:
        raise PolicyViolation(
            f"purpose {request.purpose!r} is not one of the scheme's purposes {list(purposes)}"
        )
    if request.requester == REGISTRY_ID:
        if request.purpose != SELF_ACCESS_PURPOSE:
            raise PolicyViolation(
                f"the registry asks only for subjects' own grades ({SELF_ACCESS_PURPOSE!r})"
            )
    elif registered is None or request.purpose not in registered:
        raise PolicyViolation(f"{request.requester!r} did not register purpose {request.purpose!r}")


class ConsentVerifier(ABC):
    """The key holder's consent gate: may ``request`` be answered?

    Implementations: :class:`NoConsentTokens` (baseline default) and
    :class:`psc.parties.consent_gate.TokenConsentVerifier` (consent tokens, refusal log).
    """

    @abstractmethod
    def check(self, request: GradeRequest) -> None:
        """Raise :class:`PolicyViolation` to refuse."""


class NoConsentTokens(ConsentVerifier):
    """Baseline (the key holder's default): requests carry no consent token.

    The declared and registered purpose (:func:`check_purpose`) is the only gate;
    :class:`psc.parties.consent_gate.TokenConsentVerifier` is the gate with consent tokens.
    """

    def check(self, request: GradeRequest) -> None:
        if request.consent:
            raise PolicyViolation(
                "this key holder does not check consent tokens (NoConsentTokens); send an "
                "empty consent field, or configure the key holder with TokenConsentVerifier"
            )


# ----------------------------------------------------------------------------------------
# key holder and the reveal step


class Revealer(ABC):
    """The pluggable reveal step: encrypted live sums of some blocks -> grade indices.

    Input: for each block index ``j``, the encrypted score sum (one packed block) and one
    encrypted counter per cap label.  Output: the grade index of each requested slot.
    Implementations: :class:`TrustedDecryptor` (baseline); a k-of-n committee and
    homomorphic grading replace it in later issues.
    """

    @abstractmethod
    def grades(
        self,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
    ) -> dict[int, int]:
        """Grade index (0 = lowest band, after caps) for every slot in ``slots``."""

    def grades_for(
        self,
        request_hash: bytes,
        period: int,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
        *,
        authorization: bytes,
    ) -> dict[int, int]:
        """What :meth:`KeyHolder.answer` calls: :meth:`grades`, told which request (its
        hash) and period it serves, for reveals that account per release (the committee's
        DP reveal, :class:`psc.parties.committee.CommitteeRevealer`).  ``authorization``
        is the aggregator-signed :class:`RevealRequest` the blocks came in, which parties
        that decrypt (committee members) check against the log themselves."""
        return self.grades(slots, score, caps)


class TrustedDecryptor(Revealer):
    """Baseline reveal: one trusted holder of the Paillier private key decrypts blocks.

    Algebra: ``D(prod_p prod_c acc[p, c]) = sum of live deltas`` slot-wise; the grade is
    ``#{t : base + sum > t}``, lowered to the smallest cap label whose live counter is
    positive (:func:`psc.oracle.grades_of`; clamping never changes a grade).

    Leaks to the key holder: the exact live sums of every slot in each decrypted block
    (``S`` subjects per block) and their cap counts.  It returns grades only.
    """

    def __init__(self, params: ProtocolParameters, private_key: PaillierPrivateKey) -> None:
        if private_key.public.fingerprint != params.public_key.fingerprint:
            raise KeyMismatch("the private key does not match the published public key")
        self.params = params
        self._sk = private_key
        self._backend = params.backend(RandomnessPool(params.public_key))

    def grades(
        self,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
    ) -> dict[int, int]:
        cat = self.params.catalog
        S = self.params.layout.slots
        top = len(cat.labels) - 1
        out: dict[int, int] = {}
        by_block: dict[int, list[int]] = {}
        for s in slots:
            by_block.setdefault(s // S, []).append(s)
        for j, members in sorted(by_block.items()):
            sums = self._backend.decrypt(score[j], self._sk)
            cap = np.full(sums.shape, top, dtype=np.int64)
            for label, blocks in caps.items():
                counts = self._backend.decrypt(blocks[j], self._sk)
                cap = np.where(counts > 0, np.minimum(cap, cat.grade_index(label)), cap)
            g = grades_of(cat, cat.scheme.base_score + sums, cap)
            for s in members:
                out[s] = int(g[s - j * S])
        return out


class RevealAnswer(NamedTuple):
    """What the key holder produces for one reveal request."""

    response: bytes  # sealed GradeResponse: for the requester, never the aggregator
    notice: bytes  # sealed RevealNotice: for the aggregator's log


class LogViewLike(Protocol):
    """What the key holder needs of :class:`psc.protocol.logview.LogView` (which imports
    this module, hence the structural type)."""

    def check_blocks(
        self,
        period: int,
        tree_size: int,
        tree_root: bytes,
        blocks: Iterable[tuple[str, int, PackedCiphertext]],
    ) -> None: ...


class KeyHolder:
    """The (single, trusted, baseline) key holder: answers reveal requests with grades only.

    Holds the :class:`Revealer` (and through it the private key), its signing key and the
    relying parties' registrations.  Sees only what it decrypts (see
    :class:`TrustedDecryptor`) and the requests.
    """

    def __init__(
        self,
        params: ProtocolParameters,
        revealer: Revealer,
        signing_key: Ed25519PrivateKey,
        *,
        log_view: LogViewLike,
        consent: ConsentVerifier | None = None,
        clock: Clock = system_clock,
        answered: AnsweredRequests | None = None,
    ) -> None:
        if public_bytes(signing_key) != params.key_holder_key:
            raise KeyMismatch("this signing key is not the key holder key in the parameters")
        self.params = params
        self.revealer = revealer
        self._log = log_view
        self._key = signing_key
        self._consent = consent if consent is not None else NoConsentTokens()
        self._clock = clock
        self._parties: dict[str, RelyingPartyRegistration] = {}
        self._answered = answered if answered is not None else AnsweredRequests()
        # every head the log shows the key holder, kept and cross-checked (heads.py)
        self.heads = HeadKeeper(Ed25519PublicKey.from_public_bytes(params.aggregator_key))
        self.prove: Prover | None = None
        self._backend = params.backend(RandomnessPool(params.public_key))

    def register_relying_party(self, sealed: bytes) -> None:
        """Key holder, at setup: learn a registry-signed relying party."""
        reg = open_signed(sealed, RelyingPartyRegistration, lambda m: self.params.registry_key)
        self._parties[reg.party] = reg

    def _requester_key(self, req: GradeRequest) -> bytes:
        if req.requester == REGISTRY_ID:
            return self.params.registry_key
        reg = self._parties.get(req.requester)
        if reg is None:
            raise UnknownParty(f"requester {req.requester!r} is not a registered relying party")
        return reg.public_key

    def answer(self, sealed: bytes) -> RevealAnswer:
        """Key holder: turn a reveal request into a signed :class:`GradeResponse`.

        Returns the response (for the requester only) and a signed :class:`RevealNotice`
        (for the aggregator to log).  Deliver the response only after
        :meth:`check_logged` accepted the aggregator's proof that the notice is logged.

        Verifies, before decrypting anything: the aggregator's signature; the requester's
        signature on the embedded request; purpose and consent policy; freshness; that the
        request was not answered before; that the blocks are exactly those holding the
        requested slots, one per label (``score`` and every cap label), and that each is
        the live sum of the logged contributions at the request's tree head
        (:meth:`psc.protocol.logview.LogView.check_blocks`).  Leaks: grades to
        the requester only; the aggregator gets a notice with hashes and a count.  Raises :class:`InvalidMessage`,
        :class:`UnknownParty` or :class:`PolicyViolation`.
        """
        rr = open_signed(sealed, RevealRequest, lambda m: self.params.aggregator_key)
        req = open_signed(rr.request, GradeRequest, self._requester_key)
        reg = self._parties.get(req.requester)
        check_purpose(self.params.catalog, req, reg.purposes if reg else None)
        self._consent.check(req)
        now = _seconds(self._clock)
        _fresh(req.issued_at, now)
        req_hash = digest(rr.request)
        if req_hash in self._answered:
            raise InvalidMessage("this request was already answered")
        if rr.period != req.period or req.slots[-1] >= self.params.n_subjects:
            raise InvalidMessage("reveal request does not match the grade request")
        S = self.params.layout.slots
        needed = sorted({s // S for s in req.slots})
        labels = sorted([SCORE_LABEL, *self.params.catalog.cap_labels()])
        if [(b.label, b.block) for b in rr.blocks] != [(lab, j) for lab in labels for j in needed]:
            raise InvalidMessage("reveal request does not carry exactly the needed blocks")
        score: dict[int, PackedCiphertext] = {}
        caps: dict[str, dict[int, PackedCiphertext]] = {}
        checked: list[tuple[str, int, PackedCiphertext]] = []
        for b in rr.blocks:
            try:
                ct = self._backend.deserialize(b.ciphertext)
            except KeyMismatch as exc:
                raise InvalidMessage("block is under another key") from exc
            if ct.n_values != min(S, self.params.n_subjects - b.block * S):
                raise InvalidMessage("block has the wrong slot count")
            (score if b.label == SCORE_LABEL else caps.setdefault(b.label, {}))[b.block] = ct
            checked.append((b.label, b.block, ct))
        # the blocks must be the live sums of what the log holds at the named tree head:
        # a scaled or offset block (c^K, c * E(d)) would make decryption a score oracle
        self._log.check_blocks(req.period, rr.tree_size, rr.tree_root, checked)
        grades = self.revealer.grades_for(
            req_hash, req.period, req.slots, score, caps, authorization=sealed
        )
        labels_of = self.params.catalog.labels
        resp = GradeResponse(
            request_hash=req_hash,
            requester=req.requester,
            purpose=req.purpose,
            period=req.period,
            grades=tuple(SlotGrade(s, labels_of[grades[s]]) for s in req.slots),
            tree_size=rr.tree_size,
            issued_at=now,
        )
        sealed_resp = seal(resp, self._key)
        notice = RevealNotice(
            request_hash=req_hash,
            response_hash=digest(sealed_resp),
            requester=req.requester,
            purpose=req.purpose,
            period=req.period,
            slots=len(req.slots),
            issued_at=now,
        )
        self._answered.add(req_hash)
        return RevealAnswer(sealed_resp, seal(notice, self._key))

    def check_logged(self, answer: RevealAnswer, sealed_inclusion: bytes) -> None:
        """Key holder: before delivering a response, check the aggregator logged its notice.

        Verifies the log inclusion (tree head signed by the aggregator, audit path) of a
        ``reveal`` entry whose digest is the response's hash.  Raises
        :class:`InvalidMessage` otherwise; then the response must not be delivered.
        """
        entry = _logged_entry(self.params, sealed_inclusion)
        if entry.kind != "reveal" or entry.digest != digest(answer.response):
            raise InvalidMessage("the log does not hold this reveal")
        self.heads.observe_inclusion(sealed_inclusion, self.prove)


def _logged_entry(params: ProtocolParameters, data: bytes) -> LogEntry:
    """Anyone: the log entry an aggregator-signed :class:`LogInclusion` proves.

    Raises :class:`InvalidMessage` for a bad tree-head signature or audit path.
    """
    inc = codec.decode(data, LogInclusion)
    th = inc.tree_head
    verify_tree_head_signature(
        SignedTreeHead(th.size, th.root, th.timestamp_ms, th.signature),
        Ed25519PublicKey.from_public_bytes(params.aggregator_key),
    )
    merkle.verify_inclusion(inc.entry, inc.index, th.size, inc.proof, th.root)
    return codec.decode(inc.entry, LogEntry)


def read_grades(
    params: ProtocolParameters, sealed_request: bytes, sealed_response: bytes
) -> dict[int, str]:
    """Requester (relying party, or the registry for subjects): check and read a response.

    Raises :class:`InvalidMessage` unless it is the key holder's answer to this request.
    """
    resp = open_signed(sealed_response, GradeResponse, lambda m: params.key_holder_key)
    req = codec.decode(codec.decode(sealed_request, SignedMessage).body, GradeRequest)
    if resp.request_hash != digest(sealed_request) or tuple(g.slot for g in resp.grades) != (
        req.slots
    ):
        raise InvalidMessage("grade response does not answer this request")
    labels = set(params.catalog.labels)
    if any(g.grade not in labels for g in resp.grades):
        raise InvalidMessage("grade response names an unknown grade")
    return {g.slot: g.grade for g in resp.grades}


# ----------------------------------------------------------------------------------------
# relying party and subject


class RelyingParty:
    """A bank, landlord or employer: asks for one subject's grade for a declared purpose.

    Holds its signing key and the grades it receives.  Gets a grade label, never a score.
    The subject's slot (and, under :class:`~psc.parties.consent_gate.TokenConsentVerifier`, a consent token) comes from the
    subject itself.
    """

    def __init__(
        self,
        party_id: str,
        params: ProtocolParameters,
        signing_key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
        randbytes: RandBytes = os.urandom,
    ) -> None:
        self.id = party_id
        self.params = params
        self._key = signing_key
        self._clock = clock
        self._randbytes = randbytes

    @property
    def public_key(self) -> bytes:
        return public_bytes(self._key)

    def request_grade(self, slot: int, purpose: str, period: int, consent: bytes = b"") -> bytes:
        """Relying party: a sealed :class:`GradeRequest` for one slot.

        ``consent`` is the subject's encoded consent token where the key holder requires
        one (:class:`~psc.parties.consent_gate.TokenConsentVerifier`).  Raises :class:`PolicyViolation` early for a purpose
        outside the scheme's.
        """
        if purpose not in self.params.catalog.scheme.purposes:
            raise PolicyViolation(
                f"purpose {purpose!r} is not one of {list(self.params.catalog.scheme.purposes)}"
            )
        msg = GradeRequest(
            requester=self.id,
            purpose=purpose,
            period=period,
            slots=(slot,),
            nonce=self._randbytes(NONCE_BYTES),
            consent=consent,
            issued_at=_seconds(self._clock),
        )
        return seal(msg, self._key)

    def read_grade(self, sealed_request: bytes, sealed_response: bytes) -> str:
        """Relying party: the grade label from the key holder's response."""
        grades = read_grades(self.params, sealed_request, sealed_response)
        if len(grades) != 1:
            raise InvalidMessage("expected exactly one grade")
        return next(iter(grades.values()))


@dataclass
class Subject:
    """A scored person's client: verifies what agencies return and recomputes its score.

    Holds its slot and the registry-signed agency registrations (public).  Sees only its
    own events.
    """

    slot: int
    params: ProtocolParameters
    agencies: dict[str, AgencyRegistration] = field(default_factory=dict)

    def learn_agency(self, sealed_registration: bytes) -> None:
        """Subject: trust an agency's key because the registry signed it."""
        reg = open_agency_registration(sealed_registration, self.params)
        self.agencies[reg.agency] = reg

    def verify_access(
        self,
        sealed_request: bytes,
        sealed_response: bytes,
        log_inclusions: Mapping[bytes, bytes],
    ) -> list[Event]:
        """Subject: verify an agency's access answer; the events it proves.

        ``log_inclusions`` maps envelope hashes to the aggregator's encoded
        :class:`LogInclusion` of their log entries; pass those of *every* logged envelope
        (:meth:`Aggregator.log_inclusion`), so that a period the agency leaves out is
        noticed.  Checks: the agency's signature (via its registry-signed registration);
        that the answer is to this request and this slot, for periods in its range; for
        every period, the aggregator-signed log inclusion of a ``submission`` entry by this
        agency for that period, whose commitment root and size the events are proven
        against; that every logged envelope of this agency in the range is answered for;
        every event's rule belongs to the agency and its date to the period; every salted
        leaf's inclusion proof.  Raises :class:`InvalidMessage` on any failure (a tampered
        or incomplete answer).  What it cannot show: that no event *within* an answered
        period was left out; the recomputed grade is compared with the revealed one for
        that (``protocols/access.md`` §4).
        """
        resp = open_signed(sealed_response, AccessResponse, self._agency_key)
        req = codec.decode(codec.decode(sealed_request, SignedMessage).body, AccessRequest)
        if resp.request_hash != digest(sealed_request) or resp.subject != self.slot:
            raise InvalidMessage("access response does not answer this request")
        if any(not req.first_period <= pe.period <= req.last_period for pe in resp.periods):
            raise InvalidMessage("access response holds a period that was not asked for")
        logged: dict[bytes, LogEntry] = {}
        for h, data in log_inclusions.items():
            entry = _logged_entry(self.params, data)
            if entry.kind != "submission" or entry.digest != h:
                raise InvalidMessage("a log inclusion does not hold the envelope it is filed under")
            logged[h] = entry
        expected = {
            h
            for h, e in logged.items()
            if e.party == resp.agency and req.first_period <= e.period <= req.last_period
        }
        if expected != {pe.envelope_hash for pe in resp.periods}:
            raise InvalidMessage(
                "access response does not cover exactly the agency's logged envelopes"
            )
        cat_agency = self.agencies[resp.agency].catalog_agency
        events: list[Event] = []
        for pe in resp.periods:
            entry = logged[pe.envelope_hash]
            if (
                entry.party != resp.agency
                or entry.period != pe.period
                or entry.commitment_size != pe.commitment_size
            ):
                raise InvalidMessage("access response does not match the logged envelope")
            for op in pe.events:
                try:
                    date = dt.date.fromisoformat(op.date)
                    rule = self.params.catalog.rule(op.rule)
                    leaf = merkle.commitment_leaf(self.slot, op.rule, op.evidence, date, op.salt)
                except (ValueError, KeyError) as exc:
                    raise InvalidMessage("access response holds a malformed event") from exc
                if rule.agency != cat_agency or period_index(date) != pe.period:
                    raise InvalidMessage("access response holds an event this envelope cannot")
                merkle.verify_inclusion(
                    leaf, op.index, pe.commitment_size, op.proof, entry.commitment_root
                )
                events.append(Event(self.slot, op.rule, date, op.evidence))
        return events

    def _agency_key(self, resp: AccessResponse) -> bytes:
        reg = self.agencies.get(resp.agency)
        if reg is None:
            raise InvalidMessage("access response from an unknown agency")
        return reg.public_key

    def explain(self, events: Sequence[Event], period: int) -> tuple[int, str]:
        """Subject: recompute its own score and grade with the oracle from proven events."""
        from psc.oracle import score

        mine = [Event(0, e.rule, e.date, e.evidence) for e in events]
        table = EventTable.from_events(self.params.catalog, mine, 1)
        s = score(table, period)
        return int(s.score[0]), self.params.catalog.labels[int(s.grade[0])]


__all__ = [
    "CLOCK_SKEW",
    "MIN_COMMITMENT_LEAVES",
    "REGISTRY_ID",
    "REQUEST_MAX_AGE",
    "SCORE_LABEL",
    "SELF_ACCESS_PURPOSE",
    "Agency",
    "Aggregator",
    "ConsentVerifier",
    "KeyHolder",
    "NoConsentTokens",
    "ProtocolParameters",
    "Registry",
    "RelyingParty",
    "RevealAnswer",
    "Revealer",
    "Subject",
    "TrustedDecryptor",
    "cap_bounds",
    "check_purpose",
    "delta_bounds",
    "open_agency_registration",
    "protocol_layout",
    "read_grades",
    "system_clock",
]
