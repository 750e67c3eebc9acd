"""Generate ``papers/national-plan.md`` from the scale suite's results:
``python -m papers.national_plan [RESULTS_JSON]``.

Every number in the plan is computed here from fields of one results file written by
``python -m benchmarks scale`` (default: the newer of ``benchmarks/results/scale-full.json``
and ``scale-quick.json``); the plan names the field each input came from.  Nothing is typed
in by hand except the national workload (1.4 billion persons, 47 central institutions, a
24-hour processing cycle per monthly period, 2048-bit keys) and the catalog the slot layout
is sized for.  Exit codes: 0 written, 2 no usable results file.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "papers" / "national-plan.md"

PERSONS = 1_400_000_000
AGENCIES = 47
CYCLE_S = 24 * 3600
PERIODS_PER_YEAR = 12


def _default_results() -> Path:
    """The newer of ``scale-full.json`` and ``scale-quick.json`` (by the run's timestamp):
    a full run made before a protocol change must not outlive it in the plan."""
    found = []
    for name in ("scale-full.json", "scale-quick.json"):
        path = RESULTS / name
        try:
            stamp = json.loads(path.read_text())["env"]["timestamp_utc"]
        except (OSError, ValueError, KeyError):
            continue
        found.append((stamp, path))
    return max(found)[1] if found else RESULTS / "scale-quick.json"


def plan(doc: dict[str, Any], source: str) -> dict[str, Any]:
    """The plan's figures, each with the results fields it came from."""
    from psc.catalog import load_catalog
    from psc.hazmat.packing import SlotLayout
    from psc.hazmat.paillier import PaillierPublicKey

    e2e = max(doc["end_to_end"], key=lambda r: r["subjects"])
    i = doc["end_to_end"].index(e2e)
    d = doc["dask"]
    where = f"{source}: end_to_end[{i}]"
    ph = e2e["phase_seconds"]
    blocks = e2e["ciphertext_blocks"]
    n, s = e2e["subjects"], e2e["slots_per_ciphertext"]
    per_vector = math.ceil(n / s)
    cts_per_submission = blocks / (e2e["envelopes"] * per_vector)
    # agency work: precompute ran in 2 worker processes, counted as 2 cores for its wall time
    agency_core_s_per_block = (2 * ph["precompute"] + ph["submit"]) / blocks
    ingest_s_per_block = ph["ingest"] / blocks
    reveal_s_per_subject = ph["reveal"] / n
    wire_per_block = e2e["bytes_submitted"] / blocks
    rate = d["runs"][-1]["block_products_per_worker_second"]

    catalog = load_catalog(doc["params"]["catalog"])
    multiplicity = math.ceil(AGENCIES / len(catalog.agencies))
    layout = SlotLayout.for_catalog(catalog, doc["params"]["key_bits"], multiplicity=multiplicity)
    nat_per_vector = math.ceil(PERSONS / layout.slots)
    nat_blocks = AGENCIES * cts_per_submission * nat_per_vector
    ct_bytes = PaillierPublicKey((1 << doc["params"]["key_bits"]) - 1).ciphertext_bytes
    wire = nat_blocks * wire_per_block
    accumulators = (
        (len(catalog.retention) + len(catalog.cap_labels())) * nat_per_vector * ct_bytes
    )  # one ciphertext vector per (class, label) and period
    return {
        "inputs": [
            ("subjects in the measured run", n, f"{where}.subjects"),
            ("agencies in the measured run", e2e["agencies"], f"{where}.agencies"),
            ("ciphertext blocks encrypted", blocks, f"{where}.ciphertext_blocks"),
            ("slots per ciphertext (city layout)", s, f"{where}.slots_per_ciphertext"),
            (
                "precompute seconds (2 processes)",
                ph["precompute"],
                f"{where}.phase_seconds.precompute",
            ),
            ("submit seconds", ph["submit"], f"{where}.phase_seconds.submit"),
            ("ingest seconds", ph["ingest"], f"{where}.phase_seconds.ingest"),
            (f"reveal seconds ({e2e['reveal']})", ph["reveal"], f"{where}.phase_seconds.reveal"),
            ("bytes submitted", e2e["bytes_submitted"], f"{where}.bytes_submitted"),
            (
                "Dask block products per worker-second (2 workers)",
                rate,
                f"{source}: dask.runs[-1].block_products_per_worker_second",
            ),
            ("Dask 2-worker efficiency", d["efficiency"], f"{source}: dask.efficiency"),
            *(
                [
                    (
                        "Dask sharded-reveal block decryptions per worker-second (2 workers)",
                        d["reveal"]["runs"][-1]["decryptions_per_worker_second"],
                        f"{source}: dask.reveal.runs[-1].decryptions_per_worker_second",
                    ),
                    (
                        "Dask sharded-reveal 2-worker efficiency",
                        d["reveal"]["efficiency"],
                        f"{source}: dask.reveal.efficiency",
                    ),
                ]
                if "reveal" in d
                else []
            ),
        ],
        "derived": [
            (
                "ciphertexts per agency submission",
                cts_per_submission,
                "blocks / (envelopes x blocks per vector)",
            ),
            (
                "agency core-seconds per block",
                agency_core_s_per_block,
                "(2 x precompute + submit) / blocks",
            ),
            (
                "aggregator seconds per block (single process, whole ingest)",
                ingest_s_per_block,
                "ingest / blocks",
            ),
            ("key holder seconds per subject", reveal_s_per_subject, "reveal / subjects"),
            (
                "wire bytes per block (envelope overhead included)",
                wire_per_block,
                "bytes submitted / blocks",
            ),
            (
                f"national layout: slots per ciphertext (multiplicity {multiplicity})",
                layout.slots,
                "SlotLayout.for_catalog",
            ),
        ],
        "plan": [
            (
                "ciphertext blocks per monthly period",
                nat_blocks,
                "47 x ciphertexts per submission x ceil(1.4e9 / slots)",
            ),
            (
                "agency cores for a 24-hour cycle (all 47 agencies)",
                nat_blocks * agency_core_s_per_block / CYCLE_S,
                "blocks x agency core-seconds per block / 86,400",
            ),
            (
                "aggregator workers, whole ingest at the single-process rate",
                nat_blocks * ingest_s_per_block / CYCLE_S,
                "blocks x ingest seconds per block / 86,400",
            ),
            (
                "aggregator workers, block products only at the Dask rate",
                nat_blocks / (rate * CYCLE_S),
                "blocks / (Dask rate x 86,400)",
            ),
            (
                f"key-holder cores for a 24-hour reveal ({e2e['reveal']})",
                PERSONS * reveal_s_per_subject / CYCLE_S,
                "1.4e9 x key holder seconds per subject / 86,400",
            ),
            *(
                [
                    (
                        "key-holder workers, sharded trusted reveal at the Dask rate",
                        nat_per_vector
                        * (1 + len(catalog.cap_labels()))
                        / (d["reveal"]["runs"][-1]["decryptions_per_worker_second"] * CYCLE_S),
                        "ceil(1.4e9 / slots) x (1 + cap labels) / (Dask reveal rate x 86,400)",
                    )
                ]
                if "reveal" in d
                else []
            ),
            ("bytes on the wire per period (submissions)", wire, "blocks x wire bytes per block"),
            (
                "storage per year: envelopes kept for audit and shard rebuild",
                wire * PERIODS_PER_YEAR,
                "12 x bytes per period",
            ),
            (
                "storage per year: accumulators",
                accumulators * PERIODS_PER_YEAR,
                "12 x (classes + cap labels) x blocks per vector x ciphertext bytes",
            ),
        ],
        "env": doc["env"],
        "reveal": e2e["reveal"],
    }


def _fmt(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) >= 1):
        return f"{int(x):,}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _bytes(x: float) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if x >= size:
            return f"{x / size:,.1f} {unit}"
    return f"{x:,.0f} B"


