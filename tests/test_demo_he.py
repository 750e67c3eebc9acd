"""``psc demo --reveal he``: the same events graded under CKKS encryption equal the oracle.

Fast tests use a small catalog whose circuit fits the small CKKS profile (N=16384, a few
seconds); the full city profile (N=32768) runs once in the slow group.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from psc.catalog import Catalog, parse_catalog
from psc.cli.main import main
from psc.events import EventTable, IntArray
from psc.exceptions import PolicyViolation
from psc.hazmat.he.circuit import GradingCircuit
from psc.hazmat.he.composites import SMALL_PROFILE
from psc.parties.grading_authority import GradingAuthority
from psc.sim import he_driver as he_reference
from psc.sim.city import simulate_city
from psc.sim.driver import run
from psc.sim.he_driver import SMALL_TEST_CATALOG
from psc.testing import insecure_keypair

# The small HE test catalog, adapted to the protocol run: ingestion takes a period's
# envelope one month later, so retention is 2 months; deltas and counts are lowered so
# the raw-score domain [6, 12] still fits the small profile's composite (ratio 11 <= 12);
# subjects may ask for their own events.
DEMO_HE_CATALOG = (
    SMALL_TEST_CATALOG.replace("months = 1", "months = 2")
    .replace("delta = -2", "delta = -1")
    .replace("max_per_period = 2", "max_per_period = 1")
    .replace(
        'purposes = ["credit-assessment"]',
        'purposes = ["credit-assessment", "subject-self-access"]',
    )
)


@pytest.fixture(scope="module")
def small() -> Catalog:
    return parse_catalog(DEMO_HE_CATALOG)


@pytest.fixture
def authority(small: Catalog) -> GradingAuthority:
    """A fresh authority per run: its grading log and query ledger belong to one deployment."""
    return GradingAuthority.generate(GradingCircuit.for_catalog(small), catalog=small)


def test_he_grades_equal_the_oracle_and_the_paillier_grades(
    small: Catalog, authority: GradingAuthority
) -> None:
    assert GradingCircuit.for_catalog(small).profile is SMALL_PROFILE
    sim = simulate_city(small, subjects=3000, periods=3, seed=2)
    r = run(
        sim,
        keypair=insecure_keypair(0, 512),
        workers=1,
        access_sample=8,
        reveal="he",
        he_authority=authority,
    )
    h = r.he
    assert h is not None and r.reveal == "he"
    assert r.grades_match_oracle and r.ok and r.mismatches == 0
    assert h.mismatches == h.paillier_mismatches == 0 and h.grades_match_paillier
    assert r.grades == r.oracle_grades and sum(r.grades.values()) == 3000
    assert sum(1 for v in r.grades.values() if v) >= 2  # more than one grade occurs
    # parameters next to the times (STYLE.md 8)
    assert (h.profile, h.ring_dimension, h.slots, h.levels) == ("n16384-l10", 16384, 8192, 10)
    assert h.modulus_bits == sum(h.coeff_bits) == 430 <= h.modulus_bound_bits == 438
    assert h.context_bytes == authority.public.byte_size > 0
    assert h.parts == 1 and h.queries == 2  # the batch request and the bank's one-slot query
    # every agency submits every period, zero vectors included (3 periods, one class)
    assert h.score_submissions == 6 and h.cap_submissions == 3
    assert h.submission_bytes > 0 and h.bytes_per_subject == round(h.submission_bytes / 3000, 1)
    assert set(h.seconds) == {"keygen", "submit", "ingest", "grade", "decrypt"}
    assert h.ms_per_subject > 0
    assert {"he-keygen", "he-submit", "he-ingest", "he-reveal"} <= set(r.phase_seconds)
    assert h.relying_party_grade == r.relying_party_grade
    assert set(h.seen) == {
        "agencies",
        "aggregator",
        "grading-authority",
        "registry",
        "relying-party",
    }
    assert len(h.seen["agencies"]) == len(sim.agencies)
    assert "no secret key" in h.seen["aggregator"][0]
    assert "released 3,000 grades" in h.seen["grading-authority"][0]


def _transport_scores(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[IntArray], IntArray | None]
) -> None:
    """Replace (or, for ``None``, drop) the transport bureau's score vectors on the CKKS path."""
    real = he_reference.period_vectors

    def altered(
        table: EventTable, periods: Sequence[int] | None = None
    ) -> dict[tuple[str, int, str, str], IntArray]:
        out = {}
        for k, v in real(table, periods).items():
            new = change(v) if k[0].startswith("transport") and k[3] == "score" else v
            if new is not None:
                out[k] = new
        return out

    monkeypatch.setattr(he_reference, "period_vectors", altered)


