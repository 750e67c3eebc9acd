"""Hazardous materials: raw scheme code below the parties.

.. warning::
    Nothing in this package is a protocol.  These are the primitives the parties in
    :mod:`psc.parties` are built from: a ciphertext here is not signed, not logged, not
    proven well-formed and not bound to any request, and a decryption here charges no
    privacy budget and asks for no consent.  Use the parties (:mod:`psc.parties`) and the
    reference run (:mod:`psc.sim.driver`) unless you are benchmarking or testing a scheme.

Contents: :mod:`~psc.hazmat.paillier` (phe-compatible keys, short-exponent randomizers),
:mod:`~psc.hazmat.packing` (slot layout and its no-overflow bound),
:mod:`~psc.hazmat.threshold` (k-of-n threshold Paillier with proved decryption shares),
:mod:`~psc.hazmat.proofs` (plaintext-knowledge and per-slot range proofs),
:mod:`~psc.hazmat.backends` (packed Paillier, BFV, CKKS behind one interface),
:mod:`~psc.hazmat.he` (CKKS parameters, sign composites, the grading circuit, flooding),
:mod:`~psc.hazmat.merkle` (RFC 9162 trees and proofs),
:mod:`~psc.hazmat.exact` (dealer-free threshold BFV keys, smudged decryption, exact grade
polynomials).

Dependencies point downwards only: modules here import :mod:`psc.exceptions`, each other
and third-party libraries.  The exceptions, listed in ``tests/test_layout.py``:
:mod:`psc.hazmat.packing`, :mod:`psc.hazmat.backends.bfv` and the CKKS circuit size
themselves from the public bounds of a :class:`~psc.catalog.Catalog` (the circuit also
from the oracle's raw-score range), and :mod:`psc.hazmat.he.flooding` draws from the
exact samplers of :mod:`psc.dp`.
"""
