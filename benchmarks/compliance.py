"""Compliance suite: what PIPL's protections cost, one step at a time, against pooling in
the clear.

``python -m benchmarks compliance [--quick] [--json PATH] [--subjects N] [--quiet]``, run from
the repository root.  One seeded city (``psc.sim.city.simulate_city``: the city catalog,
``agencies`` agencies, ``periods`` monthly periods, grades at the last period's close) is
scored five ways, each adding protections to the one before; every step runs in a fresh
process so its peak resident memory is its own, and every step's grades are compared with
the plaintext oracle's (the committee step's with the oracle's grade of score plus the noise
its members drew, through the driver's god view).

==  =====================================  ===============================================
0   ``pooled-in-the-clear``                the pilots' way: every agency ships its raw
                                           records (resident id, rule, date, evidence) into
                                           one SQLite database; SQL sums the live deltas and
                                           finds the caps; grades in numpy
1   ``+ encrypted dense contributions``    Art. 6 (minimum scope: no pooling of records),
                                           Art. 51 (encryption), Art. 19 (expiry: an
                                           accumulator per retention class stops counting):
                                           agencies encrypt the envelope's dense per-class
                                           vectors and cap counters (packed Paillier,
                                           short-exponent randomizers), the aggregator sums
                                           the live ones, one key holder decrypts
2   ``+ signed, logged, lawful release``   Art. 8 (evidence commitments), Art. 54 (audit
                                           log), Art. 6 and 13-14 (only grades leave, for a
                                           checked purpose): the protocol roles end to end
                                           with a trusted key holder, every phase but
                                           subject access
3   ``+ subject access with proofs``       Art. 45: sampled subjects fetch their events with
                                           inclusion proofs (the access phase, same run)
4   ``+ k-of-n committee, proofs, DP``     Art. 51 (no single key holder): the 3-of-5
                                           committee's DP reveal with decryption-share
                                           proofs (a separate driver run, whole)
==  =====================================  ===============================================

Steps 2 and 3 are one ``reveal="trusted"`` driver run split at its access phase (their
memory is that run's; access-request and access-response bytes go to step 3, the access
phase's log inclusions stay in step 2); step 4 is a ``reveal="committee"`` run.  ``ratio_to_clear`` divides each step's
seconds, bytes and peak memory by step 0's.  The plot (``compliance-*.png`` next to the JSON)
is the staircase.  Exit codes: 0 ok, 1 a correctness check failed (nothing written), 2 bad
usage.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import multiprocessing as mp
import os
import resource
import sqlite3
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.env import environment
from benchmarks.report import Column, Progress, default_results_path, format_table, write_json

SUITE = "compliance"
TARGET_RATIO = 20.0  # issue 15: the whole compliant configuration within 20x of the clear
ACCESS_KINDS = frozenset({"access-request", "access-response"})


class CorrectnessError(AssertionError):
    """A step's grades differ from the oracle's: its figures would be worthless."""


@dataclass(frozen=True)
class ComplianceConfig:
    subjects: int
    agencies: int
    periods: int
    key_bits: int
    quick: bool
    committee: tuple[int, int] = (3, 5)
    seed: int = 0
    catalog: str = "city"

    def __post_init__(self) -> None:
        if self.subjects < 100:
            raise ValueError("subjects must be at least 100")
        if self.agencies < 1 or self.periods < 1:
            raise ValueError("agencies and periods must be positive")

    @classmethod
    def quick_preset(cls) -> ComplianceConfig:
        return cls(subjects=10_000, agencies=7, periods=3, key_bits=2048, quick=True)

    @classmethod
    def full_preset(cls) -> ComplianceConfig:
        return cls(subjects=100_000, agencies=10, periods=3, key_bits=2048, quick=False)


def _city(config: ComplianceConfig) -> Any:
    from psc.catalog import load_catalog
    from psc.sim.city import simulate_city

    return simulate_city(
        load_catalog(config.catalog),
        subjects=config.subjects,
        agencies=config.agencies,
        periods=config.periods,
        seed=config.seed,
    )


def _oracle_grades(city: Any) -> np.ndarray:
    from psc import oracle

    return oracle.score(city.table(), city.periods[-1]).grade.astype(np.int64)


def _peak_rss() -> int:
    kib = 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) * kib


# ----------------------------------------------------------------------------------------
# step 0: pooled SQLite in the clear


def _step_clear(config: ComplianceConfig) -> dict[str, Any]:
    from psc import oracle
    from psc.catalog import period_index

    city = _city(config)
    cat = city.catalog
    at = city.periods[-1]
    top = len(cat.labels) - 1
    t0 = time.perf_counter()
    shipped = 0
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "pooled.sqlite"))
        db.execute(
            "CREATE TABLE events (agency TEXT, resident TEXT, rule TEXT, period INTEGER, "
            "day TEXT, evidence TEXT)"
        )
        db.execute(
            "CREATE TABLE rules (rule TEXT PRIMARY KEY, delta INTEGER, months INTEGER, cap INTEGER)"
        )
        db.executemany(
            "INSERT INTO rules VALUES (?, ?, ?, ?)",
            [
                (
                    r.id,
                    r.delta,
                    cat.retention[r.retention].months,
                    cat.grade_index(r.grade_cap) if r.grade_cap else top,
                )
                for r in cat.rules
            ],
        )
        for inst in city.agencies:  # each agency ships its raw records to the pool
            rows = [
                (
                    inst.id,
                    f"resident-{e.subject:07d}",
                    e.rule,
                    period_index(e.date),
                    e.date.isoformat(),
                    e.evidence,
                )
                for p in city.periods
                for e in city.events[inst.id][p]
            ]
            shipped += sum(len("\t".join(map(str, row)).encode()) + 1 for row in rows)
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.commit()
        got = db.execute(
            "SELECT e.resident, SUM(r.delta), MIN(r.cap) FROM events e JOIN rules r ON e.rule = r.rule "
            "WHERE e.period <= ? AND ? < e.period + r.months GROUP BY e.resident",
            (at, at),
        ).fetchall()
        db.close()
    sums = np.zeros(city.n_subjects, dtype=np.int64)
    caps = np.full(city.n_subjects, top, dtype=np.int64)
    for resident, total, cap in got:
        i = int(resident.rsplit("-", 1)[1])
        sums[i], caps[i] = total, cap
    s = cat.scheme
    raw = np.clip(s.base_score + sums, s.min_score, s.max_score)
    grades = np.minimum(oracle.grades_of(cat, raw), caps).astype(np.int64)
    seconds = time.perf_counter() - t0
    if not np.array_equal(grades, _oracle_grades(city)):
        raise CorrectnessError("pooled-in-the-clear grades differ from the oracle's")
    return {"seconds": seconds, "bytes": shipped, "peak_rss_bytes": _peak_rss()}


# ----------------------------------------------------------------------------------------
# step 1: encrypted dense contributions, no protocol around them


def _step_encrypted(config: ComplianceConfig) -> dict[str, Any]:
    from psc import oracle
    from psc.events import EventTable
    from psc.hazmat.backends.paillier import PackedPaillier, ShortExponentPool
    from psc.hazmat.packing import SlotLayout
    from psc.hazmat.paillier import MIN_KEY_BITS
    from psc.protocol.parameters import cap_bounds, delta_bounds
    from psc.sim.sources import demo_keypair

    city = _city(config)
    cat = city.catalog
    at = city.periods[-1]
    pk, sk = demo_keypair(config.key_bits)
    insecure = pk.bits < MIN_KEY_BITS
    t0 = time.perf_counter()
    # the protocol's data without the protocol: the same layout, classes, cap counters and
    # public catalog bounds as an agency's envelope (psc.parties.agency.Agency.submit)
    layout = SlotLayout.for_catalog(cat, pk.bits, multiplicity=city.multiplicity)
    live: dict[str, list[Any]] = {"": []}
    shipped = 0
    zeros = np.zeros(city.n_subjects, dtype=np.int64)
    for inst in city.agencies:
        be = PackedPaillier(pk, layout, pool=ShortExponentPool(pk), allow_insecure_key=insecure)
        mine = EventTable.from_events(
            cat, [e for p in city.periods for e in city.events[inst.id][p]], city.n_subjects
        )
        for p in city.periods:
            dvec, cvec = mine.delta_vectors(p), mine.cap_vectors(p)
            items = [("", c, dvec[c], b) for c, b in delta_bounds(cat, inst.catalog_agency).items()]
            items += [
                (label, c, cvec.get((c, label), zeros), b)
                for (c, label), b in cap_bounds(cat, inst.catalog_agency).items()
            ]
            for label, cls, vec, bound in items:
                ct = be.encrypt(vec, bound=bound)
                shipped += be.byte_size(ct)
                if p <= at < p + cat.retention[cls].months:  # live: the aggregator adds it
                    live.setdefault(label, []).append(ct)
    agg = PackedPaillier(pk, layout, allow_insecure_key=insecure)
    sums = agg.decrypt(agg.sum(live.pop("")), sk)
    top = len(cat.labels) - 1
    caps = np.full(city.n_subjects, top, dtype=np.int64)
    for label, cts in live.items():
        counts = agg.decrypt(agg.sum(cts), sk)
        caps[counts > 0] = np.minimum(caps[counts > 0], cat.grade_index(label))
    s = cat.scheme
    raw = np.clip(s.base_score + sums, s.min_score, s.max_score)
    grades = np.minimum(oracle.grades_of(cat, raw), caps).astype(np.int64)
    seconds = time.perf_counter() - t0
    if not np.array_equal(grades, _oracle_grades(city)):
        raise CorrectnessError("encrypted dense grades differ from the oracle's")
    return {"seconds": seconds, "bytes": shipped, "peak_rss_bytes": _peak_rss()}


# ----------------------------------------------------------------------------------------
# steps 2-4: the protocol driver


def _step_driver(config: ComplianceConfig, reveal: str) -> dict[str, Any]:
    from psc.sim import driver

    city = _city(config)
    r = driver.run(
        city, key_bits=config.key_bits, workers=2, reveal=reveal, committee=config.committee
    )
    if not r.ok or not r.grades_match_oracle or not r.log_verified:
        raise CorrectnessError(f"driver run ({reveal}) failed its checks")
    return {
        "phase_seconds": r.phase_seconds,
        "bytes_by_message": r.bytes_by_message,
        "peak_rss_bytes": _peak_rss(),
    }


def _in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


STEPS = (
    ("pooled-in-the-clear", "-", "records pooled in one SQLite database, scored in the clear"),
    (
        "+ encrypted dense contributions",
        "Art. 6, 19, 51",
        "no pooling; dense per-class vectors encrypted; expired classes stop counting",
    ),
    (
        "+ signed, logged, lawful release",
        "Art. 6, 8, 13-14, 54",
        "signed committed envelopes, the log, purpose-checked grade release",
    ),
    ("+ subject access with proofs", "Art. 45", "events with inclusion proofs"),
    ("+ k-of-n committee, proofs, DP", "Art. 51", "no single key holder; share proofs; DP"),
)


def run(config: ComplianceConfig, *, progress: Progress) -> dict[str, Any]:
    env = environment()
    progress(f"step 0: pooled in the clear, {config.subjects} subjects")
    clear = _in_fresh_process(_step_clear, config)
    progress("step 1: encrypted dense contributions")
    enc = _in_fresh_process(_step_encrypted, config)
    progress("steps 2-3: protocol driver, trusted key holder")
    trusted = _in_fresh_process(_step_driver, config, "trusted")
    progress(f"step 4: protocol driver, {config.committee[0]}-of-{config.committee[1]} committee")
    committee = _in_fresh_process(_step_driver, config, "committee")
    ph, by = trusted["phase_seconds"], trusted["bytes_by_message"]
    steps = [
        clear,
        enc,
        {
            "seconds": sum(v for k, v in ph.items() if k != "access"),
            "bytes": sum(v for k, v in by.items() if k not in ACCESS_KINDS),
            "peak_rss_bytes": trusted["peak_rss_bytes"],
        },
        {
            "seconds": sum(ph.values()),
            "bytes": sum(by.values()),
            "peak_rss_bytes": trusted["peak_rss_bytes"],
        },
        {
            "seconds": sum(committee["phase_seconds"].values()),
            "bytes": sum(committee["bytes_by_message"].values()),
            "peak_rss_bytes": committee["peak_rss_bytes"],
        },
    ]
    out = []
    for (name, articles, what), s in zip(STEPS, steps, strict=True):
        out.append(
            {
                "step": name,
                "pipl": articles,
                "what": what,
                **s,
                "ratio_to_clear": {
                    k: s[k] / clear[k] for k in ("seconds", "bytes", "peak_rss_bytes")
                },
            }
        )
    try:
        env["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        env["load_average_at_end"] = None
    final = out[-1]["ratio_to_clear"]["seconds"]
    return {
        "suite": SUITE,
        "env": env,
        "params": asdict(config),
        "steps": out,
        "driver_phase_seconds": {"trusted": ph, "committee": committee["phase_seconds"]},
        "acceptance": [
            {
                "target": f"whole compliant configuration within {TARGET_RATIO:g}x of the clear "
                f"(time, {config.subjects} subjects)",
                "value": final,
                "threshold": f"<= {TARGET_RATIO:g}",
                "met": final <= TARGET_RATIO,
            }
        ],
        "elapsed_s": round(progress.elapsed_s, 1),
    }


def plot(doc: dict[str, Any], path: Path) -> Path:
    """The staircase: each step's time, bytes and memory as a ratio to the clear (log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = doc["steps"]
    x = np.arange(len(steps))
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for k, (key, label) in enumerate(
        (("seconds", "time"), ("bytes", "bytes"), ("peak_rss_bytes", "peak memory"))
    ):
        ax.bar(x + (k - 1) * 0.27, [s["ratio_to_clear"][key] for s in steps], 0.27, label=label)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(
        x, ["\n".join([*textwrap.wrap(s["step"], 20), f"({s['pipl']})"]) for s in steps], fontsize=7
    )
    ax.set_ylabel("ratio to pooled in the clear (log)")
    p = doc["params"]
    ax.set_title(
        f"The cost of PIPL's protections, {p['subjects']:,} subjects, {p['agencies']} agencies, "
        f"{p['periods']} periods",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TABLE = (
    Column("step", "step"),
    Column("pipl", "PIPL"),
    Column("seconds", "seconds", "{:.2f}"),
    Column("t_ratio", "x time", "{:.1f}"),
    Column("bytes", "bytes"),
    Column("b_ratio", "x bytes", "{:.1f}"),
    Column("mb", "peak MB", "{:.0f}"),
    Column("m_ratio", "x memory", "{:.2f}"),
)


def render(doc: dict[str, Any]) -> str:
    rows = [
        {
            **s,
            "t_ratio": s["ratio_to_clear"]["seconds"],
            "b_ratio": s["ratio_to_clear"]["bytes"],
            "mb": s["peak_rss_bytes"] / 2**20,
            "m_ratio": s["ratio_to_clear"]["peak_rss_bytes"],
        }
        for s in doc["steps"]
    ]
    p, e = doc["params"], doc["env"]
    lines = [
        f"compliance: {p['subjects']} subjects, {p['agencies']} agencies, {p['periods']} periods, "
        f"{p['key_bits']}-bit key, quick={p['quick']}",
        f"env: {e['cpu_model']} x{e['cpu_count']}, load {e['load_average_1_5_15min']} -> "
        f"{e.get('load_average_at_end')}, commit {(e['git']['commit'] or '?')[:12]}"
        f"{' (dirty)' if e['git']['dirty'] else ''}",
        "",
        format_table(rows, TABLE),
        "",
    ]
    for a in doc["acceptance"]:
        lines.append(
            f"{'MET   ' if a['met'] else 'MISSED'} {a['target']}: {a['value']:.1f} "
            f"(target {a['threshold']})"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks compliance",
        description="PIPL protections added one at a time, as ratios to pooling in the clear.",
    )
    p.add_argument("--quick", action="store_true", help="10,000 subjects")
    p.add_argument("--json", type=Path, help="results path (the plot goes next to it)")
    p.add_argument("--subjects", type=int, metavar="N")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: Sequence[str]) -> int:
    """0 ok (a missed target is reported, not failed), 1 a check failed, 2 bad usage."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    base = ComplianceConfig.quick_preset() if args.quick else ComplianceConfig.full_preset()
    try:
        config = dataclasses.replace(base, **({"subjects": args.subjects} if args.subjects else {}))
    except ValueError as exc:
        print(f"compliance: {exc}", file=sys.stderr)
        return 2
    progress = Progress(SUITE, quiet=args.quiet or not sys.stderr.isatty())
    try:
        doc = run(config, progress=progress)
    except CorrectnessError as exc:
        print(f"compliance: CORRECTNESS CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    path = args.json if args.json is not None else default_results_path(SUITE, quick=config.quick)
    doc["plot"] = plot(doc, path.with_suffix(".png")).name
    print(render(doc))
    progress(f"wrote {write_json(doc, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
