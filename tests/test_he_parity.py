"""Parity: oracle, packed Paillier (trusted decryption) and CKKS grading agree on every subject."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psc.catalog import Catalog, load_catalog, parse_catalog, parse_period, period_start
from psc.events import EventTable
from psc.hazmat.backends.paillier import PackedPaillier
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.evaluator import HomomorphicGrader
from psc.hazmat.packing import SlotLayout
from psc.oracle import cap_indices, grades_of, score
from psc.parties.grading_authority import GradingAuthority
from psc.sim.he_driver import SMALL_TEST_CATALOG, grade_table_with_he, grade_with_he, live_inputs
from psc.testing import events, insecure_keypair

SMALL = parse_catalog(SMALL_TEST_CATALOG)
PERIODS = range(parse_period("2025-01"), parse_period("2025-04"))
N_SUBJECTS = 8


@pytest.fixture(scope="module")
def he() -> tuple[GradingCircuit, GradingAuthority, HomomorphicGrader]:
    circuit = GradingCircuit.for_catalog(SMALL)
    authority = GradingAuthority.generate(circuit, catalog=SMALL)
    return circuit, authority, HomomorphicGrader(circuit, authority.public)


def _live_vectors(table: EventTable, at: int) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    subs, caps = live_inputs(table, at)
    return list(subs.values()), caps


def _paillier_grades(
    cat: Catalog, deltas: list[np.ndarray], caps: dict[str, np.ndarray]
) -> np.ndarray:
    pk, sk = insecure_keypair(0, 512)
    layout = SlotLayout.for_catalog(cat, pk.bits, multiplicity=len(deltas))
    pp = PackedPaillier(pk, layout, allow_insecure_key=True)
    total = pp.decrypt(pp.sum(pp.encrypt(v) for v in deltas), sk)
    top = len(cat.labels) - 1
    cap_idx = np.full(total.size, top)
    for lab, v in caps.items():
        counted = pp.decrypt(pp.encrypt(v), sk)
        cap_idx = np.where(counted > 0, np.minimum(cap_idx, cat.grade_index(lab)), cap_idx)
    return grades_of(cat, cat.scheme.base_score + total, cap_idx).astype(np.int64)


def _ckks_grades(table: EventTable, at: int) -> np.ndarray:
    """The full CKKS path: fresh keys, signed submissions logged, one signed request."""
    res = grade_with_he(table, at, range(table.n_subjects))
    return np.array([res.grades[i] for i in range(table.n_subjects)], dtype=np.int64)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    evs=events(SMALL, n_subjects=N_SUBJECTS, periods=PERIODS, max_events=30),
    at=st.sampled_from(list(PERIODS)),
)
def test_oracle_paillier_and_ckks_agree(evs: list, at: int) -> None:
    table = EventTable.from_events(SMALL, evs, N_SUBJECTS)
    want = score(table, at).grade.astype(np.int64)
    deltas, caps = _live_vectors(table, at)
    assert np.array_equal(_paillier_grades(SMALL, deltas, caps), want)
    assert np.array_equal(_ckks_grades(table, at), want)


def test_demo_entry_point_matches_the_oracle(
    he: tuple[GradingCircuit, GradingAuthority, HomomorphicGrader],
) -> None:
    day = period_start(PERIODS[1]) + dt.timedelta(days=2)
    from psc.events import Event

    e = [
        Event(0, "traffic.drunk-driving", day, "a" * 64),
        Event(0, "civic.volunteering", day, "b" * 64),
        Event(2, "traffic.ticket", day, "c" * 64),
        Event(2, "traffic.ticket", day, "d" * 64),
        Event(3, "civic.volunteering", day, "e" * 64),
        Event(3, "civic.volunteering", day, "f" * 64),
    ]
    table = EventTable.from_events(SMALL, e, 5)
    res = grade_table_with_he(table, PERIODS[1], [0, 1, 2, 3, 4], authority=he[1])
    want = score(table, PERIODS[1]).grade
    assert res.grades == {i: int(want[i]) for i in range(5)}


def test_parity_helpers_see_caps() -> None:
    # a fixed history: one capped subject with a high score, one plain subject
    day = period_start(PERIODS[0]) + dt.timedelta(days=3)
    from psc.events import Event

    e = [
        Event(0, "traffic.drunk-driving", day, "a" * 64),
        Event(0, "civic.volunteering", day, "b" * 64),
        Event(0, "civic.volunteering", day, "c" * 64),
        Event(1, "civic.volunteering", day, "d" * 64),
    ]
    table = EventTable.from_events(SMALL, e, 2)
    deltas, caps = _live_vectors(table, PERIODS[0])
    assert list(caps["C"]) == [1, 0]
    assert list(cap_indices(table, PERIODS[0])) == [1, 3]
    assert np.array_equal(_paillier_grades(SMALL, deltas, caps), score(table, PERIODS[0]).grade)


@pytest.mark.slow
def test_full_parameter_parity_over_the_full_city_domain() -> None:
    """N=32768: every raw score of the city catalog, uncapped, capped once and at the
    largest counter; CKKS unflooded decryption vs oracle vs packed Paillier decryption."""
    cat = load_catalog("city")
    circuit = GradingCircuit.for_catalog(cat)
    authority = GradingAuthority.generate(circuit, catalog=cat)
    grader = HomomorphicGrader(circuit, authority.public)
    lo, hi = circuit.raw_bounds
    raw = np.arange(lo, hi + 1, dtype=np.int64)
    raw = np.concatenate([raw, raw, raw])
    counters = np.repeat([0, 1, 36], raw.size // 3)
    deltas = raw - cat.scheme.base_score
    want = grades_of(cat, raw, np.where(counters > 0, 1, 5)).astype(np.int64)

    pk, sk = insecure_keypair(0, 2048)
    layout = SlotLayout.for_catalog(cat, pk.bits)
    pp = PackedPaillier(pk, layout, allow_insecure_key=True)
    p_raw = cat.scheme.base_score + pp.decrypt(pp.encrypt(deltas), sk)
    p_caps = pp.decrypt(pp.encrypt(counters), sk)
    assert np.array_equal(grades_of(cat, p_raw, np.where(p_caps > 0, 1, 5)), want)

    scores = grader.scores.encrypt(deltas)
    capct = {"C": grader.caps.encrypt(counters)}
    ct, factor = grader.grades_unflooded(scores, capct)
    got = np.asarray(ct.decrypt(authority.secret.context.secret_key()))[: raw.size] / factor
    assert int(np.count_nonzero(np.rint(got) != want)) == 0
    # and the authority's flooding, decryption and release (its private seams) on two
    # masked single-slot outputs, one capped
    for s in [int(np.argmax(raw == 1000)), raw.size // 3 + int(np.argmax(raw == 1000))]:
        _, ct1, f1 = grader.masked(scores, capct, [s])
        assert authority._release(authority._decrypt_flooded(ct1, f1), 0, [s]) == {s: int(want[s])}
