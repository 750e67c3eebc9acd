"""Validity proofs of agencies' contributions (issue 11): prove, verify, size, ingest.

``python -m benchmarks validity [--quick] [--json PATH] [--key-bits B] [--subjects N]
[--seed S] [--quiet]``

Measured side by side in one run, on the same key, slot layout (the city catalog's
deployment layout) and seeded values, per subject slot:

* each range-proof technique point (``psc.hazmat.proofs.range``: one high-degree digit, ``d = 6``;
  base-8 digits, ``d = 3``; bits, ``d = 1``, the bit decomposition) on an intermediate-court
  delta vector (range [-50, 0]), and the default technique on a cap counter (range [0, 1]);
  the proof of plaintext knowledge alone (``psc.hazmat.proofs.plaintext``) as the floor: what
  proving anything about a block costs;
* ``precompute_us``: making the proof's encryption randomizers ``r^n`` (the pool);
  ``prove_online_us``: proving with them precomputed; ``prove_us_without_precomputation``:
  the sum; ``verify_us`` (amortized over the vector); ``proof_bytes``;
* ``ingest``: the aggregator ingesting one signed envelope with verification and the same
  envelope with the validity check replaced by a no-op (the cost of verification at ingest).

Targets (issue 11): verify <= 20 us, prove <= 200 us, proof <= 64 bytes per subject slot at
2048 bits.  Exit status 1 if a proof fails to verify; 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from benchmarks.report import Progress, default_results_path, write_json
from psc.catalog import load_catalog, period_index
from psc.hazmat.backends.paillier import PackedPaillier, RandomnessPool
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey, generate_keypair
from psc.hazmat.proofs.plaintext import PlaintextProof, prove_plaintexts, verify_plaintexts
from psc.hazmat.proofs.range import RangeProof, pool_demand, prove_slot_ranges, verify_slot_ranges
from psc.protocol import validity
from psc.protocol.parameters import protocol_layout
from psc.testing import insecure_keypair

TARGETS = {
    "verify_us_per_subject": 20.0,
    "prove_us_per_subject": 200.0,
    "proof_bytes_per_subject": 64.0,
}
PRESETS = {"quick": {"subjects": 1000}, "full": {"subjects": 10_000}}
#: (name, lo, hi, digit_bits): technique points on the same kind of vector
TECHNIQUES = (
    ("one-digit-polynomial", -50, 0, 6),
    ("base-8-digits", -50, 0, 3),
    ("bit-decomposition", -50, 0, 1),
    ("one-digit-polynomial-cap-counter", 0, 1, 6),
)


def _keys(bits: int) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    return generate_keypair(bits) if bits >= 2048 else insecure_keypair(0, bits)


def _per(x_s: float, n: int) -> float:
    return round(x_s / n * 1e6, 2)


def measure_technique(
    pk: PaillierPublicKey, layout: Any, n: int, lo: int, hi: int, d: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(f"{seed}/{lo}/{hi}/{d}")
    values = [rng.randint(lo, hi) for _ in range(n)]
    pool = RandomnessPool(pk)
    be = PackedPaillier(pk, layout, pool=pool, allow_insecure_key=pk.bits < 2048)
    blocks = layout.blocks(n)
    pool.fill(blocks)
    ct, openings = be.encrypt_with_openings(np.array(values, dtype=np.int64), bound=max(-lo, hi))
    cts = [int(c) for c in ct.blocks]
    los, his = [lo] * n, [hi] * n
    demand = pool_demand(pk, layout, blocks, los, his, digit_bits=d)
    t0 = time.perf_counter()
    pool.fill(demand)
    t1 = time.perf_counter()
    proof = prove_slot_ranges(
        pk, layout, cts, openings, values, los, his, b"bench", pool=pool, digit_bits=d
    )
    t2 = time.perf_counter()
    verify_slot_ranges(pk, layout, cts, los, his, proof, b"bench")
    t3 = time.perf_counter()
    data = proof.to_bytes(pk, layout)
    assert RangeProof.from_bytes(pk, layout, blocks, los, his, data) == proof
    return {
        "range": [lo, hi],
        "digit_bits": d,
        "wide_ciphertexts_per_block": len(proof.digits) // blocks,
        "cross_terms": len(proof.cross),
        "randomizers_per_subject": round(demand / n, 3),
        "precompute_us_per_subject": _per(t1 - t0, n),
        "prove_online_us_per_subject": _per(t2 - t1, n),
        "prove_us_per_subject_without_precomputation": _per(t2 - t0, n),
        "verify_us_per_subject": _per(t3 - t2, n),
        "proof_bytes_per_subject": round(len(data) / n, 1),
    }


def measure_plaintext(pk: PaillierPublicKey, layout: Any, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(f"{seed}/plaintext")
    values = [rng.randint(-50, 0) for _ in range(n)]
    pool = RandomnessPool(pk)
    be = PackedPaillier(pk, layout, pool=pool, allow_insecure_key=pk.bits < 2048)
    blocks = layout.blocks(n)
    pool.fill(blocks)
    ct, openings = be.encrypt_with_openings(np.array(values, dtype=np.int64), bound=50)
    cts = [int(c) for c in ct.blocks]
    t0 = time.perf_counter()
    pool.fill(blocks)
    t1 = time.perf_counter()
    proof = prove_plaintexts(pk, cts, openings, b"bench", pool=pool)
    t2 = time.perf_counter()
    verify_plaintexts(pk, cts, proof, b"bench")
    t3 = time.perf_counter()
    data = proof.to_bytes(pk)
    assert PlaintextProof.from_bytes(pk, data, blocks) == proof
    return {
        "precompute_us_per_subject": _per(t1 - t0, n),
        "prove_online_us_per_subject": _per(t2 - t1, n),
        "prove_us_per_subject_without_precomputation": _per(t2 - t0, n),
        "verify_us_per_subject": _per(t3 - t2, n),
        "proof_bytes_per_subject": round(len(data) / n, 1),
    }


def measure_ingest(keys: Any, n: int, seed: int) -> dict[str, Any]:
    """One intermediate-court envelope ingested by two identical aggregators: with the
    validity check, and with it replaced by a no-op."""
    from psc.sim.city import agency_instances
    from psc.sim.deployment import setup
    from psc.sim.sources import SimClock, seeded_randbytes

    catalog = load_catalog("city")
    now = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
    deps = [
        setup(
            catalog,
            agency_instances(catalog),
            n,
            keys,
            clock=SimClock(now),
            randbytes=seeded_randbytes(f"bench/validity/{seed}"),
        )
        for _ in range(2)
    ]
    court = next(a for a in deps[0].agencies if a.catalog_agency == "intermediate-court")
    court.pool.fill(court.randomizers_per_submission())
    t0 = time.perf_counter()
    envelope = court.submit([], period_index(now.date()))
    t1 = time.perf_counter()
    before = deps[0].ledger.state_digest()
    t2 = time.perf_counter()
    deps[0].aggregator.ingest(envelope)
    t3 = time.perf_counter()
    assert deps[0].ledger.state_digest() != before
    with mock.patch.object(validity, "verify_vector", lambda *a, **k: None):
        t4 = time.perf_counter()
        deps[1].aggregator.ingest(envelope)
        t5 = time.perf_counter()
    return {
        "agency": court.id,
        "envelope_bytes": len(envelope),
        "submit_ms_with_precomputed_pool": round((t1 - t0) * 1e3, 1),
        "ingest_ms_with_verification": round((t3 - t2) * 1e3, 1),
        "ingest_ms_without_verification": round((t5 - t4) * 1e3, 1),
        "ingest_us_per_subject_with_verification": _per(t3 - t2, n),
        "ingest_us_per_subject_without_verification": _per(t5 - t4, n),
        "verification_share_of_ingest": round(1 - (t5 - t4) / max(t3 - t2, 1e-9), 3),
    }


def run(*, key_bits: int, subjects: int, seed: int, quiet: bool = False) -> dict[str, Any]:
    say = Progress("validity", quiet=quiet)
    say(f"key {key_bits} bits")
    keys = _keys(key_bits)
    pk = keys[0]
    layout = protocol_layout(load_catalog("city"), key_bits)
    techniques = {}
    for name, lo, hi, d in TECHNIQUES:
        say(f"{name}: {subjects} slots in [{lo}, {hi}], d={d}")
        techniques[name] = measure_technique(pk, layout, subjects, lo, hi, d, seed)
    say("plaintext knowledge only")
    plain = measure_plaintext(pk, layout, subjects, seed)
    say("ingest with and without verification")
    ingest = measure_ingest(keys, subjects, seed)
    main = techniques["one-digit-polynomial"]
    headline = {
        "prove_us_per_subject": main["prove_online_us_per_subject"],
        "prove_us_per_subject_without_precomputation": main[
            "prove_us_per_subject_without_precomputation"
        ],
        "verify_us_per_subject": main["verify_us_per_subject"],
        "proof_bytes_per_subject": main["proof_bytes_per_subject"],
    }
    return {
        "suite": "validity",
        "parameters": {
            "key_bits": key_bits,
            "subjects": subjects,
            "seed": seed,
            "slot_bits": layout.slot_bits,
            "slots_per_block": layout.slots,
            "technique_used_by_the_protocol": "one-digit-polynomial (psc.hazmat.proofs.range, d=6)",
        },
        **headline,
        "targets": TARGETS,
        "targets_met": {k: headline[k] <= v for k, v in TARGETS.items()},
        "techniques": techniques,
        "plaintext_knowledge_only": plain,
        "ingest": ingest,
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks validity")
    ap.add_argument("--quick", action="store_true", help="1,000 subject slots (default 10,000)")
    ap.add_argument("--json", type=Path, help="where to write the results JSON")
    ap.add_argument("--key-bits", type=int, default=2048, choices=(512, 1024, 2048, 3072))
    ap.add_argument("--subjects", type=int, help="subject slots per vector")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    subjects = args.subjects if args.subjects is not None else preset["subjects"]
    if subjects < 1:
        print("--subjects must be at least 1", file=sys.stderr)
        return 2
    try:
        result = run(key_bits=args.key_bits, subjects=subjects, seed=args.seed, quiet=args.quiet)
    except AssertionError as exc:  # a proof did not round-trip or verify
        print(f"validity benchmark: correctness check failed: {exc}", file=sys.stderr)
        return 1
    from benchmarks.env import environment

    result["environment"] = environment()
    path = args.json or default_results_path("validity", quick=args.quick)
    write_json(result, path)
    for k in ("prove_us_per_subject", "verify_us_per_subject", "proof_bytes_per_subject"):
        print(f"{k}: {result[k]} (target {TARGETS[k]}, met: {result['targets_met'][k]})")
    for name, t in result["techniques"].items():
        print(
            f"  {name}: prove {t['prove_online_us_per_subject']} us online "
            f"(+{t['precompute_us_per_subject']} precompute), verify {t['verify_us_per_subject']} us, "
            f"{t['proof_bytes_per_subject']} B"
        )
    ing = result["ingest"]
    print(
        f"  ingest: {ing['ingest_ms_with_verification']} ms with verification, "
        f"{ing['ingest_ms_without_verification']} ms without"
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
