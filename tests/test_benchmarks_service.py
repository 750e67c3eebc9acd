"""The service benchmark (benchmarks/service.py) at toy size: both sides run the same
reveals and ingest the same envelopes, and the record holds what the report cites.

512-bit test key (INSECURE, timing only); no timing is asserted, only that every figure
is measured (positive) and that the ratios are the quotients of the figures they name.
"""

from __future__ import annotations

import pytest

from benchmarks.service import render, run

pytestmark = pytest.mark.timeout(600)


def test_service_benchmark_measures_both_sides() -> None:
    doc = run(subjects=12, periods=1, reveals=3, clients=2, key_bits=512)
    assert doc["suite"] == "service" and doc["parameters"]["reveals"] == 3
    for side in ("in_process", "http"):
        assert doc[side]["submissions_per_s"] > 0 and doc[side]["reveal_p50_ms"] > 0
    r = doc["ratios"]
    want = doc["http"]["reveal_p99_ms"] / doc["in_process"]["reveal_p99_ms"]
    assert r["reveal_p99_http_over_in_process"] == pytest.approx(want, rel=1e-2)
    want = doc["in_process"]["submissions_per_s"] / doc["http"]["submissions_per_s"]
    assert r["submissions_in_process_over_http"] == pytest.approx(want, rel=1e-2)
    assert isinstance(doc["targets_met"]["reveal_p50_ratio_within_1.5"], bool)
    assert "reveal desk" in doc["parameters"]["reveal"]
    assert "p50" in render(doc)
