"""Homomorphic grading under CKKS (TenSEAL): the grade is computed under encryption.

Hazmat below the front door.  The front door is :class:`~psc.he.authority.GradingAuthority`
(the key holder that evaluates the published circuit on its own log) and the reference run
:func:`~psc.he.reference.grade_with_he`.  Raw pieces: :mod:`psc.he.composites` (sign
approximations and profiles), :mod:`psc.he.circuit` (public parameters),
:mod:`psc.he.evaluator` (the circuit on ciphertexts), :mod:`psc.he.flooding` (noise and its
bound), :mod:`psc.he.histogram`, :mod:`psc.he.messages`.  Normative spec:
``protocols/he-grading.md``; threat model: ``protocols/threat-model.md (section 5)``.
"""