def render(p: dict[str, Any], source: str) -> str:
    e = p["env"]
    lines = [
        "# National plan: psc at 1.4 billion persons and 47 agencies",
        "",
        f"Generated by `python -m papers.national_plan` from `{source}` (the scale suite, "
        f"{e['timestamp_utc']}, commit {(e['git']['commit'] or '?')[:12]}, {e['cpu_model']} "
        f"x{e['cpu_count']}, load average {e['load_average_1_5_15min']} at the start and "
        f"{e.get('load_average_at_end')} at the end). Do not edit: regenerate.",
        "",
        "A monthly scoring period must be processed within 24 hours. The rates below were "
        "measured on a shared 2-core machine; the plan divides the national work by them and "
        "assumes linear scaling across machines, which the Dask measurement supports only up "
        "to 2 workers on one machine.",
        "",
        "## Measured inputs",
        "",
        "| input | value | results field |",
        "|---|---:|---|",
    ]
    lines += [f"| {a} | {_fmt(v)} | `{src}` |" for a, v, src in p["inputs"]]
    lines += ["", "## Derived rates", "", "| rate | value | how |", "|---|---:|---|"]
    lines += [f"| {a} | {_fmt(v)} | {how} |" for a, v, how in p["derived"]]
    lines += ["", "## The plan", "", "| figure | value | how |", "|---|---:|---|"]
    for a, v, how in p["plan"]:
        shown = _bytes(v) if "bytes" in a or "storage" in a else _fmt(v)
        lines.append(f"| {a} | {shown} | {how} |")
    lines += [
        "",
        "## Reading it",
        "",
        f"- The reveal figure is the {p['reveal']} reveal measured in the same run. The "
        "committee's exact or DP reveal costs more per subject and runs on every member's "
        "machine; it is not in this results file, so it is not planned here.",
        "- Agency cores count the precompute phase's wall time on 2 processes as 2 cores: an "
        "upper bound on a shared machine.",
        "- The plan assumes agencies submit in chunks. Today an agency submits one envelope "
        "per period (its dense vectors with per-slot validity proofs), and at 100,000 subjects "
        "the largest one already exceeds the codec's 64 MiB message limit "
        "(`protocols/scale.md` section 4.3): chunked envelopes are specified there as the "
        "fix, not built, so none of these figures is reachable with today's submission format.",
        "- The whole-ingest aggregator figure includes per-envelope verification, per-block "
        "ciphertext validation and SQLite writes of the single-process aggregator; with "
        "sharding those per-block steps run on the shards, so the product-only figure is the "
        "floor and the whole-ingest figure the ceiling.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else _default_results()
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"national_plan: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    try:
        source = str(path.resolve().relative_to(ROOT))
    except ValueError:
        source = str(path)
    OUT.write_text(render(plan(doc, source), source))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
