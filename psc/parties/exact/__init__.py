"""The parties of the exact reveal (normative: ``protocols/exact-reveal.md``): the members'
dealer-free key generation (:mod:`~psc.parties.exact.setup`), the BFV input log
(:mod:`~psc.parties.exact.inputs`), the committee members
(:mod:`~psc.parties.exact.member`) and the combiner (:mod:`~psc.parties.exact.combiner`).
"""
