"""Shared helpers for benchmark suites: timing, progress on stderr, tables, JSON results.

Every suite reports the same way so that results are comparable and reusable:

* :func:`time_call` times a callable with :func:`time.perf_counter_ns`: one warm-up call
  that also calibrates how many calls make one sample, then ``repeat`` samples; the figure
  is the **median** per-call time.  Calls too fast for the clock are looped until one
  sample lasts at least ``min_sample_ns``.
* :class:`Progress` prints ``[suite +12.3s] message`` lines on stderr, so stdout stays
  the table and long phases still show that they are moving.
* :func:`format_table` renders records (dicts) as a fixed-width text table.
* :func:`write_json` writes a results document (``suite``, ``env``, ``params``,
  ``results``) as indented JSON; :func:`default_results_path` names the file under
  ``benchmarks/results/``.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

#: where suites write their results by default
RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: a sample shorter than this is too close to the clock's resolution and scheduler noise
DEFAULT_MIN_SAMPLE_NS = 20_000_000


@dataclass(frozen=True)
class Timing:
    """The result of :func:`time_call`: per-call nanoseconds of each sample, and the median."""

    median_ns: float
    samples_ns: tuple[float, ...]
    calls_per_sample: int

    def as_json(self) -> dict[str, Any]:
        return {
            "median_ns": self.median_ns,
            "samples": len(self.samples_ns),
            "calls_per_sample": self.calls_per_sample,
            "min_ns": min(self.samples_ns),
            "max_ns": max(self.samples_ns),
        }


def time_call(
    fn: Callable[[], object],
    *,
    repeat: int,
    min_sample_ns: int = DEFAULT_MIN_SAMPLE_NS,
) -> Timing:
    """Median per-call time of ``fn()`` over ``repeat`` samples, after one warm-up call.

    The warm-up call is timed to choose ``calls_per_sample`` (a power of two) so that a
    sample lasts at least ``min_sample_ns``; its own time is discarded.  ``fn`` must be
    repeatable: a call may not consume anything another call needs.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    t0 = time.perf_counter_ns()
    fn()
    once = max(1, time.perf_counter_ns() - t0)
    number = 1
    while number * once < min_sample_ns:
        number *= 2
    samples: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter_ns() - t0) / number)
    return Timing(statistics.median(samples), tuple(samples), number)


def time_once(fn: Callable[[], T]) -> tuple[float, T]:
    """Nanoseconds of one call of ``fn()``, and its result.

    For work that cannot be repeated (e.g. using up a pool of one-time randomizers);
    callers take the median over several such samples.
    """
    t0 = time.perf_counter_ns()
    result = fn()
    return float(time.perf_counter_ns() - t0), result


class Progress:
    """Progress lines on stderr, prefixed with the suite name and the elapsed time."""

    def __init__(self, suite: str, *, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.suite = suite
        self.stream = stream
        self.quiet = quiet
        self.t0 = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        out = self.stream if self.stream is not None else sys.stderr
        print(f"[{self.suite} +{self.elapsed_s:.1f}s] {message}", file=out, flush=True)


@dataclass(frozen=True)
class Column:
    """One table column: the record ``key``, its ``header`` and a format for values."""

    key: str
    header: str
    fmt: str = "{}"

    def render(self, record: Mapping[str, Any]) -> str:
        value = record.get(self.key)
        if value is None:
            return "-"
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return self.fmt.format(value)


def format_table(records: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """Records as a text table: text columns left-aligned, everything else right-aligned;
    a missing or ``None`` value prints as ``-``."""
    cells = [[c.header for c in columns]] + [[c.render(r) for c in columns] for r in records]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    left = [
        all(isinstance(r.get(c.key), str) or r.get(c.key) is None for r in records) for c in columns
    ]
    lines = []
    for k, row in enumerate(cells):
        parts = [
            cell.ljust(w) if is_left else cell.rjust(w)
            for cell, w, is_left in zip(row, widths, left, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def default_results_path(suite: str, *, quick: bool) -> Path:
    """``benchmarks/results/<suite>-quick.json`` or ``...-full.json``."""
    return RESULTS_DIR / f"{suite}-{'quick' if quick else 'full'}.json"


def write_json(document: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``document`` as indented JSON (parent folders created); returns the path.

    Raises ``ValueError`` for NaN or infinite numbers rather than writing invalid JSON.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, allow_nan=False)
    p.write_text(text + "\n", encoding="utf-8")
    return p
