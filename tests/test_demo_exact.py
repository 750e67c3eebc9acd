"""``reveal="exact"`` in the reference run (psc.protocol.driver + psc.sim.exact_driver): the same
events graded by the dealer-free exact reveal equal the noiseless oracle, with no witness.
Small INSECURE parameters (N = 4096) and the small demo catalog of tests/test_demo_he.py."""

from __future__ import annotations

from psc.catalog import parse_catalog
from psc.sim.city import simulate_city
from psc.sim.driver import run
from psc.testing import insecure_keypair
from tests._exact_fixtures import TEST_PARAMS
from tests.test_demo_he import DEMO_HE_CATALOG


def test_exact_reveal_grades_equal_the_noiseless_oracle() -> None:
    small = parse_catalog(DEMO_HE_CATALOG)
    sim = simulate_city(small, subjects=3000, periods=3, seed=2)
    r = run(
        sim,
        keypair=insecure_keypair(0, 512),
        workers=1,
        access_sample=3,
        reveal="exact",
        exact_params=TEST_PARAMS,
    )
    assert r.reveal == "exact"
    assert r.grades_match_oracle and r.ok
    assert r.grades_compared_with.startswith("noiseless oracle")
    assert sum(r.grades.values()) == 3000
    assert "0 mismatches" in r.exact_summary
    assert any(k.startswith("exact-") for k in r.phase_seconds)
