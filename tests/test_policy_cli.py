"""``psc lint``, ``psc pia`` and ``psc rights``: exit codes and outputs."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from psc.cli.main import main

CITY_TEXT = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
DEMO_TEXT = resources.files("psc.policy").joinpath("demo-deployment.toml").read_text("utf-8")


def write(tmp: Path, name: str, text: str) -> str:
    p = tmp / name
    p.write_text(text, "utf-8")
    return str(p)


@pytest.mark.parametrize("args", [["city"], ["company"], ["city", "--deployment", "demo"]])
def test_lint_passes_shipped_inputs(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", *args, "--today", "2026-11-25"]) == 0
    assert "0 error(s)" in capsys.readouterr().out


def test_lint_refuses_sensitive_rule_with_article(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = write(
        tmp_path,
        "c.toml",
        CITY_TEXT.replace(
            "Traffic ticket confirmed by", "Visits to the letters-and-calls office confirmed by"
        ),
    )
    assert main(["lint", cat]) == 1
    out = capsys.readouterr().out
    assert "P11.sensitive [rules.traffic.violation.description]" in out and "PIPL Art. 28" in out


def test_lint_refuses_disproportionate_rule_with_article(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = write(tmp_path, "c.toml", CITY_TEXT.replace("delta = -5\n", "delta = -150\n", 1))
    assert main(["lint", cat, "--json", str(tmp_path / "r" / "report.json")]) == 1
    out = capsys.readouterr().out
    assert "SC49.proportionality [rules.traffic.violation.delta]" in out and "2020 No. 49" in out
    data = json.loads((tmp_path / "r" / "report.json").read_text("utf-8"))
    assert data["summary"]["exit_code"] == 1
    assert any(
        f["check"] == "SC49.proportionality" and f["severity"] == "error" for f in data["findings"]
    )


def test_lint_deployment_with_unrelated_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dep = write(
        tmp_path,
        "d.toml",
        DEMO_TEXT.replace(
            "asks for a larger rental deposit", "bars the subject's children from school admission"
        ),
    )
    assert main(["lint", "city", "--deployment", dep, "--today", "2026-11-25"]) == 1
    assert "EUAI5.unrelated-use" in capsys.readouterr().out


@pytest.mark.parametrize(
    "setup",
    [
        lambda t: ["lint", str(t / "missing.toml")],
        lambda t: ["lint", write(t, "bad.toml", "not = = toml")],
        lambda t: [
            "lint",
            write(t, "invalid.toml", CITY_TEXT.replace("base_score = 1000", 'base_score = "high"')),
        ],
        lambda t: ["lint", "city", "--deployment", str(t / "missing-dep.toml")],
        lambda t: [
            "lint",
            "city",
            "--deployment",
            write(t, "d.toml", DEMO_TEXT.replace("population = 740000", "population = []")),
        ],
    ],
)
def test_lint_unreadable_input_exits_2(
    setup: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(setup(tmp_path)) == 2  # type: ignore[operator]
    assert "cannot read input" in capsys.readouterr().err


def test_lint_verbose_lists_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "city", "-v"]) == 0
    out = capsys.readouterr().out
    assert "pass    P7.retention-cap" in out and "not-run P15.audit" in out


def test_pia_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pia", "demo", "--out", str(tmp_path / "pia"), "--date", "2026-11-20"]) == 0
    assert (
        (tmp_path / "pia" / "pia.md")
        .read_text("utf-8")
        .startswith("# Personal-information impact assessment: demo-city")
    )
    assert (tmp_path / "pia" / "pia.html").read_text("utf-8").startswith("<!DOCTYPE html>")
    assert "wrote" in capsys.readouterr().out


def test_pia_on_failing_deployment_writes_and_exits_1(tmp_path: Path) -> None:
    dep = write(tmp_path, "d.toml", DEMO_TEXT.replace("key_bits = 3072", "key_bits = 1024"))
    assert main(["pia", dep, "--out", str(tmp_path / "o"), "--date", "2026-11-20"]) == 1
    assert "P4.key-size" in (tmp_path / "o" / "pia.md").read_text("utf-8")
    assert main(["pia", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o")]) == 2


def test_rights_workflow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "rights.db")
    base = ["rights", "--db", db, "--deployment", "demo"]
    assert main([*base, "--today", "2026-11-25", "open", "access", "--subject", "S-1"]) == 0
    assert (
        main(
            [
                *base,
                "--today",
                "2026-11-25",
                "open",
                "correction",
                "--subject",
                "S-1",
                "--ref",
                "ENV-1/ev-2",
                "--rule",
                "traffic.violation",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                *base,
                "--today",
                "2026-11-25",
                "open",
                "consent-withdrawal",
                "--subject",
                "S-1",
                "--ref",
                "ab" * 16,
                "--relying-party",
                "bank-1",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                *base,
                "--today",
                "2026-11-25",
                "open",
                "repair",
                "--subject",
                "S-2",
                "--ref",
                "EV-5",
                "--rule",
                "tax.arrears",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main([*base, "--today", "2026-12-16", "overdue"]) == 1
    )  # correction (20 days) and repair (3 working days) late
    out = capsys.readouterr().out
    assert "2 overdue request(s) as of 2026-12-16" in out
    assert (
        main(
            [
                *base,
                "--today",
                "2026-12-16",
                "decide",
                "2",
                "--grant",
                "--agency",
                "transport-bureau",
                "--delta",
                "5",
                "--period",
                "2026-11",
            ]
        )
        == 0
    )
    assert "(late)" in capsys.readouterr().out
    assert (
        main(
            [*base, "--today", "2026-12-16", "decide", "4", "--grant", "--event-date", "2026-01-10"]
        )
        == 1
    )  # not proven
    assert "not proven" in capsys.readouterr().out
    assert (
        main(
            [
                *base,
                "--today",
                "2026-12-16",
                "decide",
                "1",
                "--refuse",
                "identity not verified; come with an ID card",
            ]
        )
        == 0
    )
    assert main([*base, "--today", "2026-12-16", "overdue"]) == 0
    capsys.readouterr()
    assert main([*base, "list", "--status", "granted"]) == 0
    listed = capsys.readouterr().out
    assert "correction" in listed and "consent-withdrawal" in listed and "access" not in listed


def test_rights_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "r.db")
    assert main(["rights", "--db", db, "open", "repair", "--subject", "S"]) == 1
    assert "needs --ref" in capsys.readouterr().err
    assert main(["rights", "--db", db, "decide", "7", "--grant"]) == 1
    correction = [
        "open",
        "correction",
        "--subject",
        "S",
        "--ref",
        "E",
        "--rule",
        "traffic.violation",
    ]
    assert main(["rights", "--db", db, *correction]) == 0
    assert main(["rights", "--db", db, "decide", "1", "--grant"]) == 1
    assert "--agency, --delta and --period" in capsys.readouterr().err
    assert main(["rights", "--db", str(tmp_path / "no" / "dir" / "r.db"), "list"]) == 2
