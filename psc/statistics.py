"""DP statistics: mean score per district and a district ranking, released by the committee.

The kind of table credit portals publish (a city "credit index" per district, ranked),
released with the key committee's distributed noise (``protocols/reveal-dp.md``,
section "Statistics").

Protocol (roles as in :mod:`psc.parties.committee`):

1. **Agencies** (each, per period): the per-district sum of the deltas of their own
   events, ``d[a, p, x] = sum of delta(e)`` over events ``e`` of agency ``a`` in period
   ``p`` whose subject lives in district ``x`` (:func:`district_deltas`), encrypted under
   the committee key in the statistics layout (:func:`statistics_parameters`).  An agency
   knows its subjects' districts (addresses are in its records); it learns nothing new.
2. **Aggregator**: adds the live contributions (``p <= P < p + months``, as for scores):
   ``E(sum_x)`` per district.  Ciphertexts only.
3. **Committee**: :meth:`~psc.parties.committee.KeyCommittee.release_sums` adds every
   member's noise share to every cell, decrypts with ``k`` proved shares, and charges the
   release (``stats:<name>``) in the budget ledger in the same transaction that stores it.
4. **Publication** (:func:`district_table`): ``mean_x = base + noisy_sum_x / population_x``
   and the index ``100 (mean_x - min_score) / (max_score - min_score)`` (a 0-100 scale like
   the Credit China city index), ranked.  Pure post-processing: no further privacy cost.

Sensitivity.  Neighbouring inputs differ in one event (event-level, as everywhere in psc).
One event changes one subject's score by at most ``Delta = catalog.max_abs_delta``; that
subject lives in exactly one district, so exactly one cell of the sum vector moves, by at
most ``Delta``.  Discrete Laplace noise of scale ``Delta / epsilon`` on every cell is then
``epsilon``-DP for the whole vector (the cells are disjoint: parallel composition), with
the tail-cut ``delta`` of :func:`~psc.parties.committee.tail_delta`.  District
populations are public (the registry publishes them; they are not noised).

What leaks: the release (noisy sums, hence noisy means and the ranking) to everyone; the
members see ciphertexts; the combiner sees exactly the release.  The members learn which
cells exist (districts), never a subject's district.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from psc.catalog import Catalog
from psc.events import EventTable, IntArray
from psc.exceptions import ParameterError
from psc.hazmat.backends.paillier import PackedCiphertext, PackedPaillier
from psc.oracle import live_mask
from psc.parties.committee import CommitteeParameters, KeyCommittee, StatisticRelease, reveal_layout

__all__ = [
    "DistrictRow",
    "district_bound",
    "district_deltas",
    "district_table",
    "encrypt_district_deltas",
    "live_district_sums",
    "populations_of",
    "release_district_table",
    "statistics_parameters",
]

#: Masks are never used by a statistic (every cell is revealed), so the statistics layout
#: keeps the smallest mask headroom the policy allows.
STATISTICS_MASK_BITS = 16


def statistics_parameters(
    grade: CommitteeParameters, *, max_population: int
) -> CommitteeParameters:
    """The committee parameters of district statistics: same key, members and epsilon as
    the grade reveal, a layout whose cells hold the sum of up to ``max_population``
    subjects' live deltas (``multiplicity = grade.multiplicity * max_population``) plus the
    members' noise.  Raises :class:`ParameterError` if that does not fit a slot."""
    if max_population < 1:
        raise ParameterError(f"max_population must be >= 1, got {max_population}")
    policy = dataclasses.replace(grade.policy, mask_bits=STATISTICS_MASK_BITS)
    multiplicity = grade.multiplicity * max_population
    bits = grade.public.public.bits
    layout = reveal_layout(
        grade.catalog, bits, multiplicity=multiplicity, members=grade.n, policy=policy
    )
    return CommitteeParameters(
        grade.catalog,
        grade.public,
        layout,
        multiplicity,
        policy,
        grade.member_keys,
        grade.combiner_key,
        allow_insecure_key=grade.allow_insecure_key,
    )


