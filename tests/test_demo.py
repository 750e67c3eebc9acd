"""``psc demo`` and the reference driver: grades revealed through every role equal the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psc.catalog import Catalog
from psc.cli.main import main
from psc.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.protocol.driver import run
from psc.simulation import simulate_city


def test_driver_small(
    city: Catalog, test_keypair: tuple[PaillierPublicKey, PaillierPrivateKey]
) -> None:
    sim = simulate_city(city, subjects=400, agencies=9, periods=3, seed=4)
    r = run(sim, keypair=test_keypair, workers=1, access_sample=10)
    assert r.grades_match_oracle and r.mismatches == 0
    assert r.grades == r.oracle_grades and sum(r.grades.values()) == 400
    assert r.envelopes == 27 and r.log_size == 10 + 27 + 2  # registrations, envelopes, reveals
    assert r.access_checked == r.access_consistent == 10
    assert r.log_verified
    assert set(r.phase_seconds) == {
        "setup",
        "precompute",
        "submit",
        "ingest",
        "reveal",
        "access",
        "audit",
    }
    assert r.bytes_submitted == r.bytes_by_message["submission"] > 0
    assert any("INSECURE" in n for n in r.notes)


def test_cli_demo_writes_json_report_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    js = tmp_path / "demo.json"
    code = main(
        [
            "demo",
            "--subjects",
            "300",
            "--periods",
            "2",
            "--key-bits",
            "512",
            "--seed",
            "3",
            "--out",
            str(out),
            "--json",
            str(js),
            "--workers",
            "1",
            "--access-sample",
            "5",
            "--reveal",
            "trusted",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert "grades_match_oracle: true" in printed and "3072" in printed
    doc = json.loads(js.read_text())
    for key in (
        "subjects",
        "agencies",
        "periods",
        "grades_match_oracle",
        "phase_seconds",
        "bytes_submitted",
        "log_size",
    ):
        assert key in doc
    assert doc["grades_match_oracle"] is True and doc["subjects"] == 300 and doc["periods"] == 2
    report = (out / "report.md").read_text()
    assert "Grades match the oracle: yes" in report and "grades.png" in report
    assert (out / "grades.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the ledger the demo leaves behind passes `psc log verify`
    key = (out / "log-public-key.hex").read_text().strip()
    assert main(["log", "verify", "--db", str(out / "ledger.sqlite"), "--public-key", key]) == 0


def test_cli_demo_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--subjects", "0", "--out", str(tmp_path)]) == 2
    assert main(["demo", "--subjects", "10", "--agencies", "2", "--out", str(tmp_path)]) == 2
    assert "at least" in capsys.readouterr().err


def test_cli_demo_uses_the_committee_by_default_and_reports_epsilon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    js = tmp_path / "demo.json"
    out = tmp_path / "out"
    args = ["demo", "--subjects", "300", "--periods", "2", "--key-bits", "512", "--seed", "5"]
    code = main([*args, "--out", str(out), "--json", str(js), "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and "checks_passed: true" in printed
    assert "3-of-5 key committee" in printed and "epsilon spent per subject: 1" in printed
    doc = json.loads(js.read_text())
    assert doc["reveal"] == "committee" and doc["ok"] is True
    assert (doc["committee_k"], doc["committee_n"], doc["committee_honest"]) == (3, 5, 3)
    assert doc["epsilon_spent"] == 1.0 and doc["epsilon_per_release"] == "1"
    assert doc["mechanism"] == "distributed-discrete-laplace"
    assert 0 < doc["delta_spent"] < 1e-15
    # noisy grades, as predicted by the noise (the oracle comparison is statistical)
    assert abs(doc["misgrade_rate"] - doc["expected_misgrade_rate"]) < 0.15
    assert "epsilon spent per subject 1" in (out / "report.md").read_text()
    assert (out / "committee.sqlite").exists()


def test_cli_demo_refuses_a_bad_committee(tmp_path: Path) -> None:
    args = ["demo", "--subjects", "10", "--out", str(tmp_path), "--threshold", "4"]
    assert main([*args, "--members", "3"]) == 2
    with pytest.raises(SystemExit):  # --reveal is a choice
        main(["demo", "--subjects", "10", "--out", str(tmp_path), "--reveal", "he"])


@pytest.mark.slow
def test_demo_at_20000_subjects(tmp_path: Path) -> None:
    js = tmp_path / "out.json"
    code = main(["demo", "--subjects", "20000", "--json", str(js), "--out", str(tmp_path / "o")])
    doc = json.loads(js.read_text())
    assert code == 0 and doc["ok"] is True and doc["subjects"] == 20000
    assert doc["reveal"] == "committee" and doc["epsilon_spent"] == 1.0
