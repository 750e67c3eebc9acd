"""The aggregator (scoring authority): verifies, logs and adds envelopes; answers reveals' log side.

Normative: ``protocols/ingest.md``, ``protocols/log.md`` and ``protocols/reveal-baseline.md``.
Holds the ledger (envelopes, encrypted accumulators, the transparency log) and its signing
key.  Never: a decryption key, an identity, an event or a grade.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import period_index
from psc.exceptions import (
    CatalogMismatch,
    DuplicateSubmission,
    InvalidMessage,
    KeyMismatch,
    ParameterError,
    PolicyViolation,
    ReplayedNonce,
    StalePeriod,
    UnknownParty,
)
from psc.hazmat.backends.paillier import PackedCiphertext, RandomnessPool
from psc.ledger.store import AccumulatorRecord, EnvelopeRecord, Ledger, PartyRecord, RevealRecord
from psc.parties.key_holder import check_purpose
from psc.parties.registry import open_agency_registration
from psc.protocol import codec, validity
from psc.protocol.messages import (
    AgencyRegistration,
    BlockCiphertext,
    GradeRequest,
    IngestReceipt,
    LogEntry,
    LogInclusion,
    RelyingPartyRegistration,
    RevealNotice,
    RevealRequest,
    Submission,
    TreeHead,
)
from psc.protocol.parameters import (
    REGISTRY_ID,
    SCORE_LABEL,
    ProtocolParameters,
    _fresh,
    cap_bounds,
    delta_bounds,
    trivial_zero,
)
from psc.protocol.signing import digest, open_signed, public_bytes, seal
from psc.seams import Clock, _seconds, system_clock

__all__ = [
    "Aggregator",
]


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
        ranges = validity.vector_ranges(cat, rec.catalog_agency)
        self._verify_ranges(
            out,
            ranges,
            sub.proofs,
            lambda index, vr: validity.vector_context(
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
            ),
            agency=sub.agency,
            message="envelope",
        )
        return out

    def _verify_ranges(
        self,
        vectors: Sequence[tuple[str, str, PackedCiphertext]],
        ranges: Sequence[validity.VectorRange],
        proofs: Sequence[bytes],
        context: Callable[[int, validity.VectorRange], bytes],
        *,
        agency: str,
        message: str,
    ) -> None:
        """Verify the range proof of every vector of an envelope or adjustment (``message``)
        against ``ranges`` (catalog order) and its Fiat-Shamir ``context``.  Raises
        :class:`InvalidMessage` for vectors out of catalog order, :class:`InvalidProof`
        naming the agency and the vector."""
        for index, vr in enumerate(ranges):
            retention, label, ct = vectors[index]
            if (vr.retention, vr.cap) != (retention, label):
                raise InvalidMessage(f"{message} vectors are not in catalog order")
            validity.verify_vector(
                self.params.public_key,
                self.params.layout,
                ct,
                vr,
                proofs[index],
                context(index, vr),
                agency=agency,
                message=message,
            )

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

        Idempotent: the same notice again (its answer was lost) returns the inclusion of
        the entry already logged and changes nothing; another notice for a request already
        released is refused.
        """
        notice = open_signed(sealed_notice, RevealNotice, lambda m: self.params.key_holder_key)
        logged = self.ledger.reveal(notice.request_hash)
        if logged is not None:
            if logged.notice != sealed_notice:
                raise InvalidMessage("reveal notice does not answer a pending request")
            return self._inclusion(logged.log_index)
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
            log.sign_tree_head()
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
        return self._inclusion(index)

    # -- access support -------------------------------------------------------------------
    def log_inclusion(self, envelope_hash: bytes) -> bytes:
        """Aggregator, for anyone: the log entry of an envelope with its audit path.

        Raises ``KeyError`` if no such envelope was accepted.
        """
        rec = self.ledger.envelope(envelope_hash)
        if rec is None:
            raise KeyError(f"no accepted envelope {envelope_hash.hex()}")
        return self._inclusion(rec.log_index)

    def _inclusion(self, index: int) -> bytes:
        """The encoded :class:`LogInclusion` of log entry ``index`` under the latest head."""
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
