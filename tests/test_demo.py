"""``psc demo`` and the reference driver: grades revealed through every role equal the oracle
(committee: the oracle's grade of raw score + the noise the members drew)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from psc.catalog import Catalog
from psc.cli.main import main
from psc.events import IntArray
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.sim import driver
from psc.sim.city import simulate_city
from psc.sim.deployment import SimulationNoiseWitness
from psc.sim.driver import run


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
    # every served party ran as its own process (the default), each on its own port
    assert {"aggregator", "registry", "key-holder"} <= set(doc["processes"])
    assert len(set(doc["processes"].values())) == len(doc["processes"]) == 3 + doc["agencies"]
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
    assert "3-of-5 key committee" in printed and "epsilon spent per subject: 2" in printed
    assert "score 1 + cap counters 1" in printed  # the whole loss, caps included
    doc = json.loads(js.read_text())
    assert doc["reveal"] == "committee" and doc["ok"] is True
    assert (doc["committee_k"], doc["committee_n"], doc["committee_honest"]) == (3, 5, 3)
    assert doc["epsilon_spent"] == 2.0 and doc["epsilon_per_release"] == "2"
    assert doc["epsilon_breakdown"] == "score 1 + cap counters 1"
    assert doc["mechanism"] == "distributed-discrete-laplace"
    assert 0 < doc["delta_spent"] < 1e-15
    # exact, given the noise the members drew (the god view), for every subject...
    assert "grades_match_oracle: true" in printed
    assert doc["grades_match_oracle"] is True and doc["mismatches"] == 0
    assert doc["noise_witnessed"] == 300 and "noise the members drew" in doc["grades_compared_with"]
    assert doc["access_consistent"] == doc["access_checked"] == 25
    # ...while against the noiseless oracle the grades are noisy, as the noise predicts
    rate, want = doc["misgrade_rate_vs_noiseless_oracle"], doc["expected_misgrade_rate"]
    assert rate > 0 and abs(rate - want) < 0.15
    assert "misgrade_rate_vs_noiseless_oracle" in printed
    report = (out / "report.md").read_text()
    assert "epsilon spent per subject 2" in report and "Grades match the oracle: yes" in report
    assert (out / "committee.sqlite").exists()


def test_cli_demo_in_process_keeps_the_single_process_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    js = tmp_path / "demo.json"
    args = ["demo", "--subjects", "200", "--periods", "2", "--key-bits", "512", "--seed", "2"]
    args += ["--reveal", "trusted", "--in-process", "--workers", "1", "--access-sample", "5"]
    assert main([*args, "--out", str(tmp_path / "out"), "--json", str(js)]) == 0
    doc = json.loads(js.read_text())
    assert doc["processes"] == {} and doc["ok"] is True and doc["grades_match_oracle"] is True
    assert "precompute" in doc["phase_seconds"]  # the single-process driver's phases
    assert "checks_passed: true" in capsys.readouterr().out


def test_cli_demo_refuses_processes_for_the_one_process_reveals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path)]
    assert main(["demo", "--subjects", "10", "--processes", "--reveal", "exact", *out]) == 2
    assert "runs in one process" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one or the other
        main(["demo", "--subjects", "10", "--processes", "--in-process", *out])


def test_cli_demo_refuses_a_bad_committee(tmp_path: Path) -> None:
    args = ["demo", "--subjects", "10", "--out", str(tmp_path), "--threshold", "4"]
    assert main([*args, "--members", "3"]) == 2
    with pytest.raises(SystemExit):  # --reveal is a choice
        main(["demo", "--subjects", "10", "--out", str(tmp_path), "--reveal", "oracle"])


@pytest.mark.parametrize("workers", [1, 2])  # members in process, and in their own processes
def test_committee_grades_equal_the_oracle_of_score_plus_the_drawn_noise(
    city: Catalog, workers: int
) -> None:
    sim = simulate_city(city, subjects=400, agencies=9, periods=3, seed=4)
    r = run(sim, key_bits=512, workers=workers, access_sample=10, reveal="committee")
    assert r.grades_match_oracle and r.mismatches == 0 and r.ok
    assert r.noise_witnessed == 400 and r.access_consistent == r.access_checked == 10
    # the noise is real: many grades differ from the noiseless oracle's
    assert r.misgrade_rate_vs_noiseless_oracle > 0.2 and r.grades != r.oracle_grades


def test_the_exact_committee_check_catches_a_wrong_noise_record(
    city: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the noise the driver believes was drawn is off (by -1500 in total) for every
    subject, grades no longer match: the exact check is not vacuous."""

    class Shifted(SimulationNoiseWitness):
        def __call__(
            self,
            member: int,
            release: str,
            period: int,
            label: str,
            slots: IntArray,
            noise: IntArray,
        ) -> None:
            super().__call__(member, release, period, label, slots, noise - 300)

    monkeypatch.setattr(driver, "SimulationNoiseWitness", Shifted)
    sim = simulate_city(city, subjects=200, agencies=9, periods=3, seed=4)
    r = run(sim, key_bits=512, workers=1, access_sample=5, reveal="committee")
    assert not r.grades_match_oracle and not r.ok and r.mismatches > 150


def test_noise_witness_sums_members_and_refuses_missing_or_repeated_draws() -> None:
    w = SimulationNoiseWitness()
    try:
        w(1, "grade", 7, "score", np.array([0, 1, 2]), np.array([5, -3, 0]))
        w(2, "grade", 7, "score", np.array([0, 1]), np.array([1, 1]))
        w(2, "grade", 8, "score", np.array([2]), np.array([100]))  # another period: not counted
        w(2, "grade", 7, "C", np.array([2]), np.array([100]))  # a cap counter: another label
        w(3, "statistic:districts", 7, "score", np.array([2]), np.array([9]))  # not a grade
        total, ok = w.totals(7, [1, 2], 3)
        assert total.tolist() == [6, -2, 0] and ok.tolist() == [True, True, False]
        assert w.totals(7, [2], 3, "C")[0].tolist() == [0, 0, 100]
        w(1, "grade", 7, "score", np.array([1]), np.array([4]))  # a second draw for slot 1
        total, ok = w.totals(7, [1], 3)
        assert ok.tolist() == [True, False, True]
        assert w.totals(7, [3], 3)[1].tolist() == [False, False, False]
    finally:
        w.close()


@pytest.mark.slow
def test_demo_at_the_make_demo_size(tmp_path: Path) -> None:
    """What `make demo` runs (10,000 subjects, 2048-bit keys, validity proofs and the
    committee): checked here so CI sees it (about two minutes on 2 cores)."""
    js = tmp_path / "out.json"
    code = main(["demo", "--subjects", "10000", "--json", str(js), "--out", str(tmp_path / "o")])
    doc = json.loads(js.read_text())
    assert code == 0 and doc["ok"] is True and doc["subjects"] == 10000
    assert doc["reveal"] == "committee" and doc["epsilon_spent"] == 2.0
    assert doc["grades_match_oracle"] is True and doc["noise_witnessed"] == 10000


def test_driver_refuses_an_unknown_reveal(city: Catalog) -> None:
    sim = simulate_city(city, subjects=10, agencies=9, periods=1, seed=1)
    with pytest.raises(ValueError, match="reveal must be 'trusted', 'committee', 'he' or 'exact'"):
        run(sim, key_bits=512, reveal="oracle")
