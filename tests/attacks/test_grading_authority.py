"""Adversary: the grading authority itself, curious about what its raw decryptions show
(issue 9, attack 7), and whoever would see them (a future threshold combiner).

On ebb0b87 the flooding (sigma 1/16) was the *evaluator's* choice and drawn from numpy's
PCG64 (seeded once from ``secrets``): an evaluator could send no flooding at all, and the
per-decryption statistical distance was about ``2^-13``.  Now the authority floods every
slot itself with an exact discrete Gaussian fed by the OS CSPRNG, and the number of
decryptions per subject is capped at the declared ``max_queries`` that the bound covers.

What is *not* achieved is the issue's ``2^-40`` target: the test that says so is marked
``xfail(strict=True)`` with the measured numbers, so it fails loudly the day it holds.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
import pytest
from scipy.stats import ks_2samp

from psc.catalog import parse_catalog
from psc.dp.random import SeededRandomSource
from psc.hazmat.he.flooding import (
    DEFAULT_MAX_QUERIES,
    FLOOD_SIGMA,
    TARGET_LOG2_DISTANCE,
    flooding_distance,
    misgrade_probability,
)
from psc.oracle import grades_of
from psc.sim.he_driver import SMALL_TEST_CATALOG
from psc.testing import he_small_deployment

CAT = parse_catalog(SMALL_TEST_CATALOG)
#: seeded KS tests: a false failure needs p < 1e-6 under the null (below 1 in a million)
P = 1e-6


@pytest.fixture(scope="module")
def views() -> dict[str, Any]:
    """One request for every slot of a full part: four groups of S/4 subjects, B-band scores
    10 and 11, and grade C reached two ways (score 12 capped, score 8).  Records what the
    authority's decryption returned (flooded) and, as the test's god view, the same circuit
    output decrypted without flooding."""
    probe = he_small_deployment(1)
    S = probe.authority.circuit.slots
    dep = he_small_deployment(S)
    raw = np.repeat([10, 11, 12, 8], S // 4)
    caps = np.repeat([0, 0, 1, 0], S // 4)
    dep.submit_scores(0, raw, caps)
    auth = dep.authority
    auth._rng = SeededRandomSource(b"attack-7-views")
    seen: list[np.ndarray] = []
    real = auth._decrypt_flooded

    def spy(ct: Any, factor: float) -> np.ndarray:
        out = real(ct, factor)
        seen.append(out)
        return out

    auth._decrypt_flooded = spy  # type: ignore[method-assign]
    got = auth.reveal(dep.request(range(S), 0, requester="registry"))
    want = grades_of(CAT, raw, np.where(caps > 0, 1, 3))
    # god view: the same output without flooding (never available to any party)
    _, scores, capct = auth._live(0)
    _, ct, factor = auth.grader.masked(scores, capct, list(range(S)))
    plain = np.asarray(ct.decrypt(auth.secret.context.secret_key())) / factor
    # one masked single-slot output, unflooded: the residual of the other slots
    _, ct1, f1 = auth.grader.masked(scores, capct, [0])
    single = np.asarray(ct1.decrypt(auth.secret.context.secret_key())) / f1
    return {
        "dep": dep,
        "raw": raw,
        "caps": caps,
        "want": want,
        "got": got,
        "flooded": seen[0],
        "plain": plain,
        "single": single,
    }


def _group(v: dict[str, Any], key: str, score: int, cap: int) -> np.ndarray:
    sel = (v["raw"] == score) & (v["caps"] == cap)
    return np.asarray(v[key][sel])


def test_flooding_draws_from_the_os_csprng_never_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    dep = he_small_deployment(4)
    dep.submit_scores(0, np.array([6, 9, 10, 12]))
    calls = {"n": 0}
    real = secrets.randbelow

    def counting(n: int) -> int:
        calls["n"] += 1
        return real(n)

    def no_numpy(*args: Any, **kw: Any) -> Any:
        raise AssertionError("flooding drew from numpy's generator")

    monkeypatch.setattr(secrets, "randbelow", counting)
    monkeypatch.setattr(np.random, "default_rng", no_numpy)
    monkeypatch.setattr(np.random, "normal", no_numpy)
    assert dep.authority.reveal(dep.request([0, 1, 2, 3], 0)) == {0: 0, 1: 1, 2: 2, 3: 3}
    assert calls["n"] >= dep.authority.circuit.slots  # fresh CSPRNG draws for every slot


def test_every_flooded_slot_rounds_to_its_exact_grade(views: dict[str, Any]) -> None:
    assert views["got"] == {i: int(g) for i, g in enumerate(views["want"])}
    resid = views["flooded"] - views["want"]
    # the noise is really there, at the stated sigma (8192 samples: +-10% is > 9 s.e.)
    assert 0.9 * float(FLOOD_SIGMA) < float(resid.std()) < 1.1 * float(FLOOD_SIGMA)


def test_same_band_scores_look_alike_in_the_raw_flooded_view(views: dict[str, Any]) -> None:
    a, b = _group(views, "flooded", 10, 0), _group(views, "flooded", 11, 0)
    assert ks_2samp(a, b).pvalue > P


def test_hidden_cap_state_shows_without_flooding_and_not_with_it(views: dict[str, Any]) -> None:
    capped_a, plain_c = _group(views, "plain", 12, 1), _group(views, "plain", 8, 0)
    assert np.array_equal(np.rint(capped_a), np.rint(plain_c))  # both decode to C
    assert ks_2samp(capped_a, plain_c).pvalue < P  # the residual tells them apart ...
    fa, fc = _group(views, "flooded", 12, 1), _group(views, "flooded", 8, 0)
    assert ks_2samp(fa, fc).pvalue > P  # ... the authority's flooded view does not


def _bound(views: dict[str, Any]) -> Any:
    r_req = float(np.abs(views["plain"] - views["want"]).max())
    r_other = float(np.abs(views["single"][1:]).max())
    S = views["plain"].size
    return flooding_distance(
        residual_requested=r_req, residual_other=r_other, slots=S, queries=DEFAULT_MAX_QUERIES
    )


def test_the_stated_bound_is_what_the_measured_residuals_give(views: dict[str, Any]) -> None:
    b = _bound(views)
    # the honest claim: rounding errs with probability below 2^-40 per grade, and the
    # score-dependent part of the view is hidden only to about 2^-10 over the declared
    # queries at this (small) profile (measured 2^-9.6); both numbers are recorded by benchmarks grade
    assert misgrade_probability(b.residual_requested) < 2.0**-40
    assert b.score_distance < 2.0**-6
    assert b.distance > 2.0**TARGET_LOG2_DISTANCE  # what the next test records as blocked


@pytest.mark.xfail(
    strict=True,
    reason="blocked (issue 9 item 6): 2^-40 over the declared queries needs a residual below "
    "about 1e-15 for every slot; CKKS at a 34-35 bit scale leaves about 1e-5 (measured)",
)
def test_flooding_meets_the_2_to_the_minus_40_target(views: dict[str, Any]) -> None:
    assert _bound(views).meets_target
