"""The HTTP overhead: submissions/s and reveal latency, over loopback and in process.

``python -m benchmarks service [--quick] [--json PATH]``.  One ``psc init`` deployment
(INSECURE fixed test key of ``--key-bits``: timing only) is copied twice before anything
is ingested, so both sides ingest byte-identical envelopes:

* **in process**: the aggregator opened from its files in this process; envelopes
  ingested one after another; each batch reveal (every subject in one registry request:
  prepare, decrypt by the trusted key holder, log the notice, check its inclusion) timed;
* **HTTP**: the aggregator and the key holder's reveal desk each as its own process
  (``psc serve``) on 127.0.0.1, the desk checking reveals against its replica of the log
  synced over HTTP (``--log-url``), as ``psc demo`` runs them; envelopes posted by
  ``--clients`` concurrent clients (bounded load); the same reveals posted to the desk,
  which runs the aggregator's two steps over HTTP.

Both sides reveal through the same :class:`~psc.parties.reveal_desk.RevealDesk` code (in
process over the aggregator object; in its own process over HTTP).

Reported: submissions per second on each side, reveal latency p50 and p99 on each side,
and the ratios HTTP / in process (latency) and in process / HTTP (throughput).  Target of
issue 13: batch reveal over HTTP within 1.5x of in process (``reveal_p50_ratio <= 1.5``).
The server handles one request at a time (its SQLite writes are serial anyway), so
concurrency on the HTTP side shows queueing, not parallel speed-up.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.report import default_results_path, write_json
from psc.catalog import period_index
from psc.parties.key_holder import KeyHolder, TrustedDecryptor
from psc.parties.relying_party import read_grades
from psc.parties.reveal_desk import RevealDesk
from psc.protocol.logview import LedgerLogView
from psc.protocol.messages import NONCE_BYTES, GradeRequest
from psc.protocol.parameters import REGISTRY_ID, SELF_ACCESS_PURPOSE
from psc.protocol.signing import seal
from psc.seams import _seconds, system_clock
from psc.service.client import HttpAggregator, HttpPeer
from psc.service.config import load_config, load_params, read_key
from psc.service.deploy import init_deployment, open_agencies, open_aggregator
from psc.service.processes import Parties
from psc.testing import insecure_keypair

PRESETS = {
    "quick": {"subjects": 400, "periods": 3, "reveals": 20, "clients": 8},
    "full": {"subjects": 4000, "periods": 6, "reveals": 100, "clients": 50},
}
TARGET_REVEAL_RATIO = 1.5


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 3)


def run(
    *, subjects: int, periods: int, reveals: int, clients: int, key_bits: int
) -> dict[str, Any]:
    import os

    keypair = insecure_keypair(0, key_bits)
    scratch = Path(tempfile.mkdtemp(prefix="psc-bench-service-"))
    try:
        base = init_deployment(scratch / "base", subjects=subjects, keypair=keypair)
        local, remote = scratch / "local", scratch / "remote"
        shutil.copytree(base, local)
        shutil.copytree(base, remote)
        params = load_params(load_config(base / "aggregator.toml"))
        now = period_index(system_clock().date())
        envelopes = [
            a.submit([], p) for p in range(now - periods, now) for a in open_agencies(base, params)
        ]
        registry = read_key(base / "registry.key")
        period = now - 1

        def batch_request() -> bytes:
            msg = GradeRequest(
                requester=REGISTRY_ID,
                purpose=SELF_ACCESS_PURPOSE,
                period=period,
                slots=tuple(range(subjects)),
                nonce=os.urandom(NONCE_BYTES),
                consent=b"",
                issued_at=_seconds(system_clock),
            )
            return seal(msg, registry)

        def key_holder(root: Path) -> KeyHolder:
            view = LedgerLogView(params, root / "aggregator" / "ledger.sqlite")
            return KeyHolder(
                params,
                TrustedDecryptor(params, keypair[1]),
                read_key(root / "key_holder.key"),
                log_view=view,
            )

        def reveal_once(grades: Callable[[bytes], bytes]) -> float:
            req = batch_request()
            t = time.perf_counter()
            response = grades(req)
            elapsed = time.perf_counter() - t
            assert len(read_grades(params, req, response)) == subjects
            return elapsed

        # -- in process
        agg = open_aggregator(load_config(local / "aggregator.toml"))
        t = time.perf_counter()
        local_receipts = [agg.ingest(e) for e in envelopes]
        local_ingest = time.perf_counter() - t
        desk = RevealDesk(key_holder(local), agg, ":memory:")
        local_lat = [reveal_once(desk.grades) for _ in range(reveals)]
        desk.close()
        agg.ledger.close()

        # -- over HTTP, the aggregator in its own process
        with Parties() as parties:
            server = parties.start("aggregator", remote / "aggregator.toml")
            peers = [HttpPeer(server.url, timeout=300) for _ in range(clients)]
            try:
                with ThreadPoolExecutor(max_workers=clients) as pool:
                    t = time.perf_counter()
                    remote_receipts = list(
                        pool.map(
                            lambda ie: HttpAggregator(peers[ie[0] % clients]).ingest(ie[1]),
                            enumerate(envelopes),
                        )
                    )
                    remote_ingest = time.perf_counter() - t
                desk_party = parties.start(
                    "key-holder",
                    remote / "key_holder.toml",
                    {"aggregator": server.url},
                    extra_args=("--log-url", server.url),
                )
                with HttpPeer(desk_party.url, timeout=300) as desk_client:
                    remote_lat = [
                        reveal_once(lambda r: desk_client.post("/v1/grade-requests", r))
                        for _ in range(reveals)
                    ]
            finally:
                for p in peers:
                    p.close()
        assert len(remote_receipts) == len(local_receipts) == len(envelopes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    n = len(envelopes)
    local_rate, remote_rate = n / local_ingest, n / remote_ingest
    out: dict[str, Any] = {
        "suite": "service",
        "parameters": {
            "subjects": subjects,
            "agencies": n // periods,
            "periods": periods,
            "envelopes": n,
            "clients": clients,
            "reveals": reveals,
            "key_bits": key_bits,
            "key": "INSECURE fixed test key (timing only)",
            "reveal": "batch: every subject in one registry request, trusted key holder's "
            "reveal desk (HTTP: its own process, the log from a replica over HTTP)",
        },
        "in_process": {
            "submissions_per_s": round(local_rate, 2),
            "reveal_p50_ms": _pct(local_lat, 0.5),
            "reveal_p99_ms": _pct(local_lat, 0.99),
        },
        "http": {
            "submissions_per_s": round(remote_rate, 2),
            "reveal_p50_ms": _pct(remote_lat, 0.5),
            "reveal_p99_ms": _pct(remote_lat, 0.99),
        },
    }
    out["ratios"] = {
        "submissions_in_process_over_http": round(local_rate / remote_rate, 3),
        "reveal_p50_http_over_in_process": round(
            statistics.median(remote_lat) / statistics.median(local_lat), 3
        ),
        "reveal_p99_http_over_in_process": round(
            out["http"]["reveal_p99_ms"] / out["in_process"]["reveal_p99_ms"], 3
        ),
    }
    out["targets_met"] = {
        "reveal_p50_ratio_within_1.5": out["ratios"]["reveal_p50_http_over_in_process"]
        <= TARGET_REVEAL_RATIO
    }
    return out


def render(doc: dict[str, Any]) -> str:
    """The README table of a result: each side's figures and the ratios."""
    rows = ["side          submissions/s  reveal p50 ms  reveal p99 ms"]
    for side in ("in_process", "http"):
        r = doc[side]
        rows.append(
            f"{side:12s}  {r['submissions_per_s']:>13}  {r['reveal_p50_ms']:>13}  "
            f"{r['reveal_p99_ms']:>13}"
        )
    ratios = ", ".join(f"{k} {v}" for k, v in doc["ratios"].items())
    return "\n".join(rows) + f"\n\nratios: {ratios}; targets met: {doc['targets_met']}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks service")
    ap.add_argument("--quick", action="store_true", help="a small deployment (seconds)")
    ap.add_argument("--json", type=Path, help="where to write the results JSON")
    ap.add_argument("--key-bits", type=int, default=1024, choices=(512, 1024, 2048))
    args = ap.parse_args(argv)
    preset = PRESETS["quick" if args.quick else "full"]
    result = run(key_bits=args.key_bits, **preset)
    from benchmarks.env import environment

    result["environment"] = environment()
    path = args.json or default_results_path("service", quick=args.quick)
    write_json(result, path)
    for side in ("in_process", "http"):
        print(f"{side}: {result[side]}")
    print(f"ratios: {result['ratios']}")
    print(f"targets met: {result['targets_met']}")
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
