"""The reference scorer against an independent slow scorer written from its docstring."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psc import oracle
from psc.catalog import Catalog, parse_period, period_start
from psc.events import Event, EventTable
from psc.testing import catalogs, events, scores

EVIDENCE = "0f" * 32
WINDOW = range(parse_period("2025-01"), parse_period("2025-07"))


def slow_score(cat: Catalog, evs: list[Event], n: int, at: int) -> list[tuple[int, int, int, bool]]:
    """``(raw, score, grade, capped)`` per subject, straight from the oracle's semantics."""
    s = cat.scheme
    top = len(cat.labels) - 1
    raw = [s.base_score] * n
    cap = [top] * n
    for e in evs:
        rule = cat.rule(e.rule)
        months = cat.retention[rule.retention].months
        if e.period <= at < e.period + months:
            raw[e.subject] += rule.delta
            if rule.grade_cap is not None:
                cap[e.subject] = min(cap[e.subject], cat.labels.index(rule.grade_cap))
    out = []
    for i in range(n):
        score = min(max(raw[i], s.min_score), s.max_score)
        band = sum(1 for t in cat.thresholds if score > t)
        grade = min(band, cap[i])
        out.append((raw[i], score, grade, grade < band))
    return out


@st.composite
def histories(draw: st.DrawFn, **kw: int) -> tuple[Catalog, list[Event], int]:
    cat = draw(catalogs(**kw))
    n = draw(st.integers(1, 6))
    return cat, draw(events(cat, n_subjects=n, periods=WINDOW)), n


@settings(max_examples=60)
@given(histories(), st.integers(WINDOW.start - 2, WINDOW.stop + 30))
def test_oracle_agrees_with_the_slow_scorer(
    case: tuple[Catalog, list[Event], int], at: int
) -> None:
    cat, evs, n = case
    got = oracle.score(EventTable.from_events(cat, evs, n), at)
    want = slow_score(cat, evs, n, at)
    assert got.raw.tolist() == [w[0] for w in want]
    assert got.score.tolist() == [w[1] for w in want]
    assert got.grade.tolist() == [w[2] for w in want]
    assert got.capped.tolist() == [w[3] for w in want]
    assert sum(got.histogram(cat).values()) == n
    assert got.labels(cat) == [cat.labels[w[2]] for w in want]


def test_date_and_period_index_mean_the_same_evaluation_point(city: Catalog) -> None:
    t = EventTable.from_events(city, [Event(0, "tax.arrears", dt.date(2025, 3, 9), EVIDENCE)], 1)
    at = parse_period("2025-05")
    assert oracle.as_period(dt.date(2025, 5, 31)) == at
    assert oracle.score(t, dt.date(2025, 5, 1)).raw.tolist() == oracle.score(t, at).raw.tolist()


# ----------------------------------------------------------------------------------------
# retention


@pytest.mark.parametrize("rule_id", ["traffic.violation", "court.judgment-default", "tax.arrears"])
def test_retention_boundaries(city: Catalog, rule_id: str) -> None:
    rule = city.rule(rule_id)
    months = city.retention[rule.retention].months
    p = parse_period("2025-06")
    t = EventTable.from_events(city, [Event(0, rule_id, period_start(p), EVIDENCE)], 1)
    live = {at: int(oracle.raw_sums(t, at)[0]) for at in (p - 1, p, p + months - 1, p + months)}
    assert live == {p - 1: 0, p: rule.delta, p + months - 1: rule.delta, p + months: 0}


@settings(max_examples=50)
@given(catalogs(), st.data())
def test_an_event_counts_exactly_during_its_retention(cat: Catalog, data: st.DataObject) -> None:
    rule = data.draw(st.sampled_from(cat.rules))
    months = cat.retention[rule.retention].months
    p = data.draw(st.sampled_from(WINDOW))
    t = EventTable.from_events(cat, [Event(0, rule.id, period_start(p), EVIDENCE)], 1)
    for at in range(p - 2, p + months + 2):
        live = p <= at < p + months
        assert int(oracle.raw_sums(t, at)[0]) == (rule.delta if live else 0)
        assert bool(oracle.live_mask(t, at)[0]) == live
        if rule.grade_cap is not None:
            want = cat.grade_index(rule.grade_cap) if live else len(cat.labels) - 1
            assert int(oracle.cap_indices(t, at)[0]) == want


# ----------------------------------------------------------------------------------------
# clamping, grades and caps


