"""The seeded synthetic city."""

from __future__ import annotations

import numpy as np
import pytest

from psc.catalog import Catalog, period_index
from psc.events import EventTable
from psc.sim.city import DEFAULT_FIRST_PERIOD, agency_instances, simulate_city


def test_deterministic_in_the_seed(city: Catalog) -> None:
    a = simulate_city(city, subjects=500, periods=2, seed=11)
    b = simulate_city(city, subjects=500, periods=2, seed=11)
    c = simulate_city(city, subjects=500, periods=2, seed=12)
    assert a.events == b.events and np.array_equal(a.district, b.district)
    assert a.events != c.events


def test_events_respect_the_catalog(city: Catalog) -> None:
    sim = simulate_city(city, subjects=3000, periods=3, seed=1, first_period=DEFAULT_FIRST_PERIOD)
    table = sim.table()  # from_events validates rules, evidence and max_per_period
    assert isinstance(table, EventTable) and len(table) == sim.n_events > 0
    assert set(table.periods) <= set(sim.periods)
    for inst in sim.agencies:
        for p, evs in sim.events[inst.id].items():
            for e in evs:
                assert city.rule(e.rule).agency == inst.catalog_agency
                assert period_index(e.date) == p
    # every rule fires somewhere at this size, and rates are plausible (a few % a month)
    assert {city.rules[int(r)].id for r in np.unique(table.rule)} == set(city.rule_ids)
    per_subject_month = sim.n_events / 3000 / 3
    assert 0.01 < per_subject_month < 0.2


def test_extra_agencies_are_further_instances_serving_districts(city: Catalog) -> None:
    n = len(city.agencies)
    inst = agency_instances(city, n + 3)
    assert len(inst) == n + 3 and len({i.id for i in inst}) == n + 3
    assert {i.catalog_agency for i in inst} == set(city.agencies)
    assert any(i.id.endswith("#2") for i in inst)
    sim = simulate_city(city, subjects=4000, agencies=n + 3, periods=1, seed=2)
    assert sim.multiplicity == 2
    for i in sim.agencies:
        for evs in sim.events[i.id].values():
            for e in evs:  # an instance only records subjects of the districts it serves
                assert int(sim.district[e.subject]) % i.instances == i.index
    with pytest.raises(ValueError, match="at least"):
        agency_instances(city, n - 1)


def test_sizes_are_checked(city: Catalog) -> None:
    with pytest.raises(ValueError):
        simulate_city(city, subjects=0)
    with pytest.raises(ValueError):
        simulate_city(city, subjects=10, periods=0)


def test_records_are_one_agency_period_with_subjects_by_slot(city: Catalog) -> None:
    sim = simulate_city(city, subjects=400, agencies=9, periods=2, seed=3)
    slot_of = np.arange(400, dtype=np.int64)[::-1].copy()  # slot = 399 - population index
    inst, p = sim.agencies[0], sim.periods[1]
    got = sim.records(inst.id, p, slot_of)
    raw = sim.events[inst.id][p]
    assert len(got) == len(raw) > 0
    assert [e.subject for e in got] == [399 - e.subject for e in raw]
    assert [(e.rule, e.date, e.evidence) for e in got] == [
        (e.rule, e.date, e.evidence) for e in raw
    ]
    # every agency's records of every period, by slot, are the city's table by slot
    every = [
        e.subject for a in sim.agencies for q in sim.periods for e in sim.records(a.id, q, slot_of)
    ]
    assert sorted(every) == sorted(sim.table(slot_of).subject.tolist())
    with pytest.raises(KeyError):
        sim.records("no-such-agency", p, slot_of)
