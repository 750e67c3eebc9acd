"""The scale suite on tiny, INSECURE parameters: the document's shape, the per-party costs,
the Dask scaling record (two bounded LocalClusters, closed by the suite), acceptance lines
computed from the figures, exit codes, and nothing written when a check fails."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report, scale
from psc.catalog import load_catalog
from psc.hazmat.packing import SlotLayout

pytestmark = pytest.mark.timeout(600)

TINY = scale.ScaleConfig(
    subjects=(150, 300),
    agencies=7,
    periods=1,
    key_bits=512,
    reveal="trusted",
    dask_subjects=3000,
    quick=True,
    base_blocks=3,
    reveal_subjects=600,
    repeats=2,
)


def quiet() -> report.Progress:
    return report.Progress("scale", quiet=True)


def test_tiny_run_document(tmp_path: Path) -> None:
    doc = scale.run(TINY, progress=quiet())
    json.dumps(doc, allow_nan=False)
    assert doc["suite"] == "scale" and list(doc["params"]["subjects"]) == [150, 300]
    e2e = doc["end_to_end"]
    assert [r["subjects"] for r in e2e] == [150, 300]
    for r in e2e:
        assert r["checks"] == {"ok": True, "grades_match_oracle": True, "log_verified": True}
        assert r["peak_rss_bytes"] > 10 * 2**20  # a Python process with numpy loaded
        u = r["us_per_subject"]
        ph = r["phase_seconds"]
        assert u["agencies"] == pytest.approx(
            (ph["precompute"] + ph["submit"]) * 1e6 / r["subjects"]
        )
        assert u["total"] == pytest.approx(sum(ph.values()) * 1e6 / r["subjects"])
    assert e2e[0]["cost_ratio_to_smallest"] == 1.0
    d = doc["dask"]
    assert [x["workers"] for x in d["runs"]] == [1, 2] and "numpy" in d["checked"]
    assert d["subjects"] >= 3000 and d["subjects"] % d["slots_per_ciphertext"] == 0
    assert d["efficiency"] == pytest.approx(d["runs"][0]["seconds"] / (2 * d["runs"][1]["seconds"]))
    assert d["runs"][0]["seconds"] == min(d["seconds_all"]["1"])  # fastest of the rounds
    assert [len(d["seconds_all"][w]) for w in ("1", "2")] == [2, 2]
    assert d["machine_control"]["efficiency"] > 0
    assert len(d["load_average_before"]) == 3 and len(d["load_average_after"]) == 3
    r = d["reveal"]
    assert [x["workers"] for x in r["runs"]] == [1, 2] and "reference scorer" in r["checked"]
    assert r["subjects"] >= 600 and r["subjects"] % d["slots_per_ciphertext"] == 0
    assert r["efficiency"] == pytest.approx(r["runs"][0]["seconds"] / (2 * r["runs"][1]["seconds"]))
    # at most two shards in flight per worker: 4 shards per worker, window 2 per worker
    per_shard = -(-r["blocks"] // 4)
    assert 0 < r["peak_blocks_in_flight"]["1"] <= 2 * per_shard * r["labels"]
    assert e2e[1]["peak_rss_ratio_to_smallest"] > 0 and e2e[1]["subjects_ratio_to_smallest"] == 2
    targets = [a["target"] for a in doc["acceptance"]]
    assert targets[0].startswith("cost per subject at 300")
    assert "aggregation" in targets[1] and "sharded reveal" in targets[2]
    text = scale.render(doc)
    assert "efficiency" in text and "peak RSS" in text
    assert doc["extrapolation_740k"]["extrapolated"] is True and "EXTRAPOLATED" in text


def test_a_wrong_merged_sum_aborts_before_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = SlotLayout.unpack

    def off(self: SlotLayout, *a: Any, **k: Any) -> Any:
        out = real(self, *a, **k)
        out[0] += 1
        return out

    monkeypatch.setattr(SlotLayout, "unpack", off)
    with pytest.raises(scale.CorrectnessError, match="merged sum is wrong"):
        scale.dask_scaling(TINY, quiet())


def test_a_wrong_grade_in_the_sharded_reveal_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reveal's grades are checked against the reference scorer (here made to disagree
    in this process; the workers run the real one)."""
    import psc.oracle

    real = psc.oracle.grades_of

    def off(*a: Any, **k: Any) -> Any:
        out = real(*a, **k).copy()
        out[-1] = (out[-1] + 1) % 3
        return out

    monkeypatch.setattr(psc.oracle, "grades_of", off)
    with pytest.raises(scale.CorrectnessError, match="grade is wrong"):
        scale.dask_scaling(TINY, quiet())


def test_acceptance_lines() -> None:
    def rec(n: int, total: float) -> dict[str, Any]:
        return {"subjects": n, "us_per_subject": {"total": total}}

    doc = {
        "end_to_end": [rec(10, 100.0), rec(100, 151.0)],
        "dask": {"efficiency": 0.8, "reveal": {"efficiency": 0.79}},
    }
    got = scale.acceptance(doc)
    assert [(a["met"], round(a["value"], 2)) for a in got] == [
        (False, 1.51),
        (True, 0.8),
        (False, 0.79),
    ]


