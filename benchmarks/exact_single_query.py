"""``python -m benchmarks.exact_single_query PRIMES``: warm single-query latency of the exact reveal at the city parameters, with members
switching the masked grade ciphertext down to DECRYPT_PRIMES before decrypting.  Member
1 evaluates the circuit once; members 2 and 3 get the same (deterministic, digest-equal)
ciphertext in their cache, so only the warm per-query path is timed."""

import os
import statistics
import sys
import time

import numpy as np

from benchmarks.reveal import population
from psc.catalog import load_catalog
from psc.hazmat.exact import threshold as T
from psc.hazmat.exact.ring import CITY_PARAMS
from psc.parties.exact.inputs import SCORE
from psc.parties.exact.member import open_request
from psc.sim.exact_deployment import ExactDeployment


def main() -> None:
    primes = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    cat = load_catalog("city")
    t0 = time.perf_counter()
    d = ExactDeployment.create(cat, CITY_PARAMS, 3, 5, god_view=True, decrypt_primes=primes)
    print(
        "setup_s",
        round(time.perf_counter() - t0, 1),
        "allowance",
        d.noise_allowance,
        "bits",
        d.params.smudging_bits,
        flush=True,
    )
    sums, caps, want, period = population(cat, d.ring.n, 3)
    longest = max(cat.retention, key=lambda r: cat.retention[r].months)
    ag = cat.rules[0].agency
    d.submit(ag, period, longest, SCORE, 0, sums)
    for lab, cnt in caps.items():
        d.submit(ag, period, longest, lab, 0, cnt)
    RH = bytes(32)
    t0 = time.perf_counter()
    c0 = time.process_time()
    req = open_request(d.params, d.request(RH, period, 0))
    ct = d.members[1].grade_ciphertext(req)
    print(
        "eval_s",
        round(time.perf_counter() - t0, 1),
        "cpu_s",
        round(time.process_time() - c0, 1),
        flush=True,
    )
    print(
        "noise_bits_at_level",
        T.noise_bits(d.ring, ct, d.god_secret),
        "level",
        ct.coeff_modulus_size(),
        flush=True,
    )
    key = next(iter(d.members[1]._grades))
    for i in (2, 3):
        d.members[i]._grades[key] = d.members[1]._grades[key]
    lat, wrong, nbytes = [], 0, []
    rng = np.random.default_rng(4)
    for _ in range(5):
        slot = int(rng.integers(0, d.ring.n))
        d.combiner.bytes_exchanged = 0
        t0 = time.perf_counter()
        out = d.reveal(d.request(RH, period, 0, (slot,)), (1, 2, 3))
        lat.append(time.perf_counter() - t0)
        nbytes.append(d.combiner.bytes_exchanged)
        wrong += int(cat.grade_index(out.grades[0].grade) != want[slot])
    print(
        "single_ms_median",
        round(statistics.median(lat) * 1000, 1),
        "all_ms",
        [round(x * 1000) for x in lat],
        "wrong",
        wrong,
        "bytes",
        nbytes[0],
        "load",
        os.getloadavg(),
        flush=True,
    )


if __name__ == "__main__":
    main()
