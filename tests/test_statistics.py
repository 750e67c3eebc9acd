"""DP district statistics (psc.statistics) through the key committee, at 512 bits (INSECURE).

Agencies' per-district, per-class delta vectors are encrypted, summed as the aggregator
would (live classes only), released by the committee: with the noise forced to zero the
table equals the plaintext means exactly; with noise the release differs from the truth
by exactly the members' shares; the release is charged once per period to its own
ledger key, a repeat is served from the store, and an exhausted budget is refused.
"""

from __future__ import annotations

import itertools
import sqlite3
from fractions import Fraction

import numpy as np
import pytest

from protocols.gen_reveal_dp import COMBINER_SEED, make_committee
from psc.catalog import Catalog
from psc.dp.accounting import ApproxDP
from psc.events import EventTable
from psc.exceptions import BudgetExhausted, ParameterError
from psc.parties.committee import CommitteeMember, KeyCommittee, LocalLink
from psc.protocol.signing import _signing_key_from_seed
from psc.sim.city import simulate_city
from psc.statistics import (
    district_bound,
    district_deltas,
    district_table,
    encrypt_district_deltas,
    live_district_sums,
    populations_of,
    release_district_table,
    statistics_parameters,
)

DISTRICTS = 6


def setup(city_cat: Catalog, *, draw=None, budget=None):  # type: ignore[no-untyped-def]
    c = make_committee(catalog=city_cat, draw=draw, multiplicity=2)
    sim = simulate_city(city_cat, subjects=300, agencies=9, periods=3, seed=11, districts=DISTRICTS)
    pops = populations_of(sim.district, DISTRICTS)
    sp = statistics_parameters(c.params, max_population=max(pops))
    members = [
        CommitteeMember(sp, m._share, m._key, _draw=draw, log_view=c.log)  # same keys
        for m in c.members
    ]
    kc = KeyCommittee(
        sp,
        _signing_key_from_seed(COMBINER_SEED),
        [LocalLink(m) for m in members],
        sqlite3.connect(":memory:", isolation_level=None),
        budget=budget if budget is not None else ApproxDP(4, Fraction(1, 10**9)),
    )
    backend = sp.backend()
    last = sim.periods[-1]
    cat = city_cat
    # agencies: one encrypted vector per (instance, period, class); aggregator: live sum
    parts = []
    for inst in sim.agencies:
        evs = [e for p in sim.periods for e in sim.events[inst.id][p]]
        table = EventTable.from_events(cat, evs, sim.n_subjects)
        for p in sim.periods:
            for cls in {r.retention for r in cat.rules if r.agency == inst.catalog_agency}:
                if not p <= last < p + cat.retention[cls].months:
                    continue
                d = district_deltas(table, sim.district, DISTRICTS, p, cls)
                bound = district_bound(cat, inst.catalog_agency, cls, max(pops))
                parts.append(encrypt_district_deltas(backend, bound, d))
    total = backend.sum(parts)
    truth = live_district_sums(sim.table(), sim.district, DISTRICTS, last)

    def auth(period: int) -> bytes:  # the aggregator's request for the published statistic
        return c.statistic_request("district-mean", period, DISTRICTS)

    kc.authorize = auth  # type: ignore[attr-defined]
    return kc, total, truth, pops, last


def test_zero_noise_release_is_the_exact_district_table(city: Catalog) -> None:
    kc, total, truth, pops, last = setup(city, draw=lambda: 0)
    rows, release = release_district_table(kc, last, total, pops, authorization=kc.authorize(last))
    assert list(release.sums) == truth.tolist() and not release.stored
    assert rows == district_table(city, truth.tolist(), pops)
    s = city.scheme
    for r in rows:
        assert r.mean_score == pytest.approx(s.base_score + truth[r.district] / pops[r.district])
        assert 0 <= r.index <= 100
    assert sorted(r.rank for r in rows) == list(range(1, DISTRICTS + 1))
    best = max(rows, key=lambda r: r.index)
    assert best.rank == 1


def test_noisy_release_differs_by_the_members_shares_and_is_charged_once(city: Catalog) -> None:
    draws: list[int] = []
    source = itertools.cycle([3, -8, 5, 1, -2, 7, 0])

    def draw() -> int:
        draws.append(next(source))
        return draws[-1]

    kc, total, truth, pops, last = setup(city, draw=draw)
    _rows, release = release_district_table(kc, last, total, pops, authorization=kc.authorize(last))
    n = kc.params.n
    per_cell = [sum(draws[i * DISTRICTS + x] for i in range(n)) for x in range(DISTRICTS)]
    assert [a - b for a, b in zip(release.sums, truth.tolist(), strict=True)] == per_cell
    assert len(kc.budget.spends("stats:district-mean")) == 1
    again = kc.release_sums("district-mean", last, total, authorization=kc.authorize(last))
    assert again.stored and again.sums == release.sums and len(draws) == n * DISTRICTS
    assert len(kc.budget.spends("stats:district-mean")) == 1


def test_exhausted_statistics_budget_is_refused(city: Catalog) -> None:
    kc, total, _, pops, last = setup(city, budget=ApproxDP(Fraction(3, 2), Fraction(1, 10**9)))
    release_district_table(kc, last, total, pops, authorization=kc.authorize(last))
    with pytest.raises(BudgetExhausted, match="nothing was decrypted"):
        release_district_table(kc, last + 1, total, pops, authorization=kc.authorize(last + 1))


def test_table_refuses_empty_districts_and_parameters_refuse_zero_population(city: Catalog) -> None:
    with pytest.raises(ValueError, match="no subjects"):
        district_table(city, [0, 0], [5, 0])
    c = make_committee(catalog=city)
    with pytest.raises(ParameterError):
        statistics_parameters(c.params, max_population=0)
    assert np.array_equal(populations_of(np.array([0, 1, 1]), 3), [1, 2, 0])