def test_extrapolation_scales_each_phase_by_what_it_grows_with() -> None:
    rec = {
        "subjects": 1000,
        "agencies": 7,
        "periods": 1,
        "reveal": "trusted",
        "phase_seconds": {"precompute": 7.0, "reveal": 2.0, "access": 3.0},
        "peak_rss_bytes": 100,
        "peak_rss_children_bytes": 40,
    }
    x = scale.extrapolate({"end_to_end": [{**rec, "subjects": 10}, rec]}, 7000, 10, 3)
    assert x["extrapolated"] is True and "1000 subjects" in x["from"]
    envelopes = (7000 * 10 * 3) / (1000 * 7 * 1)
    assert x["phase_seconds"] == pytest.approx(
        {"precompute": 7.0 * envelopes, "reveal": 2.0 * 7, "access": 3.0}
    )
    assert x["total_seconds"] == pytest.approx(sum(x["phase_seconds"].values()))
    assert x["peak_rss_bytes"] == pytest.approx(140 * envelopes)


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert scale.main(["--quick", "--subjects", "5", "--quiet"]) == 2
    assert "at least 100" in capsys.readouterr().err
    assert scale.main(["--reveal", "nope"]) == 2
    with pytest.raises(ValueError, match="at least 7"):
        dataclasses.replace(TINY, agencies=3)


def test_national_plan_is_computed_from_the_results_fields(tmp_path: Path) -> None:
    from papers import national_plan

    e2e = {
        "subjects": 1000,
        "agencies": 10,
        "envelopes": 30,
        "ciphertext_blocks": 300,  # 30 envelopes x 1.25 ciphertexts x 8 blocks
        "slots_per_ciphertext": 132,
        "phase_seconds": {"precompute": 3.0, "submit": 0.6, "ingest": 0.3, "reveal": 0.5},
        "bytes_submitted": 300 * 520,
        "reveal": "trusted",
    }
    doc = {
        "params": {"catalog": "city", "key_bits": 2048},
        "end_to_end": [{**e2e, "subjects": 100}, e2e],
        "dask": {"runs": [{"block_products_per_worker_second": 1e5}], "efficiency": 0.9},
        "env": {
            "timestamp_utc": "t",
            "git": {"commit": "c" * 40},
            "cpu_model": "cpu",
            "cpu_count": 2,
            "load_average_1_5_15min": [1, 1, 1],
        },
    }
    p = national_plan.plan(doc, "x.json")
    figures = {name: value for name, value, _ in p["plan"]}
    blocks = figures["ciphertext blocks per monthly period"]
    slots = dict((n, v) for n, v, _ in p["derived"])
    per_vector = -(-national_plan.PERSONS // int(next(v for n, v in slots.items() if "slots" in n)))
    assert blocks == pytest.approx(47 * (300 / (30 * 8)) * per_vector)
    agency = figures["agency cores for a 24-hour cycle (all 47 agencies)"]
    assert agency == pytest.approx(blocks * (2 * 3.0 + 0.6) / 300 / 86400)
    assert figures["bytes on the wire per period (submissions)"] == pytest.approx(blocks * 520)
    text = national_plan.render(p, "x.json")
    assert "x.json: end_to_end[1].phase_seconds.precompute" in text
    assert not any("sharded" in name for name in figures)  # a first-version file: no reveal
    doc["dask"]["reveal"] = {"runs": [{"decryptions_per_worker_second": 400.0}], "efficiency": 1}
    figures = {name: value for name, value, _ in national_plan.plan(doc, "x.json")["plan"]}
    labels = 1 + len(load_catalog("city").cap_labels())
    assert figures["key-holder workers, sharded trusted reveal at the Dask rate"] == (
        pytest.approx(per_vector * labels / (400.0 * 86400))
    )


def test_national_plan_reads_the_newer_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from papers import national_plan

    for name, stamp in (
        ("scale-full.json", "2026-12-01T00:00:00"),
        ("scale-quick.json", "2026-12-03T00:00:00"),
    ):
        (tmp_path / name).write_text(json.dumps({"env": {"timestamp_utc": stamp}}))
    monkeypatch.setattr(national_plan, "RESULTS", tmp_path)
    assert national_plan._default_results().name == "scale-quick.json"
    (tmp_path / "scale-full.json").write_text(json.dumps({"env": {"timestamp_utc": "2027"}}))
    assert national_plan._default_results().name == "scale-full.json"


def test_a_run_that_raises_stops_the_suite_with_its_reason() -> None:
    """A 128-bit key cannot hold the catalog's slots: the run stops in its process and the
    suite raises :class:`RunFailed` naming the size and the error (``main`` prints it in one
    line and exits 1)."""
    bad = dataclasses.replace(TINY, subjects=(150,), key_bits=128)
    with pytest.raises(scale.RunFailed, match="at 150 subjects stopped"):
        scale.end_to_end(bad, 150)
