"""``python -m papers.build_report``: ``--help`` must not rewrite the report (issue 12, item 8)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from papers import build_report


def test_help_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    report = build_report.OUT
    before = (report.read_bytes(), report.stat().st_mtime_ns)
    assert build_report.main(["--help"]) == 0
    assert "Regenerate papers/report.md" in capsys.readouterr().out
    assert (report.read_bytes(), report.stat().st_mtime_ns) == before


def test_bad_flag_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert build_report.main(["--out", str(out), "--bogus"]) == 2
    assert "unrecognized arguments" in err.getvalue() and not out.exists()


def test_out_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.md"
    assert build_report.main(["--out", str(out), "--check"]) == 1
    assert not out.exists()
    assert build_report.main(["--out", str(out)]) == 0
    assert out.read_text("utf-8") == build_report.build()
    assert build_report.main(["--out", str(out), "--check"]) == 0
    out.write_text("stale\n", "utf-8")
    assert build_report.main(["--out", str(out), "--check"]) == 1
    assert build_report.main(["--out", str(tmp_path / "no" / "dir" / "r.md")]) == 2
