"""Scale suite: the whole period end to end at growing sizes, Dask strong scaling, and the
national plan computed from the measured rates.

``python -m benchmarks scale [--quick] [--json PATH] [--subjects N ...] [--reveal MODE]
[--scheduler ADDRESS] [--dask-subjects N] [--reveal-subjects N] [--repeats R]
[--quiet]``, run from the repository root.

``end_to_end``
    :func:`psc.sim.driver.run` on a seeded synthetic city (``agencies`` agencies,
    ``periods`` monthly periods, 2048-bit key, the agencies' short-exponent randomizers) at
    each size, each run in a fresh process so its peak resident memory is its own
    (``peak_rss_bytes``: the run's process plus its largest worker process).  Per-party
    cost per subject: agencies ``precompute + submit``, aggregator ``ingest``, key holder
    ``reveal``, in wall-clock microseconds per subject (all periods, all agencies).
    ``cost_ratio_to_smallest`` divides each size's total per subject by the smallest size's.
``dask``
    strong scaling from 1 to 2 Dask workers of the aggregation and of the sharded
    reveal, alternately on one cluster, fastest of ``repeats``
    (:mod:`benchmarks.scale_dask`), with the machine's own 2-process efficiency measured
    in the same run and the load average before and after.

Memory: ``peak_rss_ratio_to_smallest`` divides each size's peak RSS (the run's process
plus its largest worker process) by the smallest size's, beside the subject ratio.

The national plan (``papers/national-plan.md``, by ``python -m papers.national_plan``
from this suite's results file) uses only the figures recorded here.  Exit codes: 0 ok, 1 a
correctness check failed or a run stopped with an error (nothing written), 2 bad usage.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.env import environment
from benchmarks.report import Column, Progress, default_results_path, format_table, write_json
from benchmarks.scale_dask import CorrectnessError, dask_scaling, load_average

SUITE = "scale"


class RunFailed(RuntimeError):
    """An end-to-end run raised before it could finish: nothing to measure."""


#: issue 15's acceptance lines for the quick run
TARGET_COST_RATIO = 1.5
TARGET_DASK_EFFICIENCY = 0.8


@dataclass(frozen=True)
class ScaleConfig:
    """Parameters of one run; ``quick_preset()`` and ``full_preset()``."""

    subjects: tuple[int, ...]
    agencies: int
    periods: int
    key_bits: int
    reveal: str
    dask_subjects: int
    quick: bool
    dask_workers: tuple[int, ...] = (1, 2)
    base_blocks: int = 32
    reveal_subjects: int = 100_000
    repeats: int = 3
    seed: int = 0
    catalog: str = "city"
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if not self.subjects or min(self.subjects) < 100:
            raise ValueError("subjects must be one or more sizes of at least 100")
        if self.agencies < 1 or self.periods < 1:
            raise ValueError("agencies and periods must be positive")
        from psc.catalog import load_catalog

        named = len(load_catalog(self.catalog).agencies)
        if self.agencies < named:
            raise ValueError(
                f"catalog {self.catalog!r} names {named} agencies: agencies must be at least "
                f"{named} (more are further instances, e.g. district courts)"
            )
        if self.reveal not in ("trusted", "committee"):
            raise ValueError(f"reveal must be 'trusted' or 'committee', got {self.reveal!r}")
        if self.dask_subjects < 1000:
            raise ValueError("dask_subjects must be at least 1000")
        if self.reveal_subjects < 100:
            raise ValueError("reveal_subjects must be at least 100")
        if self.repeats < 1:
            raise ValueError("repeats must be at least 1")
        if self.dask_workers != (1, 2):
            raise ValueError("strong scaling is measured from 1 to 2 workers")

    @classmethod
    def quick_preset(cls) -> ScaleConfig:
        # every agency proves every slot in range (validity proofs, issue 11): 10 agencies
        # x 3 periods took 196 s at 10k subjects (measured, load 3.5), so about half an hour
        # at 100k; the quick run cuts agencies x periods to the catalog's 7 x 1 (cost per
        # subject scales with both; the full run has 10 x 3), and its larger size is 50k:
        # at 100k the largest agency's envelope (dense vectors with per-slot proofs, one
        # message) exceeds the codec's 64 MiB message limit and is refused at ingest
        # (protocols/scale.md section 4.3)
        return cls(
            subjects=(10_000, 50_000),
            agencies=7,
            periods=1,
            key_bits=2048,
            reveal="trusted",
            dask_subjects=4_000_000,
            quick=True,
        )

    @classmethod
    def full_preset(cls) -> ScaleConfig:
        return cls(
            subjects=(10_000, 100_000, 740_000),
            agencies=10,
            periods=3,
            key_bits=2048,
            reveal="trusted",
            dask_subjects=16_000_000,
            reveal_subjects=1_000_000,
            quick=False,
        )


# ----------------------------------------------------------------------------------------
# end to end, one size per fresh process


def _end_to_end_child(
    subjects: int, agencies: int, periods: int, key_bits: int, reveal: str, seed: int, catalog: str
) -> dict[str, Any]:
    from psc.catalog import load_catalog
    from psc.sim import driver
    from psc.sim.city import simulate_city

    t0 = time.perf_counter()
    city = simulate_city(
        load_catalog(catalog), subjects=subjects, agencies=agencies, periods=periods, seed=seed
    )
    simulate_s = time.perf_counter() - t0
    r = driver.run(city, key_bits=key_bits, workers=2, reveal=reveal)
    kib = 1024  # ru_maxrss is in KiB on Linux
    return {
        "simulate_s": simulate_s,
        "result": dataclasses.asdict(r),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kib,
        "peak_rss_children_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kib,
    }


def end_to_end(config: ScaleConfig, subjects: int) -> dict[str, Any]:
    """One driver run at ``subjects`` in a fresh (spawned) process; raises
    :class:`CorrectnessError` if the run's checks failed and :class:`RunFailed` if the
    run raised (e.g. a message over the codec's size limit)."""
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        future = ex.submit(
            _end_to_end_child,
            subjects,
            config.agencies,
            config.periods,
            config.key_bits,
            config.reveal,
            config.seed,
            config.catalog,
        )
        try:
            got = future.result()
        except Exception as exc:  # the run's own error, reported without a traceback
            raise RunFailed(
                f"the end-to-end run at {subjects} subjects stopped: {type(exc).__name__}: {exc}"
            ) from exc
    r = got["result"]
    if not r["ok"] or not r["grades_match_oracle"] or not r["log_verified"]:
        raise CorrectnessError(
            f"end-to-end run at {subjects} subjects failed its checks "
            f"(ok={r['ok']}, mismatches={r['mismatches']}, log_verified={r['log_verified']})"
        )
    ph = r["phase_seconds"]
    per = 1e6 / subjects
    agency_s = ph.get("precompute", 0.0) + ph.get("submit", 0.0)
    total_s = sum(ph.values())
    return {
        "subjects": subjects,
        "agencies": r["agencies"],
        "periods": r["periods"],
        "key_bits": r["key_bits"],
        "slot_bits": r["slot_bits"],
        "slots_per_ciphertext": r["slots_per_ciphertext"],
        "reveal": r["reveal"],
        "events": r["events"],
        "ciphertext_blocks": r["ciphertext_blocks"],
        "envelopes": r["envelopes"],
        "bytes_submitted": r["bytes_submitted"],
        "bytes_per_subject_period": r["bytes_submitted"] / (subjects * r["periods"]),
        "phase_seconds": ph,
        "total_seconds": total_s,
        "simulate_seconds": got["simulate_s"],
        "us_per_subject": {
            "agencies": agency_s * per,
            "aggregator": ph.get("ingest", 0.0) * per,
            "key_holder": ph.get("reveal", 0.0) * per,
            "total": total_s * per,
        },
        "peak_rss_bytes": got["peak_rss_bytes"],
        "peak_rss_children_bytes": got["peak_rss_children_bytes"],
        "checks": {
            "ok": r["ok"],
            "grades_match_oracle": r["grades_match_oracle"],
            "log_verified": r["log_verified"],
        },
    }


# ----------------------------------------------------------------------------------------
# the document


def acceptance(doc: dict[str, Any]) -> list[dict[str, Any]]:
    e2e = doc["end_to_end"]
    out = []
    if len(e2e) >= 2:
        small, big = (
            e2e[0],
            next(r for r in e2e if r["subjects"] == max(x["subjects"] for x in e2e)),
        )
        ratio = big["us_per_subject"]["total"] / small["us_per_subject"]["total"]
        out.append(
            {
                "target": f"cost per subject at {big['subjects']} within "
                f"{TARGET_COST_RATIO:g}x of that at {small['subjects']}",
                "value": ratio,
                "threshold": f"<= {TARGET_COST_RATIO:g}",
                "met": ratio <= TARGET_COST_RATIO,
            }
        )
    for what, d in (("aggregation", doc["dask"]), ("sharded reveal", doc["dask"]["reveal"])):
        eff = d["efficiency"]
        out.append(
            {
                "target": f"Dask 2-worker efficiency over 1 worker ({what})",
                "value": eff,
                "threshold": f">= {TARGET_DASK_EFFICIENCY:g}",
                "met": eff >= TARGET_DASK_EFFICIENCY,
            }
        )
    return out


def run(config: ScaleConfig, *, progress: Progress) -> dict[str, Any]:
    """Run the suite (see the module doc).  Raises :class:`CorrectnessError`."""
    env = environment()
    e2e = []
    for n in sorted(config.subjects):
        progress(
            f"end to end: {n} subjects, {config.agencies} agencies, {config.periods} periods, "
            f"{config.reveal} reveal (fresh process)"
        )
        rec = end_to_end(config, n)
        rec["load_average_after"] = load_average()
        e2e.append(rec)
    base = e2e[0]["us_per_subject"]["total"]
    rss = e2e[0]["peak_rss_bytes"] + e2e[0]["peak_rss_children_bytes"]
    for rec in e2e:
        rec["cost_ratio_to_smallest"] = rec["us_per_subject"]["total"] / base
        rec["subjects_ratio_to_smallest"] = rec["subjects"] / e2e[0]["subjects"]
        rec["peak_rss_ratio_to_smallest"] = (
            rec["peak_rss_bytes"] + rec["peak_rss_children_bytes"]
        ) / rss
    dask = dask_scaling(config, progress)
    env["load_average_at_end"] = load_average()
    doc = {
        "suite": SUITE,
        "env": env,
        "params": asdict(config),
        "end_to_end": e2e,
        "dask": dask,
        "elapsed_s": round(progress.elapsed_s, 1),
    }
    doc["acceptance"] = acceptance(doc)
    doc["extrapolation_740k"] = extrapolate(doc)
    return doc


#: how each driver phase grows: with subjects x agencies x periods (every envelope is
#: dense and proven), with subjects (enrolment; the one batch reveal), or not at all
_GROWS = {
    "precompute": "envelope",
    "submit": "envelope",
    "ingest": "envelope",
    "setup": "subjects",
    "reveal": "subjects",
    "audit": "envelope",
    "access": "fixed",
}


def extrapolate(
    doc: dict[str, Any], subjects: int = 740_000, agencies: int = 10, periods: int = 3
) -> dict[str, Any]:
    """**Extrapolated, not measured**: phase times at ``subjects x agencies x periods``
    from the largest measured size's, each phase scaled by what it grows with
    (:data:`_GROWS`), on the same machine under the same load.  Peak memory scaled with
    subjects x agencies x periods, since the reference driver precomputes every period's
    randomizers before the first period (``protocols/scale.md`` section 4.3)."""
    r = max(doc["end_to_end"], key=lambda x: x["subjects"])
    env_scale = (subjects * agencies * periods) / (r["subjects"] * r["agencies"] * r["periods"])
    factor = {"envelope": env_scale, "subjects": subjects / r["subjects"], "fixed": 1.0}
    phases = {k: v * factor[_GROWS.get(k, "envelope")] for k, v in r["phase_seconds"].items()}
    return {
        "extrapolated": True,
        "from": f"end_to_end at {r['subjects']} subjects, {r['agencies']} agencies, "
        f"{r['periods']} periods",
        "subjects": subjects,
        "agencies": agencies,
        "periods": periods,
        "reveal": r["reveal"],
        "phase_seconds": phases,
        "total_seconds": sum(phases.values()),
        "peak_rss_bytes": (r["peak_rss_bytes"] + r["peak_rss_children_bytes"]) * env_scale,
        "scaling": dict(_GROWS),
    }


TABLE = (
    Column("subjects", "subjects"),
    Column("total_seconds", "total s", "{:.1f}"),
    Column("precompute", "precompute s", "{:.1f}"),
    Column("submit", "submit s", "{:.1f}"),
    Column("ingest", "ingest s", "{:.1f}"),
    Column("reveal", "reveal s", "{:.1f}"),
    Column("agency_us", "agencies us/subj", "{:.1f}"),
    Column("aggregator_us", "aggregator us/subj", "{:.1f}"),
    Column("key_holder_us", "key holder us/subj", "{:.1f}"),
    Column("cost_ratio_to_smallest", "x smallest", "{:.2f}"),
    Column("rss_mb", "peak RSS MB", "{:.0f}"),
    Column("peak_rss_ratio_to_smallest", "RSS x smallest", "{:.2f}"),
)


def render(doc: dict[str, Any]) -> str:
    rows = [
        {
            **r,
            **{k: r["phase_seconds"].get(k) for k in ("precompute", "submit", "ingest", "reveal")},
            "agency_us": r["us_per_subject"]["agencies"],
            "aggregator_us": r["us_per_subject"]["aggregator"],
            "key_holder_us": r["us_per_subject"]["key_holder"],
            "rss_mb": (r["peak_rss_bytes"] + r["peak_rss_children_bytes"]) / 2**20,
        }
        for r in doc["end_to_end"]
    ]
    p, e, d = doc["params"], doc["env"], doc["dask"]
    lines = [
        f"scale: {p['agencies']} agencies, {p['periods']} periods, {p['key_bits']}-bit key, "
        f"{p['reveal']} reveal, quick={p['quick']}",
        f"env: {e['cpu_model']} x{e['cpu_count']}, load {e['load_average_1_5_15min']} -> "
        f"{e.get('load_average_at_end')}, commit {(e['git']['commit'] or '?')[:12]}"
        f"{' (dirty)' if e['git']['dirty'] else ''}, {e['timestamp_utc']}",
        "",
        format_table(rows, TABLE),
        "",
        *_render_dask(d),
        "",
    ]
    x = doc.get("extrapolation_740k")
    if x is not None:
        lines.append(
            f"EXTRAPOLATED (not measured) from the {x['from']}: {x['subjects']:,} subjects, "
            f"{x['agencies']} agencies, {x['periods']} periods, {x['reveal']} reveal: "
            f"{x['total_seconds'] / 60:.0f} min ("
            + ", ".join(f"{k} {v / 60:.1f}" for k, v in x["phase_seconds"].items())
            + f" min), peak memory {x['peak_rss_bytes'] / 2**30:.1f} GiB"
        )
        lines.append("")
    for a in doc["acceptance"]:
        lines.append(
            f"{'MET   ' if a['met'] else 'MISSED'} {a['target']}: {a['value']:.2f} "
            f"(target {a['threshold']})"
        )
    return "\n".join(lines)


def _render_dask(d: dict[str, Any]) -> list[str]:
    """The Dask lines; results files of the first version (a cluster per setting, no
    reveal) render too."""
    how = (
        f"one cluster, 1 and 2 workers alternately, fastest of {d['repeats']}; "
        f"load {d['load_average_before']} -> {d['load_average_after']}"
        if "repeats" in d
        else "a fresh cluster per worker count, one round each"
    )
    median = f" (median {d['efficiency_median']:.2f})" if "efficiency_median" in d else ""
    out = [
        f"dask ({d['scheduler']}, {how}):",
        f"  aggregation: {d['subjects']} subjects, {d['blocks']} blocks, {d['envelopes']} "
        "envelopes: "
        + ", ".join(
            f"{r['workers']} worker(s) {r['seconds']:.2f} s "
            f"({r['block_products_per_worker_second']:.0f} block products/worker/s)"
            for r in d["runs"]
        )
        + f"; efficiency {d['efficiency']:.2f}{median}",
    ]
    if "reveal" in d:
        r = d["reveal"]
        out.append(
            f"  sharded reveal: {r['subjects']} subjects, {r['blocks']} blocks: "
            + ", ".join(
                f"{x['workers']} worker(s) {x['seconds']:.2f} s ({x['us_per_subject']:.1f} "
                "us/subject)"
                for x in r["runs"]
            )
            + f"; efficiency {r['efficiency']:.2f} (median {r['efficiency_median']:.2f})"
        )
    out.append(
        "  the machine's own 2-process efficiency in the same run: "
        f"{d['machine_control']['efficiency']:.2f}"
    )
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks scale",
        description="End-to-end cost per subject at growing sizes; Dask strong scaling.",
    )
    p.add_argument("--quick", action="store_true", help="10k and 100k subjects (< 5 minutes)")
    p.add_argument("--json", type=Path, help="results path")
    p.add_argument("--subjects", type=int, nargs="+", metavar="N")
    p.add_argument("--reveal", choices=("trusted", "committee"))
    p.add_argument("--dask-subjects", type=int, metavar="N")
    p.add_argument("--reveal-subjects", type=int, metavar="N")
    p.add_argument("--repeats", type=int, metavar="R", help="Dask rounds per setting")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://h:8786")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def config_from_args(args: argparse.Namespace) -> ScaleConfig:
    base = ScaleConfig.quick_preset() if args.quick else ScaleConfig.full_preset()
    over: dict[str, Any] = {}
    if args.subjects:
        over["subjects"] = tuple(args.subjects)
    for name in ("reveal", "dask_subjects", "reveal_subjects", "repeats", "scheduler"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    return dataclasses.replace(base, **over)


def main(argv: Sequence[str]) -> int:
    """CLI entry point: 0 ok (targets missed are reported, not failed), 1 a correctness
    check failed or a run stopped with an error (nothing written), 2 bad usage."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"scale: {exc}", file=sys.stderr)
        return 2
    progress = Progress(SUITE, quiet=args.quiet or not sys.stderr.isatty())
    try:
        doc = run(config, progress=progress)
    except CorrectnessError as exc:
        print(f"scale: CORRECTNESS CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    except RunFailed as exc:
        print(f"scale: {exc}; nothing written", file=sys.stderr)
        return 1
    path = args.json if args.json is not None else default_results_path(SUITE, quick=config.quick)
    print(render(doc))
    progress(f"wrote {write_json(doc, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
