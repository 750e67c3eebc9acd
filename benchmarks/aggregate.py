"""Aggregation suite: encrypted dense-vector sums, side by side with phe and numpy.

``python -m benchmarks aggregate [--quick] [--json PATH] [--subjects N ...]
[--agencies M] [--key-bits B ...]``, run from the repository root.

For each key size and each number of subjects ``N``, one run measures three backends on
the **same** dense delta vectors (one per agency, drawn from the catalog with a seeded
generator, each bounded by its agency's catalog bound):

``numpy``
    plaintext int64 sums: the memory-bandwidth limit.
``phe-naive``
    one ``phe.EncryptedNumber`` per subject (``public_key.encrypt`` per value), summed with
    ``+``.  Measured on the first ``measured_subjects`` subjects only (it is thousands of
    times slower); its figures are per subject, so they compare directly.
``paillier-packed``
    :class:`psc.hazmat.backends.paillier.PackedPaillier` with the catalog's
    :class:`psc.hazmat.packing.SlotLayout` and a :class:`~psc.hazmat.backends.paillier.RandomnessPool`
    filled ahead of time (a full ``r^n mod n^2`` per block).
``paillier-packed-djn``
    the same with a :class:`~psc.hazmat.backends.paillier.ShortExponentPool` (Damgard-Jurik-Nielsen
    short exponents, fixed-base tables; table construction counted in the precomputation),
    plus one more agency vector encrypted *with openings* (what a prover needs), reported as
    ``encrypt_with_openings_us_per_subject``.

Aggregation cost is ``ns_per_subject_delta``: the median time to add the ``M`` agency
vectors into one sum, divided by ``subjects * (M - 1)`` (the number of additions).  Every
encrypted sum is decrypted and compared with the numpy sum; any difference aborts the run
with :class:`CorrectnessError` before anything is written.  Field definitions:
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import operator
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.args import (
    add_lint_flag,
    int_at_least,
    linted_catalog,
    parse,
    positive_int,
    writable_json,
)
from benchmarks.env import environment
from benchmarks.report import (
    Column,
    Progress,
    default_results_path,
    format_table,
    time_call,
    time_once,
    write_json,
)
from psc.catalog import Catalog, load_catalog, period_index, period_label
from psc.events import EventTable
from psc.hazmat.backends.paillier import (
    PackedCiphertext,
    PackedPaillier,
    RandomnessPool,
    ShortExponentPool,
)
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
)

SUITE = "aggregate"
IntArray = npt.NDArray[np.int64]
KeypairFactory = Callable[[int], tuple[PaillierPublicKey, PaillierPrivateKey]]

#: acceptance targets of issue 2 for paillier-packed at >= 2048-bit keys
TARGET_AGGREGATE_SPEEDUP = 100.0
TARGET_ENCRYPT_SPEEDUP = 50.0
TARGET_BYTES_PER_SUBJECT = 8.0
TARGET_BFV_RATIO_TO_NUMPY = 15.0
#: issue 15: agency encryption per subject, precomputation included, >= 2048-bit keys
TARGET_ENCRYPT_US_PER_SUBJECT = 20.0

#: the scoring period the synthetic events fall in (any month works; it is recorded)
BENCH_PERIOD = period_index(dt.date(2026, 1, 1))


class CorrectnessError(AssertionError):
    """An encrypted sum did not decrypt to the plaintext sum: the figures would be worthless."""


@dataclass(frozen=True)
class AggregateConfig:
    """Parameters of one run.  ``quick()`` and ``full()`` are the two presets."""

    subjects: tuple[int, ...]
    agencies: int
    key_bits: tuple[int, ...]
    #: phe-naive is measured on min(subjects, phe_subjects) subjects
    phe_subjects: int
    #: samples per timed operation (the median is reported)
    repetitions: int
    quick: bool
    catalog: str = "city"
    seed: int = 20260101
    #: probability of each allowed event (rule, occurrence) per subject and period
    event_rate: float = 0.05
    #: also measure the TenSEAL rows (bfv, ckks, tenseal-naive) in the same run
    he: bool = True

    def __post_init__(self) -> None:
        if not self.subjects or min(self.subjects) < 1:
            raise ValueError("subjects must be one or more positive sizes")
        if self.agencies < 2:
            raise ValueError(f"aggregation needs at least 2 agencies, got {self.agencies}")
        if not self.key_bits:
            raise ValueError("at least one key size is needed")
        if self.phe_subjects < 1:
            raise ValueError("phe_subjects must be at least 1")
        if self.repetitions < 1:
            raise ValueError("repetitions must be at least 1")
        if not 0.0 <= self.event_rate <= 1.0:
            raise ValueError(f"event_rate must be a probability, got {self.event_rate}")

    @classmethod
    def quick_preset(cls) -> AggregateConfig:
        return cls(
            subjects=(10_000,),
            agencies=8,
            key_bits=(2048,),
            phe_subjects=200,
            repetitions=5,
            quick=True,
        )

    @classmethod
    def full_preset(cls) -> AggregateConfig:
        return cls(
            subjects=(10_000, 100_000, 1_000_000),
            agencies=8,
            key_bits=(2048, 3072),
            phe_subjects=500,
            repetitions=3,
            quick=False,
        )


# ----------------------------------------------------------------------------------------
# workload


@dataclass(frozen=True)
class AgencyVector:
    """One agency's dense delta vector for the benchmark period and its catalog bound."""

    name: str
    agency: str
    bound: int
    events: int
    vector: IntArray


