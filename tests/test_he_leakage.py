"""Leakage: a flooded grade decryption does not depend on the score (or cap state) behind it.

The decryptor's view is the raw decrypted slot values (what a curious grading authority
sees before rounding).  One circuit evaluation gives thousands of independent samples: the
flooding noise (:func:`psc.hazmat.he.flooding.sample_flooding`, seeded here at its seam) is fresh
per slot.  A two-sample Kolmogorov-Smirnov test at p = 1e-6 (a false failure below one in
a million) must find no difference between two groups with the same final grade when
flooded, and the same test must find one without flooding (so it has the power to), while
every flooded slot still rounds to its exact grade.  The same attack through the
authority's real reveal is in ``tests/attacks/test_grading_authority.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ks_2samp

from psc.catalog import load_catalog, parse_catalog
from psc.dp.random import SeededRandomSource
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.evaluator import HomomorphicGrader
from psc.hazmat.he.flooding import FLOOD_SIGMA, sample_flooding
from psc.oracle import grades_of
from psc.parties.grading_authority import GradingAuthority
from psc.sim.he_driver import SMALL_TEST_CATALOG

P = 1e-6


def _views(
    grader: HomomorphicGrader,
    authority: GradingAuthority,
    raw: np.ndarray,
    caps: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(unflooded, flooded) decrypted values of every slot."""
    c = grader.circuit
    scores = grader.scores.encrypt(raw - c.base)
    capct = {lab: grader.caps.encrypt(caps) for lab, _ in c.cap_levels}
    _, ct, factor = grader.masked(scores, capct, list(range(raw.size)))
    sk = authority.secret.context.secret_key()
    plain = np.asarray(ct.decrypt(sk)) / factor
    noise = sample_flooding(raw.size, rng=SeededRandomSource(seed))
    flooded = np.asarray((ct + (noise * factor).tolist()).decrypt(sk))
    return plain, flooded / factor


@pytest.fixture(scope="module")
def small_views() -> dict[str, np.ndarray]:
    cat = parse_catalog(SMALL_TEST_CATALOG)
    circuit = GradingCircuit.for_catalog(cat)
    authority = GradingAuthority.generate(circuit, catalog=cat)
    grader = HomomorphicGrader(circuit, authority.public)
    n = circuit.slots
    # four groups of n/4 slots: B-band scores 10 and 11 (uncapped), and final grade C
    # reached two ways: score 12 (band A) capped by a drunk-driving counter, score 8 uncapped
    raw = np.repeat([10, 11, 12, 8], n // 4)
    caps = np.repeat([0, 0, 1, 0], n // 4)
    plain, flooded = _views(grader, authority, raw, caps, seed=20260101)
    want = grades_of(cat, raw, np.where(caps > 0, 1, 3))
    return {"raw": raw, "caps": caps, "plain": plain, "flooded": flooded, "want": want}


def _group(v: dict[str, np.ndarray], key: str, score: int, cap: int) -> np.ndarray:
    sel = (v["raw"] == score) & (v["caps"] == cap)
    return v[key][sel]


def test_same_band_scores_are_indistinguishable_when_flooded(
    small_views: dict[str, np.ndarray],
) -> None:
    a, b = _group(small_views, "flooded", 10, 0), _group(small_views, "flooded", 11, 0)
    assert ks_2samp(a, b).pvalue > P


def test_hidden_cap_state_leaks_without_flooding_and_not_with_it(
    small_views: dict[str, np.ndarray],
) -> None:
    capped_a = _group(small_views, "plain", 12, 1)
    plain_c = _group(small_views, "plain", 8, 0)
    assert np.array_equal(np.rint(capped_a), np.rint(plain_c))  # both decode to C
    # the KS test has the power to see the residual (about 1e-4) without flooding ...
    assert ks_2samp(capped_a, plain_c).pvalue < P
    # ... and sees nothing once sigma = 1/16 noise is added (from the CSPRNG in use)
    fa, fc = _group(small_views, "flooded", 12, 1), _group(small_views, "flooded", 8, 0)
    assert ks_2samp(fa, fc).pvalue > P


def test_flooded_values_always_round_to_the_exact_grade(small_views: dict[str, np.ndarray]) -> None:
    got = np.rint(small_views["flooded"]).astype(np.int64)
    assert np.array_equal(got, small_views["want"])
    # and flooding is really there: the spread matches sigma
    resid = small_views["flooded"] - small_views["want"]
    assert 0.9 * float(FLOOD_SIGMA) < float(resid.std()) < 1.1 * float(FLOOD_SIGMA)


@pytest.mark.slow
def test_city_scores_961_and_1000_are_indistinguishable_when_flooded() -> None:
    """Full parameters (N=32768): scores 961 and 1000 (both A) against the 959.5 threshold."""
    cat = load_catalog("city")
    circuit = GradingCircuit.for_catalog(cat)
    authority = GradingAuthority.generate(circuit, catalog=cat)
    grader = HomomorphicGrader(circuit, authority.public)
    n = circuit.slots
    raw = np.repeat([961, 1000, 1100, 960], n // 4)  # plus: AAA capped to C, and A
    caps = np.repeat([0, 0, 1, 0], n // 4)
    plain, flooded = _views(grader, authority, raw, caps, seed=7)
    want = grades_of(cat, raw, np.where(caps > 0, 1, 5))
    assert np.array_equal(np.rint(flooded).astype(np.int64), want)
    assert np.array_equal(np.rint(plain).astype(np.int64), want)
    a, b = flooded[raw == 961], flooded[raw == 1000]
    assert ks_2samp(a, b).pvalue > P
