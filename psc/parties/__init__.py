"""The parties of a scoring period, one module per party (normative: ``protocols/*.md``).

Each party is a transport-neutral core: its methods take and return sealed messages
(:func:`psc.protocol.signing.seal`), and it opens every message it is given with the
sender's registered key before using anything in it.  Whether a peer runs in the same
process or behind HTTP is decided by whoever wires the parties together
(:mod:`psc.sim.driver` in process).

* :mod:`~psc.parties.registry`: identities -> slots, agency registrations.
* :mod:`~psc.parties.agency`: encrypted, proven dense delta vectors and event commitments.
* :mod:`~psc.parties.aggregator`: verifies, logs and adds envelopes; never holds a key.
* :mod:`~psc.parties.key_holder`: the single trusted decryptor (baseline reveal).
* :mod:`~psc.parties.committee`: the k-of-n key committee (members and the combiner).
* :mod:`~psc.parties.grading_authority`: the CKKS grading authority.
* :mod:`~psc.parties.relying_party`, :mod:`~psc.parties.subject`: the two readers.
* :mod:`~psc.parties.consent_gate`, :mod:`~psc.parties.rights`: consent tokens and the
  rights desk (access, correction, deletion, repair).

Shared public parameters and constants: :mod:`psc.protocol.parameters`; the raw schemes
underneath: :mod:`psc.hazmat`.
"""
