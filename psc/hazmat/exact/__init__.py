"""Raw scheme code of the exact reveal (hazmat): SEAL's BFV ring opened for multiparty
keys (:mod:`~psc.hazmat.exact.ring`, :mod:`~psc.hazmat.exact.seal_io`), dealer-free
collective keys (:mod:`~psc.hazmat.exact.keys`, Mouchet et al., PETS 2021), smudged
k-of-n decryption (:mod:`~psc.hazmat.exact.threshold`), the grade as a polynomial over
Z_65537 (:mod:`~psc.hazmat.exact.polynomial`) and its baby-step giant-step circuit
(:mod:`~psc.hazmat.exact.circuit`).

.. warning::
    Nothing here is a protocol: no signature, log, request binding or consent.  The
    parties are :mod:`psc.parties.exact`; the spec is ``protocols/exact-reveal.md``.
"""
