"""A committee run's result fields: what the reveal spent and how accurate it was.

Shared by the single-process driver (:func:`psc.sim.god_view._committee_result`) and the
run across processes (:mod:`psc.sim.loopback`), which read the same facts from different
places (the combiner object; the combiner's store after its process stopped).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from psc.dp.accounting import ApproxDP
from psc.parties.committee import CommitteeParameters
from psc.sim.results import RunResult


def _frac(q: Fraction) -> str:
    return f"{q.numerator}/{q.denominator}" if q.denominator > 1 else str(q)


def fill_committee_fields(
    result: RunResult,
    p: CommitteeParameters,
    worst: ApproxDP,
    budget_epsilon: Fraction,
    excluded: Iterable[int],
    expected_rate: float,
) -> None:
    """Set ``result``'s committee fields and note: ``worst`` is the largest per-subject loss
    spent, ``budget_epsilon`` each subject's budget, ``excluded`` the members the combiner
    excluded, ``expected_rate`` the misgrade rate the noise predicts."""
    result.reveal = "committee"
    result.grades_compared_with = (
        "the oracle's grade of raw score + the total noise the members drew for that "
        "subject (exact; the noise is known only to the simulation's god view)"
    )
    result.access_compared_with = (
        "the subject's own recomputed raw score + the noise drawn for it (god view)"
    )
    result.committee_k, result.committee_n = p.k, p.n
    result.committee_honest = p.policy.honest
    result.mechanism = "distributed-discrete-laplace"
    cap_eps = p.policy.cap_epsilon if p.has_caps else None
    caps = "" if cap_eps is None else f" + cap counters {_frac(cap_eps)}"
    caps_note = "" if cap_eps is None else f" + {_frac(cap_eps)} for the cap counters"
    result.epsilon_per_release = _frac(p.epsilon)  # score and cap counters together
    result.epsilon_breakdown = f"score {_frac(p.policy.epsilon)}" + caps
    result.epsilon_spent = float(worst.epsilon)
    result.delta_spent = float(worst.delta)
    result.budget_epsilon = float(budget_epsilon)
    result.expected_misgrade_rate = expected_rate
    result.excluded_members = sorted(set(excluded))
    result.notes.append(
        f"grades revealed by a {p.k}-of-{p.n} key committee with distributed discrete Laplace "
        f"noise (epsilon {result.epsilon_per_release} per subject and period in all: "
        f"{_frac(p.policy.epsilon)} for the score"
        + caps_note
        + f"; honest = {p.policy.honest}, quorum = {p.quorum}): noisy by design. "
        "grades_match_oracle is exact: each revealed grade equals the oracle's grade of the "
        "subject's raw score and cap counts plus the noise the members actually drew "
        "(recorded by the simulation's god view, SimulationNoiseWitness, which no protocol "
        "party reads); against the noiseless oracle the misgrade rate is "
        f"{result.misgrade_rate_vs_noiseless_oracle:.4f} (the noise predicts "
        f"{result.expected_misgrade_rate:.4f})"
    )
