"""The report's plots, drawn with matplotlib from the results files (and published anchors).

Every figure shows psc's figure next to the anchors measured *in the same run* (numpy in the
clear, phe used naively, TenSEAL used naively), and, drawn apart and labelled as such, the
published numbers of ``papers/anchors.toml`` (other machines, other parameters: an order of
magnitude, not a ratio).  Each function returns the results files it read; PNGs are written
without a timestamp, so an unchanged results file gives an unchanged image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from papers.build.fields import Sources

FIGURES = Path(__file__).resolve().parents[1] / "figures"
_PUBLISHED = "#999999"
_MEASURED = "#1f5f8b"
_PSC = "#c0392b"


def _save(fig: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _a(sources: Sources, key: str) -> float:
    return float(sources.load("anchors")[key]["value"])


def aggregate(sources: Sources, out: Path) -> list[str]:
    doc = sources.load("aggregate-quick")
    rows = [r for r in doc["results"] if r.get("ns_per_subject_delta")]
    rows.sort(key=lambda r: r["ns_per_subject_delta"])
    names = [r["backend"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = [
        _PSC if n.startswith("paillier-packed") or n in ("bfv", "ckks") else _MEASURED
        for n in names
    ]
    ax1.barh(names, [r["ns_per_subject_delta"] for r in rows], color=colors)
    ax1.set_xscale("log")
    ax1.set_xlabel("aggregation, ns per subject-delta (log)")
    for i, r in enumerate(rows):
        ax1.text(
            r["ns_per_subject_delta"],
            i,
            f" {r['ratio_to_numpy']:,.0f}x numpy",
            va="center",
            fontsize=7,
        )
    ax1.axvline(_a(sources, "numpy_add_ns"), color=_PUBLISHED, ls="--", lw=1)
    ax1.text(
        _a(sources, "numpy_add_ns"), -0.9, " published numpy add", color=_PUBLISHED, fontsize=7
    )
    enc = [r for r in rows if r.get("encrypt_us_per_subject")]
    ax2.barh(
        [r["backend"] for r in enc], [r["encrypt_us_per_subject"] for r in enc], color=_MEASURED
    )
    ax2.axvline(1000 * _a(sources, "phe_encrypt_ms"), color=_PUBLISHED, ls="--", lw=1)
    ax2.text(
        1000 * _a(sources, "phe_encrypt_ms"),
        len(enc) - 0.5,
        "published phe encrypt ",
        color=_PUBLISHED,
        fontsize=7,
        ha="right",
    )
    ax2.set_xscale("log")
    ax2.set_xlabel("agency encryption, us per subject (log)")
    fig.suptitle(
        f"Encrypted aggregation, one run: {rows[0]['subjects']:,} subjects, {rows[0]['agencies']} agencies",
        fontsize=10,
    )
    _save(fig, out)
    return ["aggregate-quick", "anchors"]


def reveal(sources: Sources, out: Path) -> list[str]:
    doc = sources.load("reveal-quick")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    pts: dict[str, float] = {}
    for r in doc["results"]:
        if not r.get("ms_per_subject"):
            continue
        label = f"{r['protocol']} {r['mode']}" + (
            f" eps {r['epsilon']:g}" if r.get("epsilon") else ""
        )
        pts[label] = r["ms_per_subject"]
    ax1.barh(
        list(pts), list(pts.values()), color=[_PSC if "threshold" in k else _MEASURED for k in pts]
    )
    ax1.set_xscale("log")
    ax1.set_xlabel("ms per subject (batch: amortized; single: one query) (log)")
    ax1.tick_params(axis="y", labelsize=7)
    curve = doc.get("misgrade_curve", [])
    ax2.plot(
        [c["epsilon"] for c in curve],
        [c["misgrade_rate"] for c in curve],
        "o-",
        color=_PSC,
        label="misgrade curve (sampled)",
    )
    batch = [r for r in doc["results"] if r.get("mode") == "batch" and r.get("epsilon")]
    ax2.plot(
        [r["epsilon"] for r in batch],
        [r["misgrade_rate"] for r in batch],
        "s",
        color=_MEASURED,
        label="reveal runs (batch)",
    )
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("epsilon for the score (log2)")
    ax2.set_ylabel("misgrade rate vs noiseless grade")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=7)
    fig.suptitle(
        f"Grade reveal, {doc['params']['k']}-of-{doc['params']['n']} committee, {doc['params']['key_bits']}-bit key, one run",
        fontsize=10,
    )
    _save(fig, out)
    return ["reveal-quick"]


def validity(sources: Sources, out: Path) -> list[str]:
    doc = sources.load("validity-quick")
    tech = dict(doc["techniques"])
    tech["plaintext-knowledge-only"] = doc["plaintext_knowledge_only"]
    names = list(tech)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.barh(names, [t["verify_us_per_subject"] for t in tech.values()], color=_MEASURED)
    ax1.axvline(doc["targets"]["verify_us_per_subject"], color=_PSC, ls="--", lw=1)
    ax1.text(doc["targets"]["verify_us_per_subject"], -0.45, " target", color=_PSC, fontsize=7)
    ax1.axvline(1000 * _a(sources, "vdaf_py_verify_ms"), color=_PUBLISHED, ls=":", lw=1)
    ax1.text(
        1000 * _a(sources, "vdaf_py_verify_ms"),
        len(names) - 0.6,
        " published: VDAF Python\n verify, one report",
        color=_PUBLISHED,
        fontsize=7,
    )
    ax1.set_xscale("log")
    ax1.set_xlabel("aggregator verify, us per subject slot (log)")
    ax1.tick_params(axis="y", labelsize=7)
    ax2.barh(names, [t["proof_bytes_per_subject"] for t in tech.values()], color=_MEASURED)
    ax2.axvline(doc["targets"]["proof_bytes_per_subject"], color=_PSC, ls="--", lw=1)
    ax2.set_xscale("log")
    ax2.set_xlabel("proof bytes per subject slot (log)")
    ax2.set_yticks([])
    p = doc["parameters"]
    fig.suptitle(
        f"Validity proofs, one run: {p['subjects']:,} slots, {p['key_bits']}-bit key", fontsize=10
    )
    _save(fig, out)
    return ["validity-quick", "anchors"]


def grade(sources: Sources, out: Path) -> list[str]:
    doc = sources.load("grade-quick")
    r = doc["results"][0]
    tests = r["thresholds"] + r["caps"]
    bars = [
        ("psc CKKS circuit (measured)", r["ms_per_subject"], r["ms_per_subject"], _PSC),
        (
            "CKK20, amortized (published)",
            tests * _a(sources, "ckk20_ms_per_comparison"),
            tests * _a(sources, "ckk20_ms_per_comparison"),
            _PUBLISHED,
        ),
        (
            "DGK, TNO (published)",
            tests * _a(sources, "dgk_ms_low"),
            tests * _a(sources, "dgk_ms_high"),
            _PUBLISHED,
        ),
        (
            "TFHE-rs latency (published)",
            tests * _a(sources, "tfhe_rs_ms_low"),
            tests * _a(sources, "tfhe_rs_ms_high"),
            _PUBLISHED,
        ),
    ]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for i, (_name, lo, hi, c) in enumerate(bars):
        ax.barh(i, hi, color=c, alpha=0.5 if hi != lo else 1.0)
        if hi != lo:
            ax.barh(i, lo, color=c)
    ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(
        f"ms per subject for {tests} comparisons ({r['thresholds']} bands + {r['caps']} cap) (log)"
    )
    ax.set_title(
        f"Grading one subject: psc at N={r['N']:,}, {r['slots']:,} slots, against published comparison costs",
        fontsize=9,
    )
    _save(fig, out)
    return ["grade-quick", "anchors"]


def compliance(sources: Sources, out: Path) -> list[str]:
    doc = sources.load("compliance-quick")
    steps = doc["steps"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    names = [s["step"] for s in steps]
    ax.barh(names, [s["ratio_to_clear"]["seconds"] for s in steps], color=_MEASURED, label="time")
    ax.barh(
        names, [s["ratio_to_clear"]["bytes"] for s in steps], color=_PSC, height=0.35, label="bytes"
    )
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ratio to pooling the records in the clear, same run (log)")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    p = doc["params"]
    ax.set_title(
        f"What each PIPL protection costs: {p['subjects']:,} subjects, {p['agencies']} agencies, {p['periods']} periods",
        fontsize=9,
    )
    _save(fig, out)
    return ["compliance-quick"]


def scale(sources: Sources, out: Path) -> list[str]:
    doc = sources.load("scale-full")
    e2e = doc["end_to_end"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    xs = [r["subjects"] for r in e2e]
    for party, c in (("agencies", _MEASURED), ("aggregator", _PSC), ("key_holder", "#555555")):
        ax.plot(
            xs,
            [r["us_per_subject"][party] for r in e2e],
            "o-",
            color=c,
            label=party.replace("_", " "),
        )
    ax.axvline(_a(sources, "rongcheng_adults"), color=_PUBLISHED, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subjects (dotted: Rongcheng's adults)")
    ax.set_ylabel("us per subject per party")
    ax.legend(fontsize=7)
    ax.set_title(
        f"End to end, {e2e[0]['agencies']} agencies, {e2e[0]['periods']} periods, {e2e[0]['key_bits']}-bit key, one run",
        fontsize=9,
    )
    _save(fig, out)
    return ["scale-full", "anchors"]


FIGURE_FUNCTIONS: dict[str, Callable[[Sources, Path], list[str]]] = {
    "aggregate": aggregate,
    "reveal": reveal,
    "validity": validity,
    "grade": grade,
    "compliance": compliance,
    "scale": scale,
}


def draw(name: str, sources: Sources, directory: Path = FIGURES) -> list[str]:
    """Draw figure ``name`` into ``directory/name.png``; the sources it read."""
    if name not in FIGURE_FUNCTIONS:
        raise KeyError(f"no figure {name!r} (have: {', '.join(FIGURE_FUNCTIONS)})")
    return FIGURE_FUNCTIONS[name](sources, directory / f"{name}.png")
