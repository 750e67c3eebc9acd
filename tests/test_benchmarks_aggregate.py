"""The aggregation benchmark harness (benchmarks/aggregate.py, env.py, report.py).

Runs the suite in-process at a tiny size with an INSECURE 512-bit test key and checks the
results document's schema and that the correctness check ran (and aborts when it fails).
No timing assertions, ever: timings on a shared machine are not test material.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import aggregate, report
from benchmarks.aggregate import AggregateConfig, CorrectnessError
from benchmarks.env import environment
from psc.catalog import Catalog
from psc.hazmat.backends.paillier import PackedPaillier
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]

RECORD_FIELDS = {
    "backend",
    "key_bits",
    "slot_bits",
    "slots_per_ciphertext",
    "subjects",
    "measured_subjects",
    "agencies",
    "ns_per_subject_delta",
    "aggregate_ms",
    "encrypt_us_per_subject",
    "encrypt_online_us_per_subject",
    "decrypt_us_per_subject",
    "bytes_per_subject",
    "ratio_to_numpy",
    "speedup_vs_phe_naive",
    "checked",
    "timing",
}
PARAM_FIELDS = {
    "key_bits",
    "slot_bits",
    "slots_per_ciphertext",
    "subjects",
    "agencies",
    "catalog",
    "repetitions",
    "quick",
    "phe_subjects",
    "multiplicity",
    "seed",
    "event_rate",
    "agency_vectors",
    "insecure_test_keys",
}

TINY = AggregateConfig(
    subjects=(300,), agencies=2, key_bits=(512,), phe_subjects=40, repetitions=2, quick=True
)


@pytest.fixture
def keys(test_keypair: Keypair) -> aggregate.KeypairFactory:
    """The INSECURE session test key, whatever size is asked for."""
    return lambda bits: test_keypair


def quiet() -> report.Progress:
    return report.Progress("aggregate", quiet=True)


def test_tiny_run_schema_and_correctness(keys: aggregate.KeypairFactory) -> None:
    doc = aggregate.run(TINY, progress=quiet(), _keypair=keys)
    json.dumps(doc, allow_nan=False)  # JSON-ready, no NaN or infinity
    assert doc["suite"] == "aggregate"
    assert {"python", "cpu_model", "cpu_count", "libraries", "git"} <= set(doc["env"])
    assert set(doc["params"]) >= PARAM_FIELDS
    p = doc["params"]
    assert p["key_bits"] == [512] and p["subjects"] == [300] and p["agencies"] == 2
    assert p["insecure_test_keys"] is True
    assert len(p["catalog"]["version_hash"]) == 64

    by = {r["backend"]: r for r in doc["results"]}
    he = {"bfv", "ckks", "tenseal-naive"}
    assert set(by) == {"numpy", "phe-naive", "paillier-packed", "paillier-packed-djn"} | he
    for r in doc["results"]:
        assert set(r) >= RECORD_FIELDS, RECORD_FIELDS - set(r)
        assert r["agencies"] == 2
        assert r["ns_per_subject_delta"] > 0 and math.isfinite(r["ratio_to_numpy"])
        if r["backend"] in he:  # TenSEAL rows: checked inside aggregate_he, no Paillier key
            assert r["key_bits"] is None
            assert r["subjects"] == (100 if r["backend"] == "tenseal-naive" else 300)
        else:
            assert r["checked"] is True  # the decrypted sum was compared with numpy's
            assert r["subjects"] == 300 and r["key_bits"] == 512
    assert by["numpy"]["bytes_per_subject"] == 8.0 and by["numpy"]["ratio_to_numpy"] == 1.0
    assert by["phe-naive"]["measured_subjects"] == 40
    assert by["phe-naive"]["encrypt_online_us_per_subject"] is None
    packed = by["paillier-packed"]
    assert packed["measured_subjects"] == 300
    assert packed["slot_bits"] == p["slot_bits"]
    assert packed["slots_per_ciphertext"] == p["slots_per_ciphertext"][0]
    assert set(packed["speedup_vs_phe_naive"]) >= {"aggregate", "encrypt", "decrypt"}
    djn = by["paillier-packed-djn"]  # short exponents: same layout, same bytes, checked sum
    assert djn["checked"] is True and djn["bytes_per_subject"] == packed["bytes_per_subject"]
    assert djn["encrypt_with_openings_us_per_subject"] > 0
    assert packed["encrypt_with_openings_us_per_subject"] is None
    assert by["numpy"]["speedup_vs_phe_naive"] is None
    # Paillier targets apply to >= 2048-bit keys only; the BFV ratio is checked at any size
    assert [a["target"] for a in doc["acceptance"]] == [
        "bfv aggregation per subject-delta, ratio to numpy"
    ]


def test_wrong_decryption_aborts(
    keys: aggregate.KeypairFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = PackedPaillier.decrypt

    def off_by_one(self: PackedPaillier, ct: Any, sk: PaillierPrivateKey) -> Any:
        out = real(self, ct, sk)
        out[-1] += 1
        return out

    monkeypatch.setattr(PackedPaillier, "decrypt", off_by_one)
    with pytest.raises(CorrectnessError, match="paillier-packed"):
        aggregate.run(TINY, progress=quiet(), _keypair=keys)
    out = tmp_path / "out.json"
    argv = ["--subjects", "300", "--agencies", "2", "--key-bits", "512", "--quiet"]
    assert aggregate.main([*argv, "--json", str(out)], _keypair=keys) == 1
    assert not out.exists()  # nothing written when a check fails


def test_main_prints_table_and_writes_json(
    keys: aggregate.KeypairFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sub" / "agg.json"
    argv = [
        "--quick",
        "--subjects",
        "200",
        "--agencies",
        "3",
        "--key-bits",
        "512",
        "--phe-subjects",
        "20",
        "--repetitions",
        "1",
        "--quiet",
        "--no-he",
        "--json",
        str(out),
    ]
    assert aggregate.main(argv, _keypair=keys) == 0
    doc = json.loads(out.read_text())
    assert doc["params"]["quick"] is True and doc["params"]["phe_subjects"] == 20
    assert len(doc["results"]) == 4  # --no-he: the TenSEAL rows are skipped
    printed = capsys.readouterr().out
    assert "paillier-packed" in printed and "phe-naive" in printed and "correctness" in printed
    assert "bfv" not in printed


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert aggregate.main(["--quick", "--agencies", "1", "--quiet"]) == 2
    assert "at least 2 agencies" in capsys.readouterr().err


def test_agency_vectors_are_seeded_and_bounded(city: Catalog) -> None:
    a = aggregate.agency_vectors(city, 9, 500, event_rate=0.3, seed=7)
    b = aggregate.agency_vectors(city, 9, 500, event_rate=0.3, seed=7)
    assert [x.name for x in a] == [x.name for x in b]
    assert all(np.array_equal(x.vector, y.vector) for x, y in zip(a, b, strict=True))
    assert len({x.name for x in a}) == 9  # offices beyond the catalog's agencies are numbered
    for v in a:
        assert v.vector.dtype == np.int64 and v.vector.shape == (500,)
        assert int(np.abs(v.vector).max()) <= v.bound == city.agency_period_bound(v.agency)
    layout, multiplicity = aggregate.layout_for(city, 2048, 9)
    assert multiplicity == 2
    assert sum(v.bound for v in a) <= layout.max_value


def test_acceptance_flags_missed_targets() -> None:
    rec = {
        "backend": "paillier-packed",
        "key_bits": 2048,
        "subjects": 10,
        "bytes_per_subject": 9.0,
        "speedup_vs_phe_naive": {"aggregate": 150.0, "encrypt": 20.0},
    }
    met = {a["target"]: a["met"] for a in aggregate.acceptance([rec])}
    assert list(met.values()) == [True, False, False]
    djn = {"backend": "paillier-packed-djn", "key_bits": 2048, "subjects": 10}
    fast, slow = {**djn, "encrypt_us_per_subject": 19.9}, {**djn, "encrypt_us_per_subject": 20.1}
    today = {**rec, "encrypt_us_per_subject": 60.0}
    got = aggregate.acceptance([today, fast, slow])[3:]
    assert [(a["met"], a["baseline_full_exponent"]) for a in got] == [(True, 60.0), (False, 60.0)]


def test_report_helpers(tmp_path: Path) -> None:
    calls: list[int] = []
    t = report.time_call(lambda: calls.append(1), repeat=3, min_sample_ns=1)
    assert len(t.samples_ns) == 3 and len(calls) == 1 + 3 * t.calls_per_sample
    ns, value = report.time_once(lambda: 42)
    assert value == 42 and ns >= 0
    table = report.format_table(
        [{"name": "a", "x": 1.5}, {"name": "bb", "x": None}],
        [report.Column("name", "name"), report.Column("x", "x", "{:.2f}")],
    )
    assert table.splitlines() == ["name     x", "----  ----", "a     1.50", "bb       -"]
    with pytest.raises(ValueError):
        report.write_json({"x": float("nan")}, tmp_path / "nan.json")
    assert report.default_results_path("aggregate", quick=True).name == "aggregate-quick.json"


def test_environment_record() -> None:
    env = environment()
    json.dumps(env)
    assert env["libraries"]["numpy"] == np.__version__
    assert env["cpu_count"] is None or env["cpu_count"] >= 1