def test_scores_are_clamped_to_the_bounds(city: Catalog) -> None:
    p0 = parse_period("2025-01")
    bad = [
        Event(0, rid, period_start(p).replace(day=k + 1), EVIDENCE)
        for p in range(p0, p0 + 12)
        for rid in (
            "court.judgment-default",
            "tax.arrears",
            "admin.unpaid-fine",
            "traffic.violation",
        )
        for k in range(city.rule(rid).max_per_period)
    ]
    good = [
        Event(1, rid, period_start(p).replace(day=k + 1), EVIDENCE)
        for p in range(p0, p0 + 12)
        for rid in ("civic.volunteering", "civic.blood-donation")
        for k in range(city.rule(rid).max_per_period)
    ]
    s = oracle.score(EventTable.from_events(city, bad + good, 3), p0 + 11)
    assert s.raw.tolist() == [1000 - 12 * 120, 1000 + 12 * 20, 1000]
    assert s.score.tolist() == [0, 1200, 1000]
    assert s.labels(city) == ["D", "AAA", "A"]


def test_a_live_cap_lowers_the_grade_and_then_expires(city: Catalog) -> None:
    p = parse_period("2025-01")
    evs = [
        Event(0, "traffic.drunk-driving", period_start(p), EVIDENCE),
        *(Event(0, "civic.blood-donation", period_start(p + k), EVIDENCE) for k in range(12)),
        Event(1, "traffic.drunk-driving", period_start(p), EVIDENCE),
        *(Event(1, "court.judgment-default", period_start(p + k), EVIDENCE) for k in range(12)),
    ]
    t = EventTable.from_events(city, evs, 2)
    s = oracle.score(t, p + 11)
    # subject 0: 1000 - 30 + 120 = 1090 would be AAA, capped at C; subject 1 is below C anyway
    assert s.score.tolist() == [1090, 1000 - 30 - 600]
    assert s.labels(city) == ["C", "D"]
    assert s.capped.tolist() == [True, False]
    months = city.retention["negative"].months
    after = oracle.score(t, p + months)  # the drunk-driving record has expired
    assert after.capped.tolist() == [False, False]
    assert after.labels(city)[0] == "A"  # only 1000: the blood donations expired as well


@settings(max_examples=60)
@given(catalogs(), st.data())
def test_grade_of_raw_equals_grade_of_clamped(cat: Catalog, data: st.DataObject) -> None:
    s = cat.scheme
    raw = data.draw(scores(min_value=s.min_score - 2000, max_value=s.max_score + 2000))
    arr = np.array([raw, s.min_score - 1, s.max_score + 1], dtype=np.int64)
    clamped = np.clip(arr, s.min_score, s.max_score)
    assert oracle.grades_of(cat, arr).tolist() == oracle.grades_of(cat, clamped).tolist()
    assert int(oracle.grades_of(cat, arr)[0]) == sum(1 for t in cat.thresholds if raw > t)


@settings(max_examples=40)
@given(catalogs(), st.data())
def test_grades_of_applies_caps_as_a_minimum(cat: Catalog, data: st.DataObject) -> None:
    s = cat.scheme
    raw = np.array(
        data.draw(
            st.lists(scores(min_value=s.min_score, max_value=s.max_score), min_size=1, max_size=8)
        ),
        dtype=np.int64,
    )
    caps = np.array(
        data.draw(
            st.lists(st.integers(0, len(cat.labels) - 1), min_size=len(raw), max_size=len(raw))
        ),
        dtype=np.int64,
    )
    got = oracle.grades_of(cat, raw, caps)
    assert got.tolist() == np.minimum(oracle.grades_of(cat, raw), caps).tolist()


# ----------------------------------------------------------------------------------------
# raw score bounds


@settings(max_examples=50)
@given(histories(max_months=6), st.integers(WINDOW.start, WINDOW.stop + 6))
def test_raw_score_bounds_bound_random_histories(
    case: tuple[Catalog, list[Event], int], at: int
) -> None:
    cat, evs, n = case
    lo, hi = oracle.raw_score_bounds(cat)
    raw = oracle.score(EventTable.from_events(cat, evs, n), at).raw
    assert lo <= int(raw.min()) and int(raw.max()) <= hi


@settings(max_examples=30)
@given(catalogs(max_months=6, max_rules=4))
def test_raw_score_bounds_are_attained_by_saturated_histories(cat: Catalog) -> None:
    """Subject 0 gets every negative rule, subject 1 every positive one, as often as allowed
    in every live period: the bounds are tight, not just safe."""
    at = WINDOW.start + 12
    evs = []
    for r in cat.rules:
        subject = 0 if r.delta < 0 else 1
        for p in range(at - cat.retention[r.retention].months + 1, at + 1):
            for k in range(r.max_per_period):
                evs.append(Event(subject, r.id, period_start(p).replace(day=k % 28 + 1), EVIDENCE))
    raw = oracle.score(EventTable.from_events(cat, evs, 2), at).raw
    lo, hi = oracle.raw_score_bounds(cat)
    assert raw.tolist() == [lo, hi]
