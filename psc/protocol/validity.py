"""Validity proofs of an agency's envelope: every slot within its catalog range (issue 11).

The agency proves, for every ciphertext of its :class:`~psc.protocol.messages.Submission`
(each retention class's dense delta vector, each cap counter), that every subject slot
lies in the range the catalog allows that agency in one period, and that the padding
slots of the last block are zero (:mod:`psc.hazmat.proofs.range`, ``protocols/proofs.md`` section
3).  The aggregator verifies every proof before anything touches its state
(``protocols/ingest.md``).  Each proof is bound by Fiat-Shamir to a context naming the
agency, period, catalog version, nonce, the envelope's other header fields and the
vector's place in it, so a proof never verifies in another envelope or for another vector.

Rights adjustments (``protocols/rights.md``) carry the same proofs over the ranges of
:func:`adjustment_ranges`, bound to the adjustment's own fields (:func:`adjustment_context`).

Ranges (public, from the catalog alone): a delta vector of class ``c`` lies in
``[sum of negative delta * max_per_period, sum of positive delta * max_per_period]`` over
the agency's rules in ``c``; a cap counter in ``[0, sum of max_per_period]``.  So an
agency with only positive rules cannot subtract, and no cap counter is ever negative.

What leaks: nothing beyond the ranges (public) and the sizes of the proofs.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from psc.catalog import Catalog
from psc.events import IntArray
from psc.exceptions import InvalidMessage, InvalidProof
from psc.hazmat.backends.paillier import BlockOpening, PackedCiphertext, RandomnessPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPublicKey, RandBelow
from psc.hazmat.proofs.range import (
    RangeProof,
    locate_failure,
    pool_demand,
    prove_slot_ranges,
    verify_slot_ranges,
)

DOMAIN = b"psc/validity/v1"
ADJUSTMENT_DOMAIN = b"psc/validity/adjustment/v1"


@dataclass(frozen=True)
class VectorRange:
    """One vector of an envelope and the range every one of its slots must lie in."""

    retention: str  # retention class
    cap: str  # cap label for a cap counter, "" for the class's delta vector
    lo: int  # smallest lawful slot value in one period
    hi: int  # largest lawful slot value in one period

    @property
    def name(self) -> str:
        return (
            f"cap counter ({self.retention}, {self.cap})"
            if self.cap
            else f"{self.retention} deltas"
        )


def vector_ranges(catalog: Catalog, catalog_agency: str) -> tuple[VectorRange, ...]:
    """Every vector an envelope of ``catalog_agency`` carries, in envelope order (deltas by
    class, then cap counters by (class, label)), with its per-period range."""
    lo: dict[str, int] = {}
    hi: dict[str, int] = {}
    caps: dict[tuple[str, str], int] = {}
    for r in catalog.rules:
        if r.agency != catalog_agency:
            continue
        if r.delta != 0:
            lo[r.retention] = lo.get(r.retention, 0) + min(0, r.delta) * r.max_per_period
            hi[r.retention] = hi.get(r.retention, 0) + max(0, r.delta) * r.max_per_period
        if r.grade_cap is not None:
            key = (r.retention, r.grade_cap)
            caps[key] = caps.get(key, 0) + r.max_per_period
    return tuple(VectorRange(c, "", lo[c], hi[c]) for c in sorted(lo)) + tuple(
        VectorRange(c, label, 0, m) for (c, label), m in sorted(caps.items())
    )


def adjustment_ranges(
    catalog: Catalog, catalog_agency: str, n_leaves: int
) -> tuple[VectorRange, ...]:
    """Every vector an :class:`~psc.parties.rights.messages.Adjustment` cancelling
    ``n_leaves`` events of one envelope carries, in the same order as :func:`vector_ranges`,
    with the range every slot must lie in.

    An adjustment holds minus a subset of ``n_leaves`` of one subject's events in one
    envelope, so in class ``c`` it lies in ``[-min(n P_c, hi_c), min(n M_c, -lo_c)]`` with
    ``P_c`` the largest positive delta and ``M_c`` the largest penalty (as a magnitude) of
    the agency's rules in ``c`` and ``[lo_c, hi_c]`` the envelope's range; a cap counter in
    ``[-min(n, m), 0]``.  So an agency whose rules only reward can only take points back and
    one whose rules only penalize can only give them back; no cap counter is ever raised.
    The aggregator does not learn the subject, so the range holds in every slot.  Raises
    ``ValueError`` for ``n_leaves < 1``.
    """
    if n_leaves < 1:
        raise ValueError("an adjustment cancels at least one event")
    pos: dict[str, int] = {}
    neg: dict[str, int] = {}
    for r in catalog.rules:
        if r.agency == catalog_agency and r.delta != 0:
            pos[r.retention] = max(pos.get(r.retention, 0), r.delta)
            neg[r.retention] = max(neg.get(r.retention, 0), -r.delta)
    out = []
    for v in vector_ranges(catalog, catalog_agency):
        if v.cap:
            out.append(VectorRange(v.retention, v.cap, -min(n_leaves, v.hi), 0))
        else:
            lo = -min(n_leaves * pos[v.retention], v.hi)
            hi = min(n_leaves * neg[v.retention], -v.lo)
            out.append(VectorRange(v.retention, "", lo, hi))
    return tuple(out)


#: the fields of an adjustment (besides its vectors and proofs) every proof is bound to
ADJUSTMENT_HEADER = (
    "agency",
    "kind",
    "original",
    "period",
    "effective_period",
    "leaves",
    "order",
    "catalog_version",
    "nonce",
    "n_subjects",
    "created_at",
)


def adjustment_context(
    *,
    agency: str,
    kind: str,
    original: bytes,
    period: int,
    effective_period: int,
    leaves: Sequence[int],
    order: bytes,
    catalog_version: bytes,
    nonce: bytes,
    n_subjects: int,
    created_at: int,
    index: int,
    vector: VectorRange,
) -> bytes:
    """The Fiat-Shamir context of the proof for vector ``index`` of an adjustment
    (``protocols/rights.md``): every other field of the adjustment and the vector's place,
    kind and range, under a domain tag of its own (an envelope's proof never verifies in an
    adjustment, nor the reverse)."""
    parts = (
        (b"agency", agency.encode()),
        (b"kind", kind.encode()),
        (b"original", original),
        (b"period", period.to_bytes(8, "big")),
        (b"effective_period", effective_period.to_bytes(8, "big")),
        (b"leaves", b"".join(i.to_bytes(8, "big") for i in leaves)),
        (b"order", order),
        (b"catalog_version", catalog_version),
        (b"nonce", nonce),
        (b"n_subjects", n_subjects.to_bytes(8, "big")),
        (b"created_at", created_at.to_bytes(8, "big")),
        *_vector_fields(index, vector),
    )
    return ADJUSTMENT_DOMAIN + b"".join(_field(k, v) for k, v in parts)


def _vector_fields(index: int, vector: VectorRange) -> tuple[tuple[bytes, bytes], ...]:
    """The context fields naming a vector: its place, kind and range."""
    return (
        (b"index", index.to_bytes(4, "big")),
        (b"retention", vector.retention.encode()),
        (b"cap", vector.cap.encode()),
        (b"lo", vector.lo.to_bytes(16, "big", signed=True)),
        (b"hi", vector.hi.to_bytes(16, "big", signed=True)),
    )


def _field(label: bytes, data: bytes) -> bytes:
    return len(label).to_bytes(2, "big") + label + len(data).to_bytes(4, "big") + data


def vector_context(
    *,
    agency: str,
    period: int,
    catalog_version: bytes,
    nonce: bytes,
    n_subjects: int,
    commitment_root: bytes,
    commitment_size: int,
    created_at: int,
    index: int,
    vector: VectorRange,
) -> bytes:
    """The Fiat-Shamir context of the proof for vector ``index`` of an envelope
    (``protocols/submit.md``): every header field of the envelope and the vector's place,
    kind and range, length-prefixed under a domain tag."""
    parts = (
        (b"agency", agency.encode()),
        (b"period", period.to_bytes(8, "big")),
        (b"catalog_version", catalog_version),
        (b"nonce", nonce),
        (b"n_subjects", n_subjects.to_bytes(8, "big")),
        (b"commitment_root", commitment_root),
        (b"commitment_size", commitment_size.to_bytes(8, "big")),
        (b"created_at", created_at.to_bytes(8, "big")),
        *_vector_fields(index, vector),
    )
    return DOMAIN + b"".join(_field(k, v) for k, v in parts)


def _bounds(vector: VectorRange, n_values: int) -> tuple[list[int], list[int]]:
    return [vector.lo] * n_values, [vector.hi] * n_values


def prove_vector(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    ct: PackedCiphertext,
    openings: Sequence[BlockOpening],
    values: IntArray,
    vector: VectorRange,
    context: bytes,
    *,
    pool: RandomnessPool | None = None,
    randbelow: RandBelow = secrets.randbelow,
) -> bytes:
    """Agency: the encoded range proof that every slot of ``ct`` (which encrypts
    ``values``) lies in ``vector``'s range.  Raises ``ValueError`` if a value does not
    (the agency's own records break the catalog: fix them, nothing is sent)."""
    lo, hi = _bounds(vector, ct.n_values)
    proof = prove_slot_ranges(
        public_key,
        layout,
        [int(c) for c in ct.blocks],
        openings,
        [int(v) for v in values],
        lo,
        hi,
        context,
        pool=pool,
        randbelow=randbelow,
    )
    return proof.to_bytes(public_key, layout)


def proof_pool_demand(
    public_key: PaillierPublicKey, layout: SlotLayout, n_values: int, vector: VectorRange
) -> int:
    """Encryption randomizers one vector's proof takes from the pool (for precomputation)."""
    lo, hi = _bounds(vector, n_values)
    return pool_demand(public_key, layout, layout.blocks(n_values), lo, hi)


def verify_vector(
    public_key: PaillierPublicKey,
    layout: SlotLayout,
    ct: PackedCiphertext,
    vector: VectorRange,
    proof: bytes,
    context: bytes,
    *,
    agency: str,
    message: str = "envelope",
    randbelow: RandBelow = secrets.randbelow,
) -> None:
    """Aggregator (and any auditor): verify one vector's proof (``message`` names what
    carries it in the errors: an envelope or an adjustment).  Raises
    :class:`InvalidProof` naming the agency, the vector and, where the failing equation
    belongs to one block, the first such block."""
    lo, hi = _bounds(vector, ct.n_values)
    cts = [int(c) for c in ct.blocks]
    try:
        parsed = RangeProof.from_bytes(public_key, layout, len(cts), lo, hi, proof)
    except InvalidMessage as exc:
        raise InvalidProof(
            f"agency {agency!r}: the validity proof of its {vector.name} is malformed "
            f"({exc}); the {message} was refused and nothing changed"
        ) from exc
    try:
        verify_slot_ranges(public_key, layout, cts, lo, hi, parsed, context, randbelow=randbelow)
    except InvalidProof as exc:
        block = locate_failure(public_key, layout, cts, lo, hi, parsed, context)
        where = (
            f"block {block} (slots {block * layout.slots}..{(block + 1) * layout.slots - 1})"
            if block is not None
            else f"the joint digit check over blocks 0..{len(cts) - 1}"
        )
        raise InvalidProof(
            f"agency {agency!r}: the validity proof of its {vector.name} fails at {where}: "
            f"some slot is outside [{vector.lo}, {vector.hi}] or the proof is not for this "
            f"{message}; the {message} was refused and nothing changed"
        ) from exc
