"""The scale suite on tiny, INSECURE parameters: the document's shape, the per-party costs,
the Dask scaling record (two bounded LocalClusters, closed by the suite), acceptance lines
computed from the figures, exit codes, and nothing written when a check fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report, scale
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
    assert d["machine_control"]["efficiency"] > 0
    targets = [a["target"] for a in doc["acceptance"]]
    assert targets[0].startswith("cost per subject at 300") and "Dask" in targets[1]
    text = scale.render(doc)
    assert "efficiency" in text and "peak RSS" in text


def test_a_wrong_merged_sum_aborts_before_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = SlotLayout.unpack

    def off(self: SlotLayout, *a: Any, **k: Any) -> Any:
        out = real(self, *a, **k)
        out[0] += 1
        return out

    monkeypatch.setattr(SlotLayout, "unpack", off)
    with pytest.raises(scale.CorrectnessError, match="merged sum is wrong"):
        scale.dask_scaling(TINY, quiet())


def test_acceptance_lines() -> None:
    def rec(n: int, total: float) -> dict[str, Any]:
        return {"subjects": n, "us_per_subject": {"total": total}}

    doc = {"end_to_end": [rec(10, 100.0), rec(100, 151.0)], "dask": {"efficiency": 0.8}}
    got = scale.acceptance(doc)
    assert [(a["met"], round(a["value"], 2)) for a in got] == [(False, 1.51), (True, 0.8)]


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert scale.main(["--quick", "--subjects", "5", "--quiet"]) == 2
    assert "at least 100" in capsys.readouterr().err
    assert scale.main(["--reveal", "nope"]) == 2


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