def agency_vectors(
    catalog: Catalog, agencies: int, subjects: int, *, event_rate: float, seed: int
) -> list[AgencyVector]:
    """Seeded synthetic events for ``agencies`` agencies, as dense delta vectors.

    Agency ``j`` applies the rules of ``catalog.agencies[j % A]`` (beyond ``A`` agencies,
    several offices apply the same rules, e.g. district courts: the layout's
    ``multiplicity``).  Each subject gets ``Binomial(max_per_period, event_rate)`` events of
    each rule, so every vector respects its agency's bound
    (:meth:`~psc.catalog.Catalog.agency_period_bound`); the vector comes from
    :meth:`~psc.events.EventTable.delta_vectors`, summed over retention classes.
    """
    rng = np.random.default_rng(seed)
    names = catalog.agencies
    out: list[AgencyVector] = []
    everyone = np.arange(subjects, dtype=np.int64)
    for j in range(agencies):
        agency = names[j % len(names)]
        subj: list[IntArray] = []
        rule: list[IntArray] = []
        for ri, r in enumerate(catalog.rules):
            if r.agency != agency:
                continue
            counts = rng.binomial(r.max_per_period, event_rate, size=subjects)
            s = np.repeat(everyone, counts)
            subj.append(s)
            rule.append(np.full(s.size, ri, dtype=np.int64))
        s_all = np.concatenate(subj)
        table = EventTable.from_arrays(
            catalog,
            subjects,
            s_all,
            np.concatenate(rule),
            np.full(s_all.size, BENCH_PERIOD, dtype=np.int64),
        )
        vec = np.sum(list(table.delta_vectors(BENCH_PERIOD).values()), axis=0).astype(np.int64)
        bound = catalog.agency_period_bound(agency)
        if vec.size and int(np.abs(vec).max()) > bound:  # a bug in this generator, not data
            raise CorrectnessError(f"{agency}: generated delta exceeds its bound {bound}")
        name = agency if j < len(names) else f"{agency}#{j // len(names) + 1}"
        out.append(AgencyVector(name, agency, bound, len(table), vec))
    return out


