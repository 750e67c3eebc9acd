"""The key holder: answers lawful grade requests through a pluggable :class:`Revealer`.

Normative: ``protocols/reveal-baseline.md``.  Holds the Paillier private key (behind a
:class:`Revealer`; the baseline :class:`TrustedDecryptor` is one trusted key holder, the
k-of-n committee of :mod:`psc.parties.committee` sits behind the same interface) and its
signing key.  Never: records or identities.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc.catalog import Catalog
from psc.exceptions import (
    InvalidMessage,
    KeyMismatch,
    PolicyViolation,
    UnknownParty,
)
from psc.hazmat import merkle
from psc.hazmat.backends.paillier import PackedCiphertext, RandomnessPool
from psc.hazmat.paillier import PaillierPrivateKey
from psc.ledger.translog import SignedTreeHead, verify_tree_head_signature
from psc.oracle import grades_of
from psc.protocol import codec
from psc.protocol.heads import HeadKeeper, Prover
from psc.protocol.messages import (
    GradeRequest,
    GradeResponse,
    LogEntry,
    LogInclusion,
    RelyingPartyRegistration,
    RevealNotice,
    RevealRequest,
    SlotGrade,
)
from psc.protocol.parameters import (
    REGISTRY_ID,
    SCORE_LABEL,
    SELF_ACCESS_PURPOSE,
    ProtocolParameters,
    _fresh,
)
from psc.protocol.replay import AnsweredRequests
from psc.protocol.signing import digest, open_signed, public_bytes, seal
from psc.seams import Clock, _seconds, system_clock

__all__ = [
    "ConsentVerifier",
    "KeyHolder",
    "NoConsentTokens",
    "RevealAnswer",
    "Revealer",
    "TrustedDecryptor",
    "check_purpose",
]


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
