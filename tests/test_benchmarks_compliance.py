"""The compliance suite on tiny, INSECURE parameters: five steps, each checked against the
oracle inside its own process, ratios to the clear computed from the recorded figures, the
staircase plot written, exit codes, and nothing written when a check fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import compliance, report

pytestmark = pytest.mark.timeout(600)

TINY = compliance.ComplianceConfig(subjects=300, agencies=7, periods=2, key_bits=512, quick=True)


def test_tiny_run_document_and_plot(tmp_path: Path) -> None:
    doc = compliance.run(TINY, progress=report.Progress("compliance", quiet=True))
    json.dumps(doc, allow_nan=False)
    steps = doc["steps"]
    assert [s["step"] for s in steps] == [s[0] for s in compliance.STEPS]
    clear = steps[0]
    for s in steps:
        for key in ("seconds", "bytes", "peak_rss_bytes"):
            assert s[key] > 0
            assert s["ratio_to_clear"][key] == pytest.approx(s[key] / clear[key])
    assert steps[0]["ratio_to_clear"]["seconds"] == 1.0
    # the protocol steps are cumulative phases of one run
    assert steps[3]["seconds"] >= steps[2]["seconds"] and steps[3]["bytes"] > steps[2]["bytes"]
    assert doc["acceptance"][0]["value"] == steps[-1]["ratio_to_clear"]["seconds"]
    png = compliance.plot(doc, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "pooled-in-the-clear" in compliance.render(doc)


def test_each_step_checks_its_grades(monkeypatch: pytest.MonkeyPatch) -> None:
    real = compliance._oracle_grades

    def shifted(city: Any) -> Any:
        g = real(city)
        g[0] = (g[0] + 1) % len(city.catalog.labels)  # one subject's reference grade wrong
        return g

    monkeypatch.setattr(compliance, "_oracle_grades", shifted)
    with pytest.raises(compliance.CorrectnessError, match="clear"):
        compliance._step_clear(TINY)
    with pytest.raises(compliance.CorrectnessError, match="encrypted"):
        compliance._step_encrypted(TINY)


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert compliance.main(["--quick", "--subjects", "5", "--quiet"]) == 2
    assert "at least 100" in capsys.readouterr().err
    assert compliance.main(["--nope"]) == 2
