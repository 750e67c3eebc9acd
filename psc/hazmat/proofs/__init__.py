"""Zero-knowledge proofs about packed Paillier ciphertexts.  **Hazmat.**

These are raw proof systems: they say nothing about who may send what, which bounds a
catalog allows or how proofs travel.  Protocol code (:mod:`psc.protocol.validity`, the
committee) wraps them; use those instead.  This package imports nothing above the scheme
layer (``psc.hazmat.paillier``, ``psc.hazmat.packing``, ``psc.hazmat.backends.paillier``, ``psc.exceptions``).

* :mod:`psc.hazmat.proofs.plaintext`: proof of plaintext knowledge for a batch of ciphertexts
  (Cramer-Damgard-Nielsen, EUROCRYPT 2001; Damgard-Jurik, PKC 2001).
* :mod:`psc.hazmat.proofs.range`: exact per-slot range proofs for packed plaintexts
  (:mod:`psc.hazmat.proofs.range_statement`: their public structure).
* :mod:`psc.hazmat.proofs.transcript`: Fiat-Shamir transcripts (domain-separated SHA-256/SHAKE).
* :mod:`psc.hazmat.proofs.multiexp`: batch verification helpers (small random exponents,
  bucket multi-exponentiation).

Normative description, security arguments and the technique decision record:
``protocols/proofs.md``.  Every verifier raises :class:`psc.exceptions.InvalidProof` (an
:class:`~psc.exceptions.InvalidMessage`) on any failure and never says which equation
failed beyond the block index the caller already knows.
"""

from __future__ import annotations

from psc.hazmat.proofs.plaintext import PlaintextProof, prove_plaintexts, verify_plaintexts
from psc.hazmat.proofs.range import (
    RangeProof,
    guaranteed_range,
    pool_demand,
    prove_slot_ranges,
    verify_slot_ranges,
)

__all__ = [
    "PlaintextProof",
    "RangeProof",
    "guaranteed_range",
    "pool_demand",
    "prove_plaintexts",
    "prove_slot_ranges",
    "verify_plaintexts",
    "verify_slot_ranges",
]
