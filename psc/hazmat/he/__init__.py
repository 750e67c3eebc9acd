"""Homomorphic grading under CKKS (TenSEAL): the grade is computed under encryption.

Hazmat below the front door.  The front door is :class:`~psc.parties.grading_authority.GradingAuthority`
(the key holder that evaluates the published circuit on its own log) and the reference run
:func:`~psc.sim.he_driver.grade_with_he`.  Raw pieces: :mod:`psc.hazmat.he.composites` (sign
approximations and profiles), :mod:`psc.hazmat.he.circuit` (public parameters),
:mod:`psc.hazmat.he.evaluator` (the circuit on ciphertexts), :mod:`psc.hazmat.he.flooding` (noise and its
bound), :mod:`psc.hazmat.he.histogram`, :mod:`psc.protocol.he_messages`.  Normative spec:
``protocols/he-grading.md``; threat model: ``protocols/threat-model.md (section 5)``.
"""
