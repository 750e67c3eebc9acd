"""Scale suite: the whole period end to end at growing sizes, Dask strong scaling, and the
national plan computed from the measured rates.

``python -m benchmarks scale [--quick] [--json PATH] [--subjects N ...] [--reveal MODE]
[--scheduler ADDRESS] [--dask-subjects N] [--quiet]``, run from the repository root.

``end_to_end``
    :func:`psc.sim.driver.run` on a seeded synthetic city (``agencies`` agencies,
    ``periods`` monthly periods, 2048-bit key, the agencies' short-exponent randomizers) at
    each size, each run in a fresh process so its peak resident memory is its own
    (``peak_rss_bytes``: the run's process plus its largest worker process).  Per-party
    cost per subject: agencies ``precompute + submit``, aggregator ``ingest``, key holder
    ``reveal``, in wall-clock microseconds per subject (all periods, all agencies).
    ``cost_ratio_to_smallest`` divides each size's total per subject by the smallest size's.
``dask``
    the aggregator's hot path on :class:`psc.scale.accumulators.ShardedAccumulators`, with 1
    and then 2 workers (a ``LocalCluster`` each, or the ``--scheduler`` cluster's first
    workers): every agency's ciphertexts for one period multiplied into per-shard
    accumulators, then the live sums computed and merged.  Inputs are placed on the shard
    workers before the clock starts (in a deployment each agency uploads a shard's blocks
    to its worker), made by tiling ``base_blocks`` real ciphertext blocks per agency and
    class up to ``dask_subjects`` subjects: the products cost the same whatever they
    encrypt, and the merged live sum is decrypted and compared with numpy's sum of the
    tiled vectors.  ``efficiency = t(1) / (2 t(2))``.

The national plan (``papers/national-plan.md``, by ``python -m papers.national_plan``
from this suite's results file) uses only the figures recorded here.  Exit codes: 0 ok, 1 a
correctness check failed (nothing written), 2 bad usage.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.env import environment
from benchmarks.report import Column, Progress, default_results_path, format_table, write_json

SUITE = "scale"

#: issue 15's acceptance lines for the quick run
TARGET_COST_RATIO = 1.5
TARGET_DASK_EFFICIENCY = 0.8


class CorrectnessError(AssertionError):
    """A run's checks failed: its figures would be worthless."""


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
    seed: int = 0
    catalog: str = "city"
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if not self.subjects or min(self.subjects) < 100:
            raise ValueError("subjects must be one or more sizes of at least 100")
        if self.agencies < 1 or self.periods < 1:
            raise ValueError("agencies and periods must be positive")
        if self.reveal not in ("trusted", "committee"):
            raise ValueError(f"reveal must be 'trusted' or 'committee', got {self.reveal!r}")
        if self.dask_subjects < 1000:
            raise ValueError("dask_subjects must be at least 1000")
        if self.dask_workers != (1, 2):
            raise ValueError("strong scaling is measured from 1 to 2 workers")

    @classmethod
    def quick_preset(cls) -> ScaleConfig:
        return cls(
            subjects=(10_000, 100_000),
            agencies=10,
            periods=3,
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
    :class:`CorrectnessError` if the run's checks failed."""
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        got = ex.submit(
            _end_to_end_child,
            subjects,
            config.agencies,
            config.periods,
            config.key_bits,
            config.reveal,
            config.seed,
            config.catalog,
        ).result()
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
# Dask strong scaling of the aggregator


def _tile(base: list[tuple[Any, tuple[Any, ...], int]], blocks: range, b0: int) -> Any:
    """Worker: the shard's update, block ``j`` taken from base block ``j mod b0``."""
    return [(key, tuple(bl[j % b0] for j in blocks), bound) for key, bl, bound in base]


def _mulmods(bits: int, count: int, seed: int) -> float:
    """Control workload: ``count`` multiplications modulo a ``bits``-bit odd number."""
    import random

    from gmpy2 import mpz

    rnd = random.Random(seed)
    m = mpz(rnd.getrandbits(bits)) | 1
    x, y = mpz(rnd.getrandbits(bits - 1)), mpz(rnd.getrandbits(bits - 1))
    t0 = time.perf_counter()
    for _ in range(count):
        x = x * y % m
    return time.perf_counter() - t0


def machine_control(key_bits: int, count: int = 100_000) -> dict[str, Any]:
    """The same modular-multiplication work in 1, then 2 plain processes at once (no Dask):
    the parallel efficiency the machine itself allows right now (``t(1) / t(2)`` for equal
    work per process), to read the Dask figure against on a shared machine."""
    ctx = mp.get_context("spawn")
    out = {}
    for w in (1, 2):
        with cf.ProcessPoolExecutor(w, mp_context=ctx) as ex:
            ex.submit(_mulmods, 64, 1, 0).result()  # start-up outside the timing
            t0 = time.perf_counter()
            list(ex.map(_mulmods, [2 * key_bits] * w, [count] * w, range(w)))
            out[w] = time.perf_counter() - t0
    return {"mulmods_per_process": count, "seconds": out, "efficiency": out[1] / out[2]}


def dask_scaling(config: ScaleConfig, progress: Progress) -> dict[str, Any]:
    """Aggregation on 1 and then 2 Dask workers (see the module doc); raises
    :class:`CorrectnessError` if a merged live sum does not decrypt to numpy's sum."""
    from distributed import wait

    from benchmarks.aggregate import agency_vectors, layout_for
    from psc.catalog import load_catalog
    from psc.hazmat.backends.paillier import PackedPaillier, ShortExponentPool
    from psc.hazmat.paillier import MIN_KEY_BITS
    from psc.scale.accumulators import ShardedAccumulators
    from psc.scale.cluster import dask_client
    from psc.scale.shards import ShardPlan
    from psc.sim.sources import demo_keypair

    catalog = load_catalog(config.catalog)
    pk, sk = demo_keypair(config.key_bits)  # below 2048 bits: insecure, for tests only
    insecure = pk.bits < MIN_KEY_BITS
    layout, multiplicity = layout_for(catalog, pk.bits, config.agencies)
    s, b0 = layout.slots, config.base_blocks
    blocks = -(-config.dask_subjects // s)
    n = blocks * s  # whole blocks, so the tiled vector is exact
    progress(f"dask: encrypting {config.agencies} agency vectors of {b0 * s} subjects to tile")
    vectors = agency_vectors(catalog, config.agencies, b0 * s, event_rate=0.05, seed=config.seed)
    base = []
    for a in vectors:
        be = PackedPaillier(pk, layout, pool=ShortExponentPool(pk), allow_insecure_key=insecure)
        base.append(((0, "tiled", ""), be.encrypt(a.vector, bound=a.bound).blocks, a.bound))
    expected = np.tile(np.sum([a.vector for a in vectors], axis=0), blocks // b0 + 1)[:n]
    runs: list[dict[str, Any]] = []
    rng = np.random.default_rng(config.seed)
    first_live: tuple[Any, ...] = ()
    for w in config.dask_workers:
        progress(f"dask: {w} worker(s), {n} subjects ({blocks} blocks), {len(base)} envelopes")
        with dask_client(config.scheduler, workers=w, memory_limit="3GiB") as client:
            addrs = sorted(client.scheduler_info()["workers"])[:w]
            if len(addrs) < w:
                raise ValueError(f"the cluster has {len(addrs)} workers, {w} needed")
            plan = ShardPlan(layout, n, w)
            acc = ShardedAccumulators(client, pk, plan, workers=addrs)
            updates = [
                [
                    client.submit(
                        _tile, [b], plan.block_range(i), b0, workers=[addrs[i]], pure=False
                    )
                    for i in range(w)
                ]
                for b in base
            ]
            wait([u for row in updates for u in row])  # inputs in place on the workers, untimed
            acc.wait()
            t0 = time.perf_counter()
            for k, row in enumerate(updates):
                acc.add_shard_updates(k.to_bytes(32, "big"), row)
            wait(acc.live_sums_on_shards(0, {"tiled": 1}, [""]))
            seconds = time.perf_counter() - t0
            t1 = time.perf_counter()
            live = acc.live_sums(0, {"tiled": 1}, [])[""]  # gathered to one front
            gather_s = time.perf_counter() - t1
        # every block equal to the 1-worker run's (bit for bit), and a sample of blocks
        # (each shard's first and last, and a seeded draw) decrypted against numpy's sum
        if runs and live.blocks != first_live:
            raise CorrectnessError(
                f"dask with {w} worker(s): the merged sum differs from 1 worker's"
            )
        first_live = live.blocks
        sample = {0, blocks - 1, *rng.integers(0, blocks, size=16).tolist()}
        sample |= {x for i in range(w) for x in (plan.block_range(i)[0], plan.block_range(i)[-1])}
        for j in sorted(sample):
            count = min(s, n - j * s)
            got = layout.unpack(int(sk.raw_decrypt(live.blocks[j])), int(pk.n), count, live.bound)
            if not np.array_equal(got, expected[j * s : j * s + count]):
                raise CorrectnessError(f"dask with {w} worker(s): the merged sum is wrong")
        products = blocks * (len(base) - 1)
        runs.append(
            {
                "workers": w,
                "seconds": seconds,
                "gather_seconds": gather_s,
                "block_products": products,
                "block_products_per_worker_second": products / (seconds * w),
                "us_per_subject_agency": seconds * 1e6 / (n * len(base)),
            }
        )
    t1, t2 = runs[0]["seconds"], runs[1]["seconds"]
    progress("dask: machine control (the same kind of work in 1 and 2 plain processes)")
    control = machine_control(pk.bits)
    return {
        "machine_control": control,
        "subjects": n,
        "blocks": blocks,
        "slot_bits": layout.slot_bits,
        "slots_per_ciphertext": s,
        "multiplicity": multiplicity,
        "envelopes": len(base),
        "base_blocks": b0,
        "key_bits": pk.bits,
        "scheduler": config.scheduler or "LocalCluster",
        "runs": runs,
        "speedup": t1 / t2,
        "efficiency": t1 / (2 * t2),
        "checked": "every block equal across worker counts; sampled blocks decrypted = numpy",
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
    eff = doc["dask"]["efficiency"]
    out.append(
        {
            "target": "Dask 2-worker efficiency over 1 worker",
            "value": eff,
            "threshold": f">= {TARGET_DASK_EFFICIENCY:g}",
            "met": eff >= TARGET_DASK_EFFICIENCY,
        }
    )
    return out


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


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
        rec["load_average_after"] = _load()
        e2e.append(rec)
    base = e2e[0]["us_per_subject"]["total"]
    for rec in e2e:
        rec["cost_ratio_to_smallest"] = rec["us_per_subject"]["total"] / base
    dask = dask_scaling(config, progress)
    env["load_average_at_end"] = _load()
    doc = {
        "suite": SUITE,
        "env": env,
        "params": asdict(config),
        "end_to_end": e2e,
        "dask": dask,
        "elapsed_s": round(progress.elapsed_s, 1),
    }
    doc["acceptance"] = acceptance(doc)
    return doc


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
)


def render(doc: dict[str, Any]) -> str:
    rows = [
        {
            **r,
            **{k: r["phase_seconds"].get(k) for k in ("precompute", "submit", "ingest", "reveal")},
            "agency_us": r["us_per_subject"]["agencies"],
            "aggregator_us": r["us_per_subject"]["aggregator"],
            "key_holder_us": r["us_per_subject"]["key_holder"],
            "rss_mb": r["peak_rss_bytes"] / 2**20,
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
        f"dask ({d['scheduler']}): {d['subjects']} subjects, {d['blocks']} blocks, "
        f"{d['envelopes']} envelopes: "
        + ", ".join(
            f"{r['workers']} worker(s) {r['seconds']:.2f} s "
            f"({r['block_products_per_worker_second']:.0f} block products/worker/s)"
            for r in d["runs"]
        )
        + f"; efficiency {d['efficiency']:.2f} (the machine's own 2-process efficiency in "
        f"the same run: {d['machine_control']['efficiency']:.2f})",
        "",
    ]
    for a in doc["acceptance"]:
        lines.append(
            f"{'MET   ' if a['met'] else 'MISSED'} {a['target']}: {a['value']:.2f} "
            f"(target {a['threshold']})"
        )
    return "\n".join(lines)


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
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://h:8786")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def config_from_args(args: argparse.Namespace) -> ScaleConfig:
    base = ScaleConfig.quick_preset() if args.quick else ScaleConfig.full_preset()
    over: dict[str, Any] = {}
    if args.subjects:
        over["subjects"] = tuple(args.subjects)
    for name in ("reveal", "dask_subjects", "scheduler"):
        if getattr(args, name) is not None:
            over[name] = getattr(args, name)
    return dataclasses.replace(base, **over)


def main(argv: Sequence[str]) -> int:
    """CLI entry point: 0 ok (targets missed are reported, not failed), 1 a correctness
    check failed (nothing written), 2 bad usage."""
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
    path = args.json if args.json is not None else default_results_path(SUITE, quick=config.quick)
    print(render(doc))
    progress(f"wrote {write_json(doc, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
