"""Events and dense vectors: validation, and agreement with a slow pure-Python model."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from psc.catalog import Catalog, parse_period, period_index
from psc.events import Event, EventTable
from psc.exceptions import EventError
from psc.testing import catalogs, events

EVIDENCE = "ab" * 32
JAN = dt.date(2025, 1, 15)


def ev(subject: int, rule: str, day: dt.date = JAN, evidence: str = EVIDENCE) -> Event:
    return Event(subject, rule, day, evidence)


def test_event_period_is_the_calendar_month() -> None:
    assert ev(0, "tax.arrears", dt.date(2025, 3, 31)).period == parse_period("2025-03")


def test_a_valid_table_has_columns_in_event_order(city: Catalog) -> None:
    evs = [ev(2, "tax.arrears"), ev(0, "civic.volunteering", dt.date(2025, 2, 1))]
    t = EventTable.from_events(city, evs, 3)
    assert len(t) == 2
    assert t.subject.tolist() == [2, 0]
    assert t.rule.tolist() == [
        city.rule_ids.index("tax.arrears"),
        city.rule_ids.index("civic.volunteering"),
    ]
    assert t.period.tolist() == [period_index(JAN), parse_period("2025-02")]
    assert t.periods == (period_index(JAN), parse_period("2025-02"))


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (ev(0, "religion.attendance"), "not in catalog"),
        (ev(3, "tax.arrears"), r"subject slot must be in 0\.\.2"),
        (ev(-1, "tax.arrears"), r"subject slot must be in 0\.\.2"),
        (ev(0, "tax.arrears", evidence=""), "evidence must be the lowercase hex SHA-256"),
        (ev(0, "tax.arrears", evidence="AB" * 32), "evidence must be the lowercase hex SHA-256"),
        (ev(0, "tax.arrears", evidence="ab" * 31), "evidence must be the lowercase hex SHA-256"),
        (ev(0, "tax.arrears", evidence="zz" * 32), "evidence must be the lowercase hex SHA-256"),
    ],
)
def test_invalid_events_are_refused(city: Catalog, event: Event, message: str) -> None:
    with pytest.raises(EventError, match=message):
        EventTable.from_events(city, [ev(1, "tax.arrears", dt.date(2025, 9, 1)), event], 3)


def test_max_per_period_is_enforced(city: Catalog) -> None:
    limit = city.rule("traffic.violation").max_per_period
    ok = [ev(1, "traffic.violation", dt.date(2025, 1, d)) for d in range(1, limit + 1)]
    EventTable.from_events(city, ok, 2)
    # the same number again in the next month, and for another subject, is fine
    later = [ev(1, "traffic.violation", dt.date(2025, 2, d)) for d in range(1, limit + 1)]
    other = [ev(0, "traffic.violation", dt.date(2025, 1, d)) for d in range(1, limit + 1)]
    EventTable.from_events(city, ok + later + other, 2)
    with pytest.raises(
        EventError,
        match=rf"subject slot 1 has {limit + 1} events of rule 'traffic.violation'.*at most {limit}",
    ):
        EventTable.from_events(city, [*ok, ev(1, "traffic.violation", dt.date(2025, 1, 28))], 2)


def test_from_arrays_checks_shapes_and_ranges(city: Catalog) -> None:
    with pytest.raises(EventError, match="equal length"):
        EventTable.from_arrays(city, 2, [0, 1], [0], [1, 1])
    with pytest.raises(EventError, match="subject slots"):
        EventTable.from_arrays(city, 2, [2], [0], [1])
    with pytest.raises(EventError, match="rule indices"):
        EventTable.from_arrays(city, 2, [0], [len(city.rules)], [1])
    empty = EventTable.from_arrays(city, 4, [], [], [])
    assert len(empty) == 0
    assert all(v.tolist() == [0, 0, 0, 0] for v in empty.delta_vectors(5).values())


# ----------------------------------------------------------------------------------------
# dense vectors against a slow model


def slow_delta_vectors(cat: Catalog, evs: list[Event], n: int, period: int) -> dict[str, list[int]]:
    out = {c: [0] * n for c in cat.retention}
    for e in evs:
        if e.period == period:
            r = cat.rule(e.rule)
            out[r.retention][e.subject] += r.delta
    return out


def slow_cap_vectors(
    cat: Catalog, evs: list[Event], n: int, period: int
) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for r in cat.rules:
        if r.grade_cap is not None:
            out.setdefault((r.retention, r.grade_cap), [0] * n)
    for e in evs:
        r = cat.rule(e.rule)
        if e.period == period and r.grade_cap is not None:
            out[(r.retention, r.grade_cap)][e.subject] += 1
    return out


@st.composite
def catalog_and_events(draw: st.DrawFn) -> tuple[Catalog, list[Event], int]:
    cat = draw(catalogs())
    n = draw(st.integers(1, 6))
    periods = range(parse_period("2025-11"), parse_period("2026-03"))
    return cat, draw(events(cat, n_subjects=n, periods=periods)), n


@settings(max_examples=50)
@given(catalog_and_events())
def test_dense_vectors_agree_with_a_slow_model(case: tuple[Catalog, list[Event], int]) -> None:
    cat, evs, n = case
    table = EventTable.from_events(cat, evs, n)
    for period in range(parse_period("2025-10"), parse_period("2026-04")):
        vecs = table.delta_vectors(period)
        assert list(vecs) == list(cat.retention_classes)
        slow = slow_delta_vectors(cat, evs, n, period)
        for c, v in vecs.items():
            assert v.dtype == np.int64 and v.shape == (n,)
            assert v.tolist() == slow[c]
        caps = table.cap_vectors(period)
        slow_caps = slow_cap_vectors(cat, evs, n, period)
        assert set(caps) == set(slow_caps)
        for key, v in caps.items():
            assert v.tolist() == slow_caps[key]


@settings(max_examples=50)
@given(catalog_and_events())
def test_generated_events_respect_the_catalog(case: tuple[Catalog, list[Event], int]) -> None:
    cat, evs, n = case
    counts = Counter((e.subject, e.rule, e.period) for e in evs)
    assert all(c <= cat.rule(rule).max_per_period for (_, rule, _), c in counts.items())
    assert all(0 <= e.subject < n and len(e.evidence) == 64 for e in evs)
    table = EventTable.from_events(cat, evs, n)
    assert len(table) == len(evs)
    # selections partition the table
    by_agency: defaultdict[str, int] = defaultdict(int)
    for a in cat.agencies:
        by_agency[a] = len(table.for_agency(a))
    assert sum(by_agency.values()) == len(evs)
    assert sum(len(table.for_period(p)) for p in table.periods) == len(evs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_subjects": 0}, "n_subjects must be in 1.."),
        ({"periods": []}, "at least one period"),
        ({"periods": "2025-01"}, "range or sequence of period indices"),
        ({"max_events": -1}, "max_events must be in 0..10000"),
    ],
)
def test_event_strategies_check_their_arguments(
    city: Catalog, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        events(city, **kwargs)
    with pytest.raises(InvalidArgument, match=r"must be a psc\.catalog\.Catalog"):
        events(None)
