"""The exact grade polynomials (psc.hazmat.exact.polynomial) equal the oracle on every point of
their domain: the shipped catalogs exhaustively, random small catalogs by property."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from psc import oracle
from psc.catalog import Catalog
from psc.exceptions import ParameterError
from psc.hazmat.exact.polynomial import (
    cap_count_bound,
    evaluate,
    grade_in_clear,
    grade_polynomials,
    interpolate,
)
from psc.testing import catalogs
from tests._exact_fixtures import toy_catalog

T = 65537


def _check_whole_domain(cat: Catalog) -> None:
    polys = grade_polynomials(cat, T)
    lo, hi = polys.v_domain
    v = np.arange(lo, hi + 1, dtype=np.int64)
    base = cat.scheme.base_score
    labels = polys.cap_labels
    # no cap, then each cap label at every count of its domain (the others at 0 and 1)
    cases: list[dict[str, int]] = [dict.fromkeys(labels, 0)]
    for label, cmax, ind in zip(labels, polys.cap_domain, polys.cap_indicator, strict=True):
        c_all = np.arange(cmax + 1)
        assert np.array_equal(evaluate(ind, c_all, T), (c_all >= 1).astype(np.int64))
        for c in range(cmax + 1) if cmax <= 4 else (0, 1, 2, cmax):
            for other in (0, 1):
                case = dict.fromkeys(labels, other)
                case[label] = c
                cases.append(case)
    for case in cases:
        counts = {lab: np.full(len(v), c, dtype=np.int64) for lab, c in case.items()}
        got = grade_in_clear(polys, v, counts)
        want = oracle.grades_of(cat, base + v, oracle.caps_from_counts(cat, counts, len(v)))
        assert np.array_equal(got, want.astype(np.int64)), case


def test_city_grade_polynomial_is_exact_on_its_whole_domain(city: Catalog) -> None:
    polys = grade_polynomials(city, T)
    assert polys.v_domain == (-3140 - 1000, 1240 - 1000) or polys.degree == 4380
    assert polys.degree == 4380
    _check_whole_domain(city)


def test_company_grade_polynomial_is_exact_on_its_whole_domain(company: Catalog) -> None:
    _check_whole_domain(company)


def test_toy_grade_polynomial_is_exact() -> None:
    cat = toy_catalog()
    assert grade_polynomials(cat, T).degree == 10
    assert cap_count_bound(cat, "B") == 2
    _check_whole_domain(cat)


@settings(max_examples=25)
@given(catalogs(max_rules=4, max_months=3, max_abs_delta=9, max_per_period=2))
def test_random_small_catalogs_are_exact(cat: Catalog) -> None:
    _check_whole_domain(cat)


@settings(max_examples=50)
@given(st.data())
def test_interpolation_goes_through_its_points(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40))
    xs = data.draw(
        st.lists(st.integers(-T // 2, T // 2), min_size=n, max_size=n, unique_by=lambda x: x % T)
    )
    ys = data.draw(st.lists(st.integers(0, T - 1), min_size=n, max_size=n))
    coeffs = interpolate(np.array(xs), np.array(ys), T)
    assert len(coeffs) == n
    assert np.array_equal(evaluate(coeffs, np.array(xs), T), np.array(ys) % T)


def test_colliding_points_and_oversized_domains_are_refused() -> None:
    with pytest.raises(ParameterError, match="collide"):
        interpolate(np.array([1, 1 + T]), np.array([0, 1]), T)
    with pytest.raises(ParameterError, match="more than t"):
        grade_polynomials(toy_catalog(), 7)