def layout_for(catalog: Catalog, key_bits: int, agencies: int) -> tuple[SlotLayout, int]:
    """The catalog's slot layout for ``agencies`` agencies, and the multiplicity used."""
    multiplicity = -(-agencies // len(catalog.agencies))
    return SlotLayout.for_catalog(catalog, key_bits, multiplicity=multiplicity), multiplicity


# ----------------------------------------------------------------------------------------
# measurement


def _numpy_sum(vectors: Sequence[IntArray]) -> IntArray:
    # exactly M - 1 element-wise additions, no extra copy
    acc = np.add(vectors[0], vectors[1])
    for v in vectors[2:]:
        np.add(acc, v, out=acc)
    return acc


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def _check(backend: str, got: IntArray, want: IntArray, subjects: int, key_bits: int) -> None:
    if got.shape != want.shape or not np.array_equal(got, want):
        bad = int(np.count_nonzero(got != want)) if got.shape == want.shape else -1
        raise CorrectnessError(
            f"{backend} ({key_bits}-bit key, {subjects} subjects): the decrypted sum differs "
            f"from the numpy sum in {bad if bad >= 0 else 'shape'} place(s); aborting, "
            "no results written"
        )


def _measure_numpy(vectors: Sequence[IntArray], repeat: int) -> tuple[dict[str, Any], IntArray]:
    n, m = vectors[0].size, len(vectors)
    t = time_call(lambda: _numpy_sum(vectors), repeat=repeat)
    record = {
        "backend": "numpy",
        "measured_subjects": n,
        "ns_per_subject_delta": t.median_ns / (n * (m - 1)),
        "aggregate_ms": t.median_ns / 1e6,
        "encrypt_us_per_subject": None,
        "encrypt_online_us_per_subject": None,
        "decrypt_us_per_subject": None,
        "bytes_per_subject": float(np.dtype(np.int64).itemsize),
        "checked": True,  # the reference itself
        "timing": {"aggregate": t.as_json()},
    }
    return record, _numpy_sum(vectors)


def _measure_packed(
    pk: PaillierPublicKey,
    sk: PaillierPrivateKey,
    layout: SlotLayout,
    agencies: Sequence[AgencyVector],
    subjects: int,
    expected: IntArray,
    repeat: int,
    *,
    allow_insecure_key: bool,
    progress: Progress,
    name: str = "paillier-packed",
    make_pool: Callable[[PaillierPublicKey], RandomnessPool] = RandomnessPool,
) -> dict[str, Any]:
    blocks = layout.blocks(subjects)
    # warm-up: code paths and allocator, on one block, outside any timing
    warm = PackedPaillier(pk, layout, allow_insecure_key=allow_insecure_key)
    warm.pool.fill(1)
    warm.encrypt(agencies[0].vector[: layout.slots], bound=agencies[0].bound)

    fill_ns: list[float] = []
    online_ns: list[float] = []
    cts: list[PackedCiphertext] = []
    for k, a in enumerate(agencies):
        progress(
            f"{name} {pk.bits}-bit, {subjects} subjects: agency {k + 1}/{len(agencies)} "
            f"precomputes {blocks} randomizers, then encrypts"
        )
        pool = make_pool(pk)
        t_fill, _ = time_once(functools.partial(pool.fill, blocks))
        backend = PackedPaillier(pk, layout, pool=pool, allow_insecure_key=allow_insecure_key)
        t_online, ct = time_once(
            functools.partial(backend.encrypt, a.vector[:subjects], bound=a.bound)
        )
        fill_ns.append(t_fill)
        online_ns.append(t_online)
        if pool.made_online or len(pool) or pool.taken != blocks:
            raise CorrectnessError(
                f"randomness pool misuse: {pool.made_online} made online, {len(pool)} left, "
                f"{pool.taken} taken for {blocks} blocks"
            )
        cts.append(ct)
    enc_ns = [f + o for f, o in zip(fill_ns, online_ns, strict=True)]

    opening_us: float | None = None
    if isinstance(pool, ShortExponentPool):
        # a prover's encryption: same randomizer source, openings computed for every block
        again = ShortExponentPool(pk, randomizer=pool.randomizer)
        prover = PackedPaillier(pk, layout, pool=again, allow_insecure_key=allow_insecure_key)
        first = agencies[0]

        def encrypt_for_a_prover() -> None:
            again.fill(blocks)
            prover.encrypt_with_openings(first.vector[:subjects], bound=first.bound)

        t_open, _ = time_once(encrypt_for_a_prover)
        opening_us = t_open / subjects / 1e3
    aggregator = PackedPaillier(pk, layout, allow_insecure_key=allow_insecure_key)
    progress(f"{name} {pk.bits}-bit, {subjects} subjects: aggregating")
    t_agg = time_call(lambda: aggregator.sum(cts), repeat=repeat)
    total = aggregator.sum(cts)
    progress(f"{name} {pk.bits}-bit, {subjects} subjects: decrypting {blocks} blocks")
    t_dec = time_call(lambda: aggregator.decrypt(total, sk), repeat=repeat)
    _check(name, aggregator.decrypt(total, sk), expected, subjects, pk.bits)

    wire = aggregator.serialize(cts[0])
    if aggregator.deserialize(wire).blocks != cts[0].blocks:
        raise CorrectnessError(f"{name}: serialization does not round-trip")
    m = len(agencies)
    return {
        "backend": name,
        "measured_subjects": subjects,
        "ns_per_subject_delta": t_agg.median_ns / (subjects * (m - 1)),
        "aggregate_ms": t_agg.median_ns / 1e6,
        "encrypt_us_per_subject": _median(enc_ns) / subjects / 1e3,
        "encrypt_online_us_per_subject": _median(online_ns) / subjects / 1e3,
        "decrypt_us_per_subject": t_dec.median_ns / subjects / 1e3,
        "encrypt_with_openings_us_per_subject": opening_us,
        "bytes_per_subject": len(wire) / subjects,
        "ciphertexts_per_agency": blocks,
        "checked": True,
        "timing": {
            "aggregate": t_agg.as_json(),
            "decrypt": t_dec.as_json(),
            "encrypt": {"samples": len(enc_ns), "unit": "one agency vector each"},
        },
    }


def _phe_encrypt_all(public_key: Any, values: IntArray) -> list[Any]:
    """phe used naively: one ``EncryptedNumber`` per value, each with fresh randomness."""
    return [public_key.encrypt(int(x)) for x in values]


def _measure_phe(
    pk: PaillierPublicKey,
    sk: PaillierPrivateKey,
    agencies: Sequence[AgencyVector],
    subjects: int,
    expected: IntArray,
    repeat: int,
    *,
    progress: Progress,
) -> dict[str, Any]:
    pub, priv = pk.to_phe(), sk.to_phe()
    n = min(subjects, len(expected))
    where = f"phe-naive {pk.bits}-bit, {len(expected)} subjects (subsample {n})"
    for x in (0, 1, -1):  # warm-up, outside any timing
        priv.decrypt(pub.encrypt(x))
    enc_ns: list[float] = []
    columns: list[list[Any]] = []
    for k, a in enumerate(agencies):
        progress(f"{where}: agency {k + 1}/{len(agencies)} encrypts {n} values one by one")
        t, encrypted = time_once(functools.partial(_phe_encrypt_all, pub, a.vector[:n]))
        enc_ns.append(t)
        columns.append(encrypted)
    per_subject = list(zip(*columns, strict=True))

    def aggregate() -> list[Any]:
        return [functools.reduce(operator.add, col) for col in per_subject]

    progress(f"{where}: aggregating")
    t_agg = time_call(aggregate, repeat=repeat)
    total = aggregate()
    progress(f"{where}: decrypting {n} values")
    t_dec = time_call(lambda: [priv.decrypt(e) for e in total], repeat=repeat)
    got = np.array([priv.decrypt(e) for e in total], dtype=np.int64)
    _check("phe-naive", got, expected[:n], n, pk.bits)
    m = len(agencies)
    return {
        "backend": "phe-naive",
        "measured_subjects": n,
        "ns_per_subject_delta": t_agg.median_ns / (n * (m - 1)),
        "aggregate_ms": t_agg.median_ns / 1e6,
        "encrypt_us_per_subject": _median(enc_ns) / n / 1e3,
        "encrypt_online_us_per_subject": None,  # phe has no precomputed-randomness path
        "decrypt_us_per_subject": t_dec.median_ns / n / 1e3,
        # one fixed-width element of Z_{n^2}: the least any encoding of it can take
        "bytes_per_subject": float(pk.ciphertext_bytes),
        "checked": True,
        "timing": {
            "aggregate": t_agg.as_json(),
            "decrypt": t_dec.as_json(),
            "encrypt": {"samples": len(enc_ns), "unit": "one agency's values each"},
        },
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _finish(group: list[dict[str, Any]]) -> None:
    """Fill ``ratio_to_numpy`` and ``speedup_vs_phe_naive`` within one side-by-side group."""
    by = {r["backend"]: r for r in group}
    ref, phe = by["numpy"], by["phe-naive"]
    for r in group:
        r["ratio_to_numpy"] = _ratio(r["ns_per_subject_delta"], ref["ns_per_subject_delta"])
        r["speedup_vs_phe_naive"] = None
    for packed in (by[b] for b in ("paillier-packed", "paillier-packed-djn") if b in by):
        _speedups(packed, phe)


def _speedups(packed: dict[str, Any], phe: dict[str, Any]) -> None:
    packed["speedup_vs_phe_naive"] = {
        "aggregate": _ratio(phe["ns_per_subject_delta"], packed["ns_per_subject_delta"]),
        "encrypt": _ratio(phe["encrypt_us_per_subject"], packed["encrypt_us_per_subject"]),
        "encrypt_online": _ratio(
            phe["encrypt_us_per_subject"], packed["encrypt_online_us_per_subject"]
        ),
        "decrypt": _ratio(phe["decrypt_us_per_subject"], packed["decrypt_us_per_subject"]),
        "bytes": _ratio(phe["bytes_per_subject"], packed["bytes_per_subject"]),
    }


def acceptance(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 2's targets, checked on every paillier-packed record with a key of at least
    :data:`~psc.hazmat.paillier.MIN_KEY_BITS` bits."""
    out: list[dict[str, Any]] = []
    for r in results:
        if r["backend"] == "bfv":
            out.append(
                {
                    "key_bits": None,
                    "subjects": r["subjects"],
                    "target": "bfv aggregation per subject-delta, ratio to numpy",
                    "value": r["ratio_to_numpy"],
                    "threshold": f"<= {TARGET_BFV_RATIO_TO_NUMPY:g}",
                    "met": r["ratio_to_numpy"] <= TARGET_BFV_RATIO_TO_NUMPY,
                }
            )
            continue
        if r["backend"] == "paillier-packed-djn" and r["key_bits"] >= MIN_KEY_BITS:
            today = next(
                (
                    x["encrypt_us_per_subject"]
                    for x in results
                    if x["backend"] == "paillier-packed"
                    and (x["key_bits"], x["subjects"]) == (r["key_bits"], r["subjects"])
                ),
                None,
            )
            out.append(
                {
                    "key_bits": r["key_bits"],
                    "subjects": r["subjects"],
                    "target": "agency encryption us per subject, precomputation included "
                    "(short exponents)",
                    "value": r["encrypt_us_per_subject"],
                    "baseline_full_exponent": today,
                    "threshold": f"<= {TARGET_ENCRYPT_US_PER_SUBJECT:g}",
                    "met": r["encrypt_us_per_subject"] <= TARGET_ENCRYPT_US_PER_SUBJECT,
                }
            )
            continue
        if r["backend"] != "paillier-packed" or r["key_bits"] < MIN_KEY_BITS:
            continue
        sp = r["speedup_vs_phe_naive"]
        where = {"key_bits": r["key_bits"], "subjects": r["subjects"]}
        out += [
            {
                **where,
                "target": "aggregation speed-up vs phe-naive",
                "value": sp["aggregate"],
                "threshold": f">= {TARGET_AGGREGATE_SPEEDUP:g}",
                "met": sp["aggregate"] >= TARGET_AGGREGATE_SPEEDUP,
            },
            {
                **where,
                "target": "encryption speed-up vs phe-naive (precomputation included)",
                "value": sp["encrypt"],
                "threshold": f">= {TARGET_ENCRYPT_SPEEDUP:g}",
                "met": sp["encrypt"] >= TARGET_ENCRYPT_SPEEDUP,
            },
            {
                **where,
                "target": "bytes per subject",
                "value": r["bytes_per_subject"],
                "threshold": f"<= {TARGET_BYTES_PER_SUBJECT:g}",
                "met": r["bytes_per_subject"] <= TARGET_BYTES_PER_SUBJECT,
            },
        ]
    return out


def run(
    config: AggregateConfig,
    *,
    progress: Progress | None = None,
    _keypair: KeypairFactory | None = None,
) -> dict[str, Any]:
    """Run the suite and return the results document (see ``benchmarks/README.md``).

    ``_keypair`` is a private seam for tests: a factory ``bits -> (pk, sk)`` that may
    return small, insecure keys (``psc.hazmat.paillier._keypair_from_primes(...,
    allow_insecure=True)``); without it keys come from :func:`psc.hazmat.paillier.generate_keypair`.
    Raises :class:`CorrectnessError` if any decrypted sum differs from the numpy sum.
    """
    progress = progress if progress is not None else Progress(SUITE)
    env = environment()  # first, so the load average is the one before this run
    catalog = load_catalog(config.catalog)
    make_keys = _keypair if _keypair is not None else generate_keypair
    progress(
        f"generating events for {config.agencies} agencies x {max(config.subjects)} subjects "
        f"from catalog {catalog.scheme.name} {catalog.scheme.version}"
    )
    vectors = agency_vectors(
        catalog,
        config.agencies,
        max(config.subjects),
        event_rate=config.event_rate,
        seed=config.seed,
    )
    results: list[dict[str, Any]] = []
    layouts: list[dict[str, Any]] = []
    multiplicity = 1
    for bits in config.key_bits:
        progress(f"generating a {bits}-bit Paillier key")
        pk, sk = make_keys(bits)
        layout, multiplicity = layout_for(catalog, pk.bits, config.agencies)
        layouts.append({"key_bits": pk.bits, "slot_bits": layout.slot_bits, "slots": layout.slots})
        if sum(a.bound for a in vectors) > layout.max_value:  # for_catalog guarantees this
            raise CorrectnessError("catalog layout cannot hold one period of all agencies")
        for n in sorted(config.subjects):
            # the SAME vectors for every backend (prefixes of one seeded draw)
            same = [np.ascontiguousarray(a.vector[:n]) for a in vectors]
            progress(f"{pk.bits}-bit, {n} subjects: numpy")
            np_rec, expected = _measure_numpy(same, config.repetitions)
            packed_rec = _measure_packed(
                pk,
                sk,
                layout,
                vectors,
                n,
                expected,
                config.repetitions,
                allow_insecure_key=pk.bits < MIN_KEY_BITS,
                progress=progress,
            )
            djn_rec = _measure_packed(
                pk,
                sk,
                layout,
                vectors,
                n,
                expected,
                config.repetitions,
                allow_insecure_key=pk.bits < MIN_KEY_BITS,
                progress=progress,
                name="paillier-packed-djn",
                make_pool=ShortExponentPool,
            )
            phe_rec = _measure_phe(
                pk,
                sk,
                vectors,
                min(n, config.phe_subjects),
                expected,
                config.repetitions,
                progress=progress,
            )
            group = []
            for rec, slot_bits, slots in (
                (np_rec, None, None),
                (phe_rec, None, 1),
                (packed_rec, layout.slot_bits, layout.slots),
                (djn_rec, layout.slot_bits, layout.slots),
            ):
                group.append(
                    {
                        "backend": rec["backend"],
                        "key_bits": pk.bits,
                        "slot_bits": slot_bits,
                        "slots_per_ciphertext": slots,
                        "subjects": n,
                        "agencies": config.agencies,
                        **{k: v for k, v in rec.items() if k != "backend"},
                    }
                )
            if config.he and bits == config.key_bits[0]:
                # TenSEAL rows do not depend on the Paillier key: once per size, same vectors
                from benchmarks.aggregate_he import he_records

                progress(f"{n} subjects: bfv, ckks, tenseal-naive")
                for rec in he_records(
                    same,
                    [a.bound for a in vectors],
                    expected,
                    repeat=config.repetitions,
                    progress=progress,
                ):
                    group.append(
                        {
                            "key_bits": None,
                            "slot_bits": None,
                            "slots_per_ciphertext": rec.get("slots"),
                            "subjects": n,
                            "agencies": config.agencies,
                            **rec,
                        }
                    )
            _finish(group)
            results += group
    params = {
        **{k: v for k, v in asdict(config).items() if k not in ("subjects", "key_bits")},
        "key_bits": [x["key_bits"] for x in layouts],
        "slot_bits": layouts[0]["slot_bits"],
        "slots_per_ciphertext": [x["slots"] for x in layouts],
        "subjects": sorted(config.subjects),
        "catalog": {
            "name": catalog.scheme.name,
            "version": catalog.scheme.version,
            "version_hash": catalog.version_hash,
            "source": catalog.source,
        },
        "multiplicity": multiplicity,
        "period": period_label(BENCH_PERIOD),
        "agency_vectors": [
            {"name": a.name, "rules_of": a.agency, "bound": a.bound, "events": a.events}
            for a in vectors
        ],
        "insecure_test_keys": any(x["key_bits"] < MIN_KEY_BITS for x in layouts),
        "ns_per_subject_delta_divisor": "subjects * (agencies - 1)",
    }
    try:
        env["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        env["load_average_at_end"] = None
    return {
        "suite": SUITE,
        "env": env,
        "params": params,
        "results": results,
        "acceptance": acceptance(results),
        "elapsed_s": round(progress.elapsed_s, 1),
    }


# ----------------------------------------------------------------------------------------
# output


def _fmt_speedup(r: dict[str, Any], key: str) -> str | None:
    sp = r.get("speedup_vs_phe_naive")
    return None if sp is None or sp.get(key) is None else f"{sp[key]:.0f}x"


TABLE = (
    Column("backend", "backend"),
    Column("key_bits", "key bits"),
    Column("subjects", "subjects"),
    Column("measured_subjects", "measured"),
    Column("ns_per_subject_delta", "agg ns/subj-delta", "{:.2f}"),
    Column("ratio_to_numpy", "x numpy", "{:.1f}"),
    Column("encrypt_us_per_subject", "enc us/subj", "{:.2f}"),
    Column("encrypt_online_us_per_subject", "enc online us/subj", "{:.3f}"),
    Column("decrypt_us_per_subject", "dec us/subj", "{:.2f}"),
    Column("bytes_per_subject", "bytes/subj", "{:.2f}"),
    Column("speedup_aggregate", "agg speed-up vs phe"),
    Column("speedup_encrypt", "enc speed-up vs phe"),
)


def render(document: dict[str, Any]) -> str:
    """The results table, the parameters and the acceptance lines, as printed text."""
    rows = [
        {
            **r,
            "speedup_aggregate": _fmt_speedup(r, "aggregate"),
            "speedup_encrypt": _fmt_speedup(r, "encrypt"),
        }
        for r in document["results"]
    ]
    p, e = document["params"], document["env"]
    head = (
        f"aggregate: {p['agencies']} agencies, catalog {p['catalog']['name']} "
        f"{p['catalog']['version']} ({p['catalog']['version_hash'][:12]}), slot_bits "
        f"{p['slot_bits']}, slots/ciphertext {p['slots_per_ciphertext']} for key bits "
        f"{p['key_bits']}, median of {p['repetitions']}, quick={p['quick']}\n"
        f"env: Python {e['python']}, {e['cpu_model']} x{e['cpu_count']}, "
        f"phe {e['libraries']['phe']} (gmpy2: {e['phe_uses_gmpy2']}), gmpy2 "
        f"{e['libraries']['gmpy2']}, numpy {e['libraries']['numpy']}, "
        f"load {e['load_average_1_5_15min']} -> {e.get('load_average_at_end')}, commit {(e['git']['commit'] or '?')[:12]}"
        f"{' (dirty)' if e['git']['dirty'] else ''}, {e['timestamp_utc']}"
    )
    lines = [head, "", format_table(rows, TABLE), ""]
    for a in document["acceptance"]:
        base = a.get("baseline_full_exponent")
        lines.append(
            f"{'MET   ' if a['met'] else 'MISSED'} {a['target']} at {a['key_bits'] or '-'} bits, "
            f"{a['subjects']} subjects: {a['value']:.2f} (target {a['threshold']})"
            + ("" if base is None else f"; full-exponent randomizers in the same run: {base:.2f}")
        )
    lines.append("correctness: every decrypted sum equals the numpy sum")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks aggregate",
        description="Encrypted aggregation: numpy vs phe-naive vs paillier-packed, side by side.",
    )
    p.add_argument("--quick", action="store_true", help="the quick preset (10^4 subjects)")
    p.add_argument("--json", type=Path, help="write results here instead of benchmarks/results/")
    p.add_argument("--subjects", type=positive_int, nargs="+", metavar="N", help="subject counts")
    p.add_argument("--agencies", type=int, metavar="M", help="number of agency vectors (>= 2)")
    p.add_argument(
        "--key-bits",
        type=int_at_least(512),
        nargs="+",
        metavar="B",
        help=f"Paillier modulus sizes (at least {MIN_KEY_BITS})",
    )
    p.add_argument(
        "--phe-subjects", type=positive_int, metavar="K", help="subsample size for phe-naive"
    )
    p.add_argument(
        "--repetitions", type=positive_int, metavar="K", help="samples per timing (median)"
    )
    p.add_argument("--seed", type=int, help="seed of the synthetic events")
    p.add_argument("--catalog", help="built-in catalog name or TOML path (default: city)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument(
        "--no-he", action="store_true", help="skip the TenSEAL rows (bfv, ckks, tenseal-naive)"
    )
    add_lint_flag(p)
    return p


def config_from_args(args: argparse.Namespace) -> AggregateConfig:
    """The preset chosen by ``--quick``, overridden by any explicit option."""
    base = AggregateConfig.quick_preset() if args.quick else AggregateConfig.full_preset()
    over: dict[str, Any] = {}
    if args.subjects:
        over["subjects"] = tuple(args.subjects)
    if args.key_bits:
        over["key_bits"] = tuple(args.key_bits)
    if args.no_he:
        over["he"] = False
    for name in ("agencies", "phe_subjects", "repetitions", "seed", "catalog"):
        value = getattr(args, name)
        if value is not None:
            over[name] = value
    return AggregateConfig(**{**asdict(base), **over})


def main(argv: Sequence[str], *, _keypair: KeypairFactory | None = None) -> int:
    """CLI entry point; returns the exit status (1 if a correctness check failed)."""
    args = parse(_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"aggregate: {exc}", file=sys.stderr)
        return 2
    small = [b for b in config.key_bits if b < MIN_KEY_BITS]
    if small and _keypair is None:  # insecure sizes only through the test seam
        print(
            f"aggregate: --key-bits {small[0]} is below {MIN_KEY_BITS}, the smallest key psc "
            "generates; use 2048 or 3072",
            file=sys.stderr,
        )
        return 2
    if not writable_json(None if args.json is None else str(args.json), suite=SUITE):
        return 2
    if linted_catalog(config.catalog, suite=SUITE, allow=args.allow_lint_errors) is None:
        return 2
    progress = Progress(SUITE, quiet=args.quiet)
    try:
        document = run(config, progress=progress, _keypair=_keypair)
    except CorrectnessError as exc:
        print(f"aggregate: CORRECTNESS CHECK FAILED: {exc}", file=sys.stderr)
        return 1
    path = args.json if args.json is not None else default_results_path(SUITE, quick=config.quick)
    print(render(document))
    written = write_json(document, path)
    progress(f"wrote {written}")
    missed = [a for a in document["acceptance"] if not a["met"]]
    if missed:
        print(f"aggregate: {len(missed)} acceptance target(s) missed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