def district_deltas(
    table: EventTable,
    district_of: IntArray,
    districts: int,
    period: int,
    retention: str,
) -> IntArray:
    """Agency, per period and retention class: the per-district sum of the deltas of its
    own events of ``period`` under rules of class ``retention``.

    ``table`` holds the agency's own events (subjects are slots), ``district_of[slot]`` the
    district of each slot.  Plaintext, the agency's own data.  One vector per class, like
    the score contributions, so the aggregator expires each class on its own schedule.
    """
    cat = table.catalog
    deltas = np.array([r.delta for r in cat.rules], dtype=np.int64)
    in_class = np.array([r.retention == retention for r in cat.rules])
    m = (table.period == period) & in_class[table.rule]
    d = district_of[table.subject[m]]
    out: IntArray = np.bincount(d, weights=deltas[table.rule[m]], minlength=districts).astype(
        np.int64
    )
    return out


def district_bound(catalog: Catalog, agency: str, retention: str, max_population: int) -> int:
    """Public bound of one agency's per-district vector for one period and class:
    ``max_population * agency_period_bound(agency, retention)``.  Summed over the live
    periods of every class and every agency instance it stays within the statistics
    layout's ``data_bound`` (``max_population * multiplicity * worst_case_sum``)."""
    return max_population * catalog.agency_period_bound(agency, retention)


def encrypt_district_deltas(
    backend: PackedPaillier, bound: int, deltas: IntArray
) -> PackedCiphertext:
    """Agency: encrypt its per-district deltas with the public :func:`district_bound`."""
    return backend.encrypt(deltas, bound=bound)


def live_district_sums(
    table: EventTable, district_of: IntArray, districts: int, period: int
) -> IntArray:
    """Reference (plaintext): the per-district sums of live deltas at the close of
    ``period``, what the aggregator's encrypted sum holds (for tests and benchmarks)."""
    cat = table.catalog
    deltas = np.array([r.delta for r in cat.rules], dtype=np.int64)
    m = live_mask(table, period)
    d = district_of[table.subject[m]]
    out: IntArray = np.bincount(d, weights=deltas[table.rule[m]], minlength=districts).astype(
        np.int64
    )
    return out


@dataclass(frozen=True)
class DistrictRow:
    """One published row: district, population (public), noisy mean, index, rank."""

    district: int
    population: int
    mean_score: float  # base + noisy sum / population
    index: float  # 0-100: (mean - min_score) / (max_score - min_score) * 100
    rank: int  # 1 = highest index


def district_table(
    catalog: Catalog, noisy_sums: Sequence[int], populations: Sequence[int]
) -> list[DistrictRow]:
    """Publication (post-processing of a release): means, a 0-100 index and the ranking.

    Ties in the index are broken by district number.  Raises ``ValueError`` for an empty
    district (its mean is undefined; publish it as such or merge it).
    """
    if len(noisy_sums) != len(populations):
        raise ValueError("one population per district sum")
    s = catalog.scheme
    rows = []
    for x, (total, pop) in enumerate(zip(noisy_sums, populations, strict=True)):
        if pop < 1:
            raise ValueError(f"district {x} has no subjects: its mean is undefined")
        mean = s.base_score + Fraction(int(total), int(pop))
        index = (mean - s.min_score) / (s.max_score - s.min_score) * 100
        rows.append((x, int(pop), float(mean), float(index)))
    order = sorted(rows, key=lambda r: (-r[3], r[0]))
    rank = {r[0]: i + 1 for i, r in enumerate(order)}
    return [DistrictRow(x, pop, mean, idx, rank[x]) for x, pop, mean, idx in rows]


def release_district_table(
    committee: KeyCommittee,
    period: int,
    sums: PackedCiphertext,
    populations: Sequence[int],
    *,
    authorization: bytes,
    name: str = "district-mean",
) -> tuple[list[DistrictRow], StatisticRelease]:
    """Combiner: release the per-district sums through the committee and publish the table.

    ``authorization`` is the aggregator-signed
    :class:`~psc.protocol.committee_messages.StatisticRequest` for ``name`` and
    ``period``; members refuse anything else, and a statistic the committee does not
    publish.  ``committee`` must run :func:`statistics_parameters` (cells are districts).  The
    release is recorded in the committee's budget ledger (``stats:<name>``); a repeat in
    the same period returns the stored release.  Raises what
    :meth:`~psc.parties.committee.KeyCommittee.release_sums` raises.
    """
    release = committee.release_sums(name, period, sums, authorization=authorization)
    return district_table(committee.params.catalog, release.sums, populations), release


def populations_of(district_of: IntArray, districts: int) -> list[int]:
    """Registry: the public population of each district."""
    return [int(x) for x in np.bincount(district_of, minlength=districts)]
