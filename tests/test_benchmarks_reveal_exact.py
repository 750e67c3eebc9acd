"""The threshold-exact records of the reveal benchmark (benchmarks/reveal_exact.py) at toy
sizes: INSECURE small lattice parameters, the toy catalog; schema and a zero misgrade
rate measured on the protocol's own output."""

from __future__ import annotations

import numpy as np

from benchmarks.report import Progress
from benchmarks.reveal_exact import exact_run
from psc import oracle
from tests._exact_fixtures import TEST_PARAMS, toy_catalog


def _population(catalog, subjects, seed):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    lo, hi = oracle.raw_score_bounds(catalog)
    base = catalog.scheme.base_score
    sums = rng.integers(lo - base, hi - base + 1, size=subjects)
    caps = {"B": rng.integers(0, 3, size=subjects) * (rng.random(subjects) < 0.3)}
    want = oracle.grades_of(catalog, base + sums, oracle.caps_from_counts(catalog, caps, subjects))
    return sums, caps, want.astype(np.int64), 0


def test_threshold_exact_records() -> None:
    recs = exact_run(
        toy_catalog(), TEST_PARAMS, 2, 3, _population, 2, Progress("reveal", quiet=True)
    )
    assert [r["mode"] for r in recs] == ["batch", "single"]
    for r in recs:
        assert r["protocol"] == "threshold-exact" and (r["k"], r["n"]) == (2, 3)
        assert r["misgrade_rate"] == 0 and r["ms_per_subject"] > 0
        assert r["ring_degree"] == 4096 and r["noise_bits"] < r["noise_allowance"]
        assert r["bytes_per_subject"] > 0 and len(r["member_cpu_s"]) == 2
    assert recs[0]["subjects"] == 4096 and recs[1]["subjects"] == 1
