"""What a reference run reports: the result assembled from the run's checks and measures."""

from __future__ import annotations

import datetime as dt

from psc.catalog import Catalog, period_start
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.oracle import score
from psc.sim.city import simulate_city
from psc.sim.deployment import setup
from psc.sim.god_view import AccessTally, compare_with_oracle
from psc.sim.meter import Meter
from psc.sim.results import run_result
from psc.sim.sources import SimClock, seeded_randbytes


def test_run_result_gathers_the_checks_and_fails_on_any_of_them(
    city: Catalog, test_keypair: tuple[PaillierPublicKey, PaillierPrivateKey]
) -> None:
    sim = simulate_city(city, subjects=50, periods=2, seed=2)
    clock = SimClock(dt.datetime.combine(period_start(sim.periods[0]), dt.time(8), dt.UTC))
    d = setup(
        city, sim.agencies, 50, test_keypair, clock=clock, randbytes=seeded_randbytes("results")
    )
    table, last = sim.table(d.slot_of), sim.periods[-1]
    meter = Meter()
    with meter.phase("submit"):
        for _ in range(3):
            meter.send("submission", b"x" * 100)
    meter.send("ingest-receipt", b"y" * 7)
    right = {s: city.labels[int(g)] for s, g in enumerate(score(table, last).grade)}
    rp = (3, right[3])
    comparison = compare_with_oracle(city, table, last, right, relying_party=rp)
    access = AccessTally(checked=4, consistent=4, noiseless_consistent=4)
    r = run_result(sim, d.params, d.agencies, meter, comparison, access, 40, True)
    d.ledger.close()
    assert r.ok and r.grades_match_oracle and r.mismatches == 0
    assert r.grades == r.oracle_grades and sum(r.grades.values()) == 50
    assert (r.subjects, r.agencies, r.periods, r.events) == (50, 7, 2, sim.n_events)
    assert r.envelopes == 3 and r.bytes_submitted == 300
    assert r.bytes_by_message == {"submission": 300, "ingest-receipt": 7}
    assert r.ciphertext_blocks == 2 * sum(a.ciphertexts_per_submission() for a in d.agencies)
    assert r.relying_party_grade == right[3] and r.log_size == 40
    assert (r.access_checked, r.access_consistent) == (4, 4) and r.key_bits == 512
    assert r.log_public_key == d.params.aggregator_key.hex()
    assert any("512-bit Paillier key: INSECURE" in n for n in r.notes)
    # each check alone fails the run: a grade, the relying party's, an access, the log
    wrong = {**right, 7: "D" if right[7] != "D" else "C"}
    bad = [
        run_result(
            sim,
            d.params,
            d.agencies,
            meter,
            compare_with_oracle(city, table, last, wrong, relying_party=rp),
            access,
            40,
            True,
        ),
        run_result(
            sim,
            d.params,
            d.agencies,
            meter,
            compare_with_oracle(
                city, table, last, right, relying_party=(3, "D" if rp[1] != "D" else "C")
            ),
            access,
            40,
            True,
        ),
        run_result(sim, d.params, d.agencies, meter, comparison, AccessTally(4, 3, 4), 40, True),
    ]
    assert [b.grades_match_oracle or b.ok for b in bad] == [False] * 3
    assert bad[0].mismatches == 1 and bad[0].misgrade_rate_vs_noiseless_oracle == 1 / 50
    unverified = run_result(sim, d.params, d.agencies, meter, comparison, access, 40, False)
    assert unverified.grades_match_oracle and not unverified.ok
