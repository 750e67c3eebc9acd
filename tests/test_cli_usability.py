"""What a careful user sees (issue 12, items 3, 4 and 8): versions, usage, output paths,
dates, flags named in errors, findings laid out, and runners that lint first."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from psc.cli import main as cli_main
from psc.cli.main import main

CITY_TEXT = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
TINY = ["--subjects", "40", "--periods", "1", "--key-bits", "512", "--workers", "1"]


def _exit(argv: list[str]) -> int:
    """The exit code of a command line, whether returned or raised by argparse."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(["--version"]) == 0
    assert capsys.readouterr().out.startswith("psc ")


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["lint", "city", "--bogus"], "usage: psc lint"),
        (["catalog", "city", "--verbose"], "usage: psc catalog"),
        (["pia", "demo", "--out", "x", "--dat", "2026-01-01"], "usage: psc pia"),
        (["demo", "--subject", "5"], "usage: psc demo"),
        (
            ["log", "verify", "--db", "x.db", "--public-key", "00", "--key", "0"],
            "usage: psc log verify",
        ),
    ],
)
def test_unknown_flag_shows_the_subcommand_usage(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments" in err


def test_lint_json_dash_writes_json_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "c.toml"
    bad.write_text(CITY_TEXT.replace("delta = -5\n", "delta = -150\n", 1), "utf-8")
    assert main(["lint", str(bad), "--json", "-"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["summary"]["exit_code"] == 1
    assert "SC49.proportionality" in err
    assert not (tmp_path / "-").exists()


def test_findings_are_laid_out_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text(
        CITY_TEXT.replace("delta = -5\n", "delta = -150\n", 1).replace(
            "evidence_required = true", "evidence_required = false", 1
        ),
        "utf-8",
    )
    assert main(["lint", str(bad)]) == 1
    out = capsys.readouterr().out
    blocks = [b for b in out.split("\n\n") if b.startswith("error")]
    assert len(blocks) >= 2
    for block in blocks:
        header, message, fix = block.splitlines()
        assert header.split()[1] and header.rstrip().endswith("]")
        assert message.startswith("        ") and message.rstrip()[-1] in ".)!?"
        assert fix.startswith("        fix: ")
    assert " Fix: " not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["lint", "city", "--today", "2026-13-01"],
        ["lint", "city", "--today", "yesterday"],
        ["pia", "demo", "--out", "x", "--date", "2026-11-31"],
    ],
)
def test_bad_dates_say_how_to_write_one(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit(argv) == 2
    err = capsys.readouterr().err
    assert "is not a date; write YYYY-MM-DD" in err and "fromisoformat" not in err


def test_unwritable_outputs_are_refused_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", "utf-8")
    assert main(["lint", "city", "--json", str(blocker / "r.json")]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["pia", "demo", "--out", str(blocker / "dir")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["demo", *TINY, "--out", str(tmp_path / "o"), "--json", str(blocker / "j")]) == 2
    err = capsys.readouterr().err
    assert "--json" in err and not (tmp_path / "o").exists()
    assert main(["demo", *TINY, "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--access-sample", "-1"], "--access-sample"),
        (["--workers", "0"], "--workers"),
        (["--workers", "-2"], "--workers"),
        (["--subjects", "0"], "--subjects"),
        (["--periods", "0"], "--periods"),
        (["--agencies", "0"], "--agencies"),
        (["--epsilon", "1/0"], "--epsilon"),
        (["--epsilon", "0"], "--epsilon"),
        (["--epsilon", "one"], "--epsilon"),
    ],
)
def test_demo_bad_numbers_name_the_flag(
    flags: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = dict(zip(TINY[::2], TINY[1::2], strict=True))
    base.update(dict(zip(flags[::2], flags[1::2], strict=True)))
    argv = ["demo", "--out", str(tmp_path / "o"), *[x for kv in base.items() for x in kv]]
    assert _exit(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    if "usage:" not in err:  # our own message: it names this flag and no other
        others = {"--subjects", "--periods", "--workers", "--access-sample", "--agencies"}
        assert not [o for o in others - {named} if o in err], err
    assert not (tmp_path / "o").exists()


def test_demo_refuses_a_catalog_with_lint_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "own.toml"
    bad.write_text(CITY_TEXT.replace("delta = -5\n", "delta = -150\n", 1), "utf-8")
    assert main(["demo", *TINY, "--catalog", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "SC49.proportionality" in err and "--allow-lint-errors" in err
    assert not (tmp_path / "o").exists()


def test_demo_refuses_a_catalog_without_the_required_purpose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "own.toml"
    own.write_text(CITY_TEXT.replace(', "subject-self-access"]', "]", 1), "utf-8")
    assert main(["demo", *TINY, "--catalog", str(own), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "P14.self-access" in err and "subject-self-access" in err


def test_demo_allow_lint_errors_runs_and_prints_them_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "own.toml"
    bad.write_text(CITY_TEXT.replace("delta = -5\n", "delta = -150\n", 1), "utf-8")
    argv = ["demo", *TINY, "--catalog", str(bad), "--out", str(tmp_path / "o")]
    argv += ["--reveal", "trusted", "--access-sample", "2", "--json", "-"]
    assert main([*argv, "--allow-lint-errors"]) == 0
    out, err = capsys.readouterr()
    assert err.index("RUNNING DESPITE") < err.index("psc demo: 40 subjects")
    assert "SC49.proportionality" in err
    assert json.loads(out)["ok"] is True  # --json -: stdout is the JSON document only


def test_missing_catalog_close_to_a_builtin_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "citty"]) == 2
    assert "did you mean the built-in 'city'?" in capsys.readouterr().err


def test_an_internal_error_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from psc.cli import catalog_cmd

    def boom(args: object) -> int:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(catalog_cmd, "run", boom)
    monkeypatch.delenv("PSC_TRACEBACK", raising=False)
    assert cli_main.main(["catalog", "city"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: simulated bug" in err and "Traceback" not in err