def test_he_check_catches_a_wrong_submission(
    small: Catalog, authority: GradingAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport bureau sends zero vectors instead of its deltas: the subjects it
    penalised now grade differently, and the run says so."""
    _transport_scores(monkeypatch, np.zeros_like)
    sim = simulate_city(small, subjects=3000, periods=3, seed=2)
    r = run(sim, keypair=insecure_keypair(0, 512), workers=1, reveal="he", he_authority=authority)
    h = r.he
    assert h is not None and h.paillier_mismatches == 0
    assert h.mismatches > 0 and not h.grades_match_paillier
    assert not r.grades_match_oracle and not r.ok and r.mismatches == h.mismatches


def test_he_refuses_to_grade_with_a_missing_submission(
    small: Catalog, authority: GradingAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transport bureau's score vectors never reach the log: the authority refuses to
    grade the incomplete period and names the agency; nothing is decrypted."""
    _transport_scores(monkeypatch, lambda v: None)
    sim = simulate_city(small, subjects=3000, periods=3, seed=2)
    with pytest.raises(PolicyViolation, match="transport"):
        run(sim, keypair=insecure_keypair(0, 512), workers=1, reveal="he", he_authority=authority)
    assert authority.decryptions == 0


def _check_json_and_report(doc: Mapping[str, object], out: Path, subjects: int) -> None:
    assert doc["reveal"] == "he" and doc["grades_match_oracle"] is True and doc["ok"] is True
    he = doc["he"]
    assert isinstance(he, dict)
    for key in (
        "profile",
        "ring_dimension",
        "coeff_bits",
        "modulus_bits",
        "scale_bits",
        "slots",
        "context_bytes",
        "ms_per_subject",
        "seconds",
        "seen",
    ):
        assert key in he
    assert he["mismatches"] == 0 and he["grades_match_paillier"] is True
    assert he["ms_per_subject"] > 0 and he["context_bytes"] > 0
    report = (out / "report.md").read_text()
    assert "Grades match the oracle: yes" in report
    assert "## Homomorphic grading (CKKS)" in report and "## What each party saw" in report
    assert "**grading-authority**" in report and "ms per subject" in report
    assert f"released {subjects:,} grades" in report or f"{subjects:,} requested" in report


def test_cli_demo_reveal_he_writes_parameters_timings_and_views(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cat = tmp_path / "small.toml"
    cat.write_text(DEMO_HE_CATALOG, encoding="utf-8")
    out, js = tmp_path / "out", tmp_path / "demo.json"
    # a toy catalog sized for the small CKKS profile (base score 10): it fails the
    # proportionality lint by design, so this research run says so explicitly
    args = ["demo", "--subjects", "500", "--key-bits", "512", "--catalog", str(cat)]
    args += ["--allow-lint-errors"]
    args += ["--in-process"]  # the single-process driver (its authority's own timings)
    code = main([*args, "--reveal", "he", "--workers", "1", "--out", str(out), "--json", str(js)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "grades_match_oracle: true" in printed and "checks_passed: true" in printed
    assert "CKKS homomorphic grading (n16384-l10: N=16384" in printed
    assert "ms per subject" in printed and "CKKS = Paillier on every subject: yes" in printed
    doc = json.loads(js.read_text())
    _check_json_and_report(doc, out, 500)
    assert np.isclose(
        doc["he"]["ms_per_subject"],
        1000 * (doc["he"]["seconds"]["grade"] + doc["he"]["seconds"]["decrypt"]) / 500,
        atol=0.01,
    )


def test_cli_demo_reveal_he_across_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default run with --reveal he: every party its own process, the CKKS grading
    authority too; one period (the toy catalog keeps records two months, the parties keep
    real time), and more periods than that are refused up front."""
    cat = tmp_path / "small.toml"
    cat.write_text(DEMO_HE_CATALOG, encoding="utf-8")
    out, js = tmp_path / "out", tmp_path / "demo.json"
    args = ["demo", "--subjects", "300", "--key-bits", "512", "--catalog", str(cat)]
    args += ["--allow-lint-errors", "--reveal", "he", "--out", str(out)]
    assert main([*args, "--periods", "2"]) == 2
    assert "use --periods 1 or fewer" in capsys.readouterr().err
    assert main([*args, "--periods", "1", "--json", str(js)]) == 0
    printed = capsys.readouterr().out
    assert "checks_passed: true" in printed and "reveal over HTTP" in printed
    doc = json.loads(js.read_text())
    assert doc["ok"] and doc["he"]["grades_match_paillier"] and doc["he"]["mismatches"] == 0
    assert "grading-authority" in doc["processes"]


@pytest.mark.slow
def test_cli_demo_reveal_he_at_full_parameters(tmp_path: Path) -> None:
    """The city catalog at the N=32768 profile (about 3 GB and 1-2 minutes)."""
    out, js = tmp_path / "out", tmp_path / "demo.json"
    args = ["demo", "--subjects", "2000", "--reveal", "he", "--in-process"]
    code = main([*args, "--out", str(out), "--json", str(js)])
    doc = json.loads(js.read_text())
    assert code == 0
    _check_json_and_report(doc, out, 2000)
    assert doc["he"]["profile"] == "n32768-l22" and doc["he"]["ring_dimension"] == 32768
    assert doc["he"]["modulus_bits"] == 870 <= doc["he"]["modulus_bound_bits"] == 881
