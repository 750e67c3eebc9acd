"""The simulation's god view: noise totals, expected grades, the oracle comparison, access
sampling and the access tally (the checks every driver applies to its results)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from psc.catalog import Catalog, period_index
from psc.events import Event, EventTable
from psc.oracle import cap_counts, score
from psc.sim.deployment import SimulationNoiseWitness
from psc.sim.god_view import (
    AccessTally,
    NoiseTotals,
    committee_noise_totals,
    compare_with_oracle,
    expected_grades,
    misgrade_rate_plausible,
    sample_access_subjects,
)

DAY = dt.date(2026, 3, 10)
PERIOD = period_index(DAY)


def _events(slot: int, *rules: str) -> list[Event]:
    return [Event(slot, r, DAY, f"{k:064x}") for k, r in enumerate(rules)]


@pytest.fixture
def table(city: Catalog) -> EventTable:
    """Four subjects: slot 0 drunk driving (capped at C), 1 a traffic violation, 2
    volunteering, 3 nothing."""
    evs = (
        _events(0, "traffic.drunk-driving")
        + _events(1, "traffic.violation")
        + _events(2, "civic.volunteering")
    )
    return EventTable.from_events(city, evs, 4)


def _noise(n: int, score_noise: list[int], cap: list[int], witnessed: list[bool]) -> NoiseTotals:
    return NoiseTotals(
        np.array(score_noise, dtype=np.int64),
        {"C": np.array(cap, dtype=np.int64)},
        np.array(witnessed, dtype=bool),
    )


def test_committee_noise_totals_sum_the_members_whose_noise_was_added() -> None:
    w = SimulationNoiseWitness()
    try:
        for member, (s, c) in {1: (5, 1), 2: (100, 100), 3: (-2, 0)}.items():
            w(member, "grade", 7, "score", np.array([0, 1]), np.array([s, s]))
            w(member, "grade", 7, "C", np.array([0, 1]), np.array([c, c]))
        w(3, "grade", 7, "score", np.array([2]), np.array([9]))  # slot 2: member 3 only
        # member 2's noise share was refused, member 3's decryption share was: 1 and 3 added
        excluded = {2: "bad noise share: proof fails", 3: "decryption share fails its proof"}
        got = committee_noise_totals(
            w, excluded, members=3, period=7, n_subjects=3, cap_labels=["C"]
        )
        assert got.score.tolist() == [3, 3, 9] and got.caps["C"].tolist() == [1, 1, 0]
        assert got.witnessed.tolist() == [True, True, False]  # slot 2: one draw of two
        assert got.cap_noise(0) == {"C": 1}
        missing = committee_noise_totals(
            w,
            members=3,
            excluded={1: "no noise share: timeout"},
            period=7,
            n_subjects=3,
            cap_labels=["C"],
        )
        assert missing.score.tolist() == [98, 98, 9]
    finally:
        w.close()


def test_expected_grades_add_the_noise_to_score_and_cap_counts(
    city: Catalog, table: EventTable
) -> None:
    oracle, counts = score(table, PERIOD), cap_counts(table, PERIOD)
    plain = expected_grades(city, oracle, counts)
    assert plain.tolist() == oracle.grade.tolist()
    top, c = len(city.labels) - 1, city.grade_index("C")
    assert plain[0] <= c < plain[3]  # drunk driving caps slot 0 at C
    # no noise at all: the same as the noiseless oracle
    zero = _noise(4, [0] * 4, [0] * 4, [True] * 4)
    assert expected_grades(city, oracle, counts, zero).tolist() == plain.tolist()
    # a large score noise lifts every uncapped subject to the top, a cap count caps it,
    # and a negative cap noise lifts a cap
    noisy = _noise(4, [10**6] * 4, [-1, 0, 1, 0], [True] * 4)
    assert expected_grades(city, oracle, counts, noisy).tolist() == [top, top, c, top]
    assert (
        expected_grades(
            city, oracle, counts, _noise(4, [-(10**6)] * 4, [0] * 4, [True] * 4)
        ).tolist()
        == [0] * 4
    )


def test_compare_with_oracle_counts_mismatches_and_unwitnessed_noise(
    city: Catalog, table: EventTable
) -> None:
    oracle = score(table, PERIOD)
    revealed = {s: city.labels[int(g)] for s, g in enumerate(oracle.grade)}
    same = compare_with_oracle(city, table, PERIOD, revealed, relying_party=(1, revealed[1]))
    assert same.mismatches == same.noiseless_mismatches == 0 and same.relying_party_ok
    assert same.misgrade_rate == 0 and same.relying_party_slot == 1
    wrong = {**revealed, 2: "D"}
    bad = compare_with_oracle(city, table, PERIOD, wrong, relying_party=(2, "D"))
    assert bad.mismatches == bad.noiseless_mismatches == 1 and not bad.relying_party_ok
    assert bad.misgrade_rate == 0.25 and bad.revealed[2] == 0
    # with noise: the revealed grades must match the noisy oracle, and every slot's noise
    # must have been witnessed
    top = city.labels[-1]
    noise = _noise(4, [10**6] * 4, [-1, 0, 0, 0], [True, True, True, False])
    lifted = {s: top for s in range(4)}
    cmp = compare_with_oracle(city, table, PERIOD, lifted, relying_party=(3, top), noise=noise)
    assert cmp.mismatches == 1 and not cmp.relying_party_ok  # slot 3 unwitnessed
    assert cmp.noiseless_mismatches == int(np.count_nonzero(oracle.grade != len(city.labels) - 1))
    with pytest.raises(KeyError):
        compare_with_oracle(city, table, PERIOD, {0: top}, relying_party=(0, top))


def test_misgrade_rate_plausible_within_five_standard_errors() -> None:
    # n = 10,000, expected 0.25: tolerance 5 * 0.005 + 0.0001
    assert misgrade_rate_plausible(0.25, 0.25, 10_000)
    assert misgrade_rate_plausible(0.275, 0.25, 10_000)
    assert not misgrade_rate_plausible(0.2752, 0.25, 10_000)
    assert not misgrade_rate_plausible(0.2248, 0.25, 10_000)
    assert misgrade_rate_plausible(0.0001, 0.0, 10_000) and not misgrade_rate_plausible(
        0.01, 0.0, 10_000
    )


def test_access_sample_takes_a_fifth_without_events(city: Catalog) -> None:
    evs = [e for s in range(0, 60, 2) for e in _events(s, "traffic.violation")]
    table = EventTable.from_events(city, evs, 100)  # 30 subjects with events, 70 without
    pick = sample_access_subjects(table, 25, np.random.default_rng(1))
    assert pick.size == 25 == np.unique(pick).size
    without = [int(s) for s in pick if s >= 60 or s % 2]
    assert len(without) == 5 and all(int(s) % 2 == 0 and s < 60 for s in pick[:20])
    again = sample_access_subjects(table, 25, np.random.default_rng(1))
    assert again.tolist() == pick.tolist()  # the randomness is the argument
    # fewer subjects than asked for: every subject with events, a fifth of the size without
    more = sample_access_subjects(table, 50, np.random.default_rng(2))
    assert more.size == 40 and set(range(0, 60, 2)) <= set(more.tolist())
    assert sample_access_subjects(table, 0, np.random.default_rng(3)).size == 0


def test_access_tally_compares_with_the_noise_drawn_for_the_subject(city: Catalog) -> None:
    mine = _events(5, "civic.volunteering")
    plain = city.labels[int(score(EventTable.from_events(city, mine, 6), PERIOD).grade[5])]
    tally = AccessTally()
    assert tally.record(city, mine, PERIOD, plain, plain, slot=5)
    assert not tally.record(city, mine, PERIOD, plain, "D", slot=5)
    assert (tally.checked, tally.consistent, tally.noiseless_consistent) == (2, 1, 1)
    top = city.labels[-1]  # what the subject's events grade to with the noise drawn for it
    lifted = _noise(6, [10**6] * 6, [0] * 6, [True] * 5 + [False])
    assert tally.record(city, mine, PERIOD, plain, top, slot=4, noise=lifted)
    assert not tally.record(city, mine, PERIOD, plain, top, slot=5, noise=lifted)  # unwitnessed
    assert plain != top and not tally.record(city, mine, PERIOD, plain, plain, slot=4, noise=lifted)
    assert tally.checked == 5 and tally.consistent == 2 and tally.noiseless_consistent == 2
