"""Data-subject rights on the ledger: access, correction and appeal, deletion, credit repair.

Normative: ``protocols/rights.md``.  This module wires the rights office's
:class:`~psc.policy.rights.RightsDesk` (deadlines, outcomes) to the protocol roles, so every
outcome is something the protocol did and the log shows:

access, explanation
    answered with the verified access protocol: each agency's events come with Merkle
    inclusion proofs against the commitments in its logged envelopes
    (:meth:`~psc.parties.subject.Subject.verify_access`), logged adjustments are verified and
    applied, the subject's score and grade are recomputed with the oracle and compared with
    the grade the key holder reveals to the subject.  A failed check leaves the request open
    (and is recorded); only a verified answer closes it.
correction, appeal, deletion
    an :class:`Adjustment`: the agency's signed, encrypted *compensating delta* that cancels
    the disputed event, linked to the original envelope (its hash) and to the event's leaf
    in that envelope's commitment, logged in the transparency log (an
    :class:`AdjustmentEntry` leaf) and added to the encrypted sums from the period it is
    logged in.
repair (credit repair)
    early removal of a record class for one subject: one adjustment per logged envelope
    that holds the subject's events of that rule, cancelling all of them from now on.
consent withdrawal
    recorded by the desk; the key holder's consent gate asks the desk
    (:class:`~psc.parties.consent_gate.TokenConsentVerifier` ``withdrawn=desk.is_withdrawn``).

Why compensating deltas (the encrypted-accumulator world)
    The aggregator holds only per-(period, retention class) sums of ciphertexts; it cannot
    take one subject's event out of a sum, and the log is append-only.  So the agency, which
    alone knows the event, encrypts a *dense* vector holding minus the event's delta (and
    minus one on the cap counter of a capping rule) in the subject's slot and zeros
    elsewhere: the aggregator cannot tell whom it concerns.  An adjustment amends the
    accumulators of the *original* period (same retention class, so it expires exactly when
    the original does) but counts only for evaluation periods from ``effective_period`` on:
    grades of earlier periods stay as they were computed and revealed, and the cancelled
    event neither counts after the correction nor resurfaces later.  Algebra (ciphertexts
    multiply, plaintexts add), for an evaluation period ``P``::

        live(P) = prod_{(p, c) live at P} ( acc[p, c] * prod_{a amends (p, c), eff(a) <= P} adj[a] )

    and ``D(acc * adj) = sum of the events that were not cancelled``, a subset-sum of the
    events the accumulator holds, so the public bound of ``acc`` still bounds it (this is
    why the sum keeps ``acc``'s bound).  The aggregator refuses an adjustment that would
    cancel a leaf twice.  What it trusts the agency for is what it already trusts a
    submission for: that the ciphertexts encrypt what the agency says.  The subject checks
    the outcome: the grade revealed to it must equal the oracle's on its proven events minus
    the cancelled ones.

Leaks: to the aggregator and the log, that agency ``A`` amended its envelope of period
``p`` by ``k`` leaves of its commitment (random positions) from period ``e``; never the slot,
the rule or the delta.  The rights office (at the registry) knows the identity, as it already
does.
"""

from __future__ import annotations

from psc.parties.rights.agency import RightsAgency
from psc.parties.rights.aggregator import AdjustmentRecord, RightsAggregator
from psc.parties.rights.messages import (
    ADJUSTMENT_KINDS,
    Adjustment,
    AdjustmentEntry,
    AdjustmentOrder,
    adjustment_bounds,
    verify_adjustment,
)
from psc.parties.rights.office import AccessAnswer, LedgerLink, ProvenEvent, RightsOffice, parse_ref
from psc.parties.rights.registry import RightsRegistry

__all__ = [
    "ADJUSTMENT_KINDS",
    "AccessAnswer",
    "Adjustment",
    "AdjustmentEntry",
    "AdjustmentOrder",
    "AdjustmentRecord",
    "LedgerLink",
    "ProvenEvent",
    "RightsAgency",
    "RightsAggregator",
    "RightsOffice",
    "RightsRegistry",
    "adjustment_bounds",
    "parse_ref",
    "verify_adjustment",
]
