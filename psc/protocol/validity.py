"""Validity proofs of an agency's envelope: every slot within its catalog range (issue 11).

The agency proves, for every ciphertext of its :class:`~psc.protocol.messages.Submission`
(each retention class's dense delta vector, each cap counter), that every subject slot
lies in the range the catalog allows that agency in one period, and that the padding
slots of the last block are zero (:mod:`psc.hazmat.proofs.range`, ``protocols/proofs.md`` section
3).  The aggregator verifies every proof before anything touches its state
(``protocols/ingest.md``).  Each proof is bound by Fiat-Shamir to a context naming the
agency, period, catalog version, nonce, the envelope's other header fields and the
vector's place in it, so a proof never verifies in another envelope or for another vector.

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
        (b"index", index.to_bytes(4, "big")),
        (b"retention", vector.retention.encode()),
        (b"cap", vector.cap.encode()),
        (b"lo", vector.lo.to_bytes(16, "big", signed=True)),
        (b"hi", vector.hi.to_bytes(16, "big", signed=True)),
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
    randbelow: RandBelow = secrets.randbelow,
) -> None:
    """Aggregator (and any auditor): verify one vector's proof.  Raises
    :class:`InvalidProof` naming the agency, the vector and, where the failing equation
    belongs to one block, the first such block."""
    lo, hi = _bounds(vector, ct.n_values)
    cts = [int(c) for c in ct.blocks]
    try:
        parsed = RangeProof.from_bytes(public_key, layout, len(cts), lo, hi, proof)
    except InvalidMessage as exc:
        raise InvalidProof(
            f"agency {agency!r}: the validity proof of its {vector.name} is malformed "
            f"({exc}); the envelope was refused and nothing changed"
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
            "envelope; the envelope was refused and nothing changed"
        ) from exc
