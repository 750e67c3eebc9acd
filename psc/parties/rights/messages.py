"""Rights messages: the registry's adjustment order, the agency's adjustment, its log entry.

Normative: ``protocols/rights.md``.  Encoding: :mod:`psc.protocol.codec`, like every other
message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from psc.catalog import Catalog
from psc.exceptions import (
    InvalidMessage,
)
from psc.hazmat import merkle
from psc.ledger.translog import SignedTreeHead, verify_tree_head_signature
from psc.protocol import codec
from psc.protocol.messages import (
    HASH_BYTES,
    NONCE_BYTES,
    AgencyRegistration,
    CapCiphertext,
    ClassCiphertext,
    LogInclusion,
    Message,
)
from psc.protocol.parameters import ProtocolParameters, cap_bounds, delta_bounds
from psc.protocol.signing import digest, open_signed

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
    cancelled events' contribution in the subject's slot and zeros elsewhere; ``proofs[i]``
    proves every slot of vector ``i`` within :func:`psc.protocol.validity.adjustment_ranges`
    (bound to every other field by :func:`psc.protocol.validity.adjustment_context`).
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
    proofs: tuple[bytes, ...]  # one range proof per ciphertext: deltas, then caps (rights.md)

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
        _need(
            len(self.proofs) == len(self.deltas) + len(self.caps),
            "one range proof per ciphertext (deltas, then caps)",
        )


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
