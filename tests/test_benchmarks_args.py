"""Benchmark runners: bad flags and refused inputs exit 2 with a clear message, before any
work (issue 12, item 4: ``--catalog nope.toml`` or ``--key-bits 100`` used to exit 1, which
the README reserves for failed checks, with a traceback)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from benchmarks import aggregate, grade, reveal
from benchmarks.__main__ import main as bench_main

CITY_TEXT = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")


@pytest.mark.parametrize(
    ("suite", "argv", "said"),
    [
        (aggregate, ["--catalog", "nope.toml"], "--catalog"),
        (aggregate, ["--key-bits", "100"], "--key-bits"),
        (aggregate, ["--key-bits", "1024"], "below 2048"),
        (aggregate, ["--subjects", "0"], "--subjects"),
        (aggregate, ["--repetitions", "-1"], "--repetitions"),
        (aggregate, ["--key", "2048"], "unrecognized arguments"),
        (grade, ["--catalog", "nope.toml"], "--catalog"),
        (grade, ["--catalg", "city"], "unrecognized arguments"),
        (reveal, ["--bits", "100"], "--bits"),
        (reveal, ["--k", "6", "--n", "5"], "--k <= --n"),
        (reveal, ["--n", "0"], "--n"),
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(
    suite: object, argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert suite.main([*argv, "--quiet"]) == 2  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_unwritable_json_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x", "utf-8")
    for suite in (aggregate, grade, reveal):
        assert suite.main(["--quick", "--quiet", "--json", str(blocker / "r.json")]) == 2
        assert "--json" in capsys.readouterr().err


@pytest.mark.parametrize("suite", [aggregate, grade])
def test_a_catalog_with_lint_errors_is_refused(
    suite: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "own.toml"
    bad.write_text(CITY_TEXT.replace("delta = -5\n", "delta = -150\n", 1), "utf-8")
    assert suite.main(["--quick", "--quiet", "--catalog", str(bad)]) == 2  # type: ignore[attr-defined]
    err = capsys.readouterr().err
    assert "refused" in err and "SC49.proportionality" in err and "--allow-lint-errors" in err


def test_dispatcher(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["agregate"]) == 2
    assert "did you mean 'aggregate'?" in capsys.readouterr().err
    assert bench_main([]) == 2
    assert bench_main(["--help"]) == 0
    assert "python -m benchmarks SUITE --help" in capsys.readouterr().out
    assert bench_main(["reveal", "--help"]) == 0
    assert "--bits" in capsys.readouterr().out
