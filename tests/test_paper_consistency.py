"""The technical report agrees with the results it cites, the README and the tests (issue 14).

``papers/psc.built.md`` is generated from the template ``papers/psc.md``; these tests fail if
any number in it differs from the results file it cites, if a cited file is missing, if its
prose was edited by hand, if a number was typed into the template's prose, if a README claim
of the first section has no section backing it (or a section backs a claim the README no
longer makes), or if a security argument cites a test that does not exist.  Each check is
shown to fail on a deliberately broken input, so none of them can pass vacuously.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from papers import build_report
from papers.build import BUILT, TEMPLATE, FieldError, Sources, build, check, checks
from papers.build.fields import ANCHORS, RESULTS

README = checks.README.read_text("utf-8")


@pytest.fixture(scope="module")
def built() -> str:
    return BUILT.read_text("utf-8")


@pytest.fixture
def results_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(RESULTS, dst)
    return dst


def test_the_built_report_is_consistent_with_results_readme_and_tests(built: str) -> None:
    assert check(built) == []


def test_the_built_report_is_what_the_template_gives_today(built: str) -> None:
    assert build().markdown == built, "papers/psc.built.md is stale: run make paper"


def test_the_benchmark_appendix_is_up_to_date() -> None:
    assert build_report.OUT.read_text("utf-8") == build_report.build()
    text = build_report.OUT.read_text("utf-8")
    assert "```" not in text and '"met": true' not in text  # tables, not a JSON dump


def test_a_number_altered_by_hand_is_caught(built: str) -> None:
    ratio = json.loads((RESULTS / "aggregate-quick.json").read_text())
    packed = next(r for r in ratio["results"] if r["backend"] == "paillier-packed")
    shown = f"{packed['speedup_vs_phe_naive']['aggregate']:,.0f}"
    assert f"aggregates {shown}\ntimes faster" in built
    forged = built.replace(
        f"aggregates {shown}\ntimes", f"aggregates {int(shown.replace(',', '')) + 1}\ntimes", 1
    )
    errors = check(forged)
    assert len(errors) == 1, errors
    assert "aggregate-quick.json" in errors[0] and repr(shown) in errors[0]


def test_a_number_in_a_generated_table_altered_by_hand_is_caught(built: str) -> None:
    doc = json.loads((RESULTS / "validity-quick.json").read_text())
    shown = f"{doc['techniques']['bit-decomposition']['proof_bytes_per_subject']:,.0f}"
    row = next(line for line in built.splitlines() if line.startswith("| `bit-decomposition`"))
    forged = built.replace(row, row.replace(f"| {shown} |", "| 64 |"), 1)
    assert forged != built
    errors = check(forged)
    assert errors and all("validity-quick.json" in e for e in errors)


def test_a_results_file_that_changed_after_the_build_is_caught(
    built: str, results_copy: Path
) -> None:
    path = results_copy / "grade-quick.json"
    doc = json.loads(path.read_text())
    doc["results"][0]["ms_per_subject"] *= 2
    path.write_text(json.dumps(doc))
    errors = check(built, Sources(results_copy, ANCHORS))
    assert errors and any("grade-quick.json" in e and "ms_per_subject" in e for e in errors)


def test_a_cited_results_file_that_is_missing_is_caught(built: str, results_copy: Path) -> None:
    (results_copy / "validity-quick.json").unlink()
    errors = check(built, Sources(results_copy, ANCHORS))
    assert any("validity-quick.json" in e and "does not exist" in e for e in errors)
    with pytest.raises(FieldError, match=r"validity-quick\.json, which does not exist"):
        build(Sources(results_copy, ANCHORS))


def test_prose_edited_in_the_built_report_is_caught(built: str) -> None:
    forged = built.replace("What does not hold yet is\nstated plainly", "Everything holds", 1)
    assert forged != built
    errors = check(forged)
    assert errors and "differs from the template" in errors[0]


def test_a_number_typed_into_the_template_prose_is_caught() -> None:
    template = TEMPLATE.read_text("utf-8")
    assert checks.literal_errors(template) == []
    forged = template.replace(
        "## 6. Evaluation\n", "## 6. Evaluation\n\nAggregation takes 41 ns.\n", 1
    )
    errors = checks.literal_errors(forged)
    assert len(errors) == 1 and "'41'" in errors[0]
    # labels stay allowed: article and section numbers, issue numbers, years, names
    assert checks.literal_errors("PIPL Art. 55-56, §3.1, issue 10, 2021, SHA-256, CKK20\n") == []


def test_every_readme_claim_is_backed_both_ways(built: str) -> None:
    claims = checks.load_claims()
    assert checks.claims_errors(README, built, claims) == []
    units = checks.readme_units(checks.readme_first_section(README))
    assert len(units) >= 5  # the first section's paragraphs and bullets are all covered


def test_a_readme_claim_without_a_section_is_caught(built: str) -> None:
    first = checks.readme_first_section(README)
    readme = README.replace(first, first + "- psc runs on quantum computers;\n\n", 1)
    errors = checks.claims_errors(readme, built, checks.load_claims())
    assert len(errors) == 1 and "quantum" in errors[0]


def test_a_claim_the_readme_dropped_or_a_section_that_lost_its_marker_is_caught(built: str) -> None:
    claims = checks.load_claims()
    readme = README.replace(str(claims["pipl-checked"]["readme"]), "every rule is considered", 1)
    errors = checks.claims_errors(readme, built, claims)
    assert any("[pipl-checked]" in e and "no longer in the README" in e for e in errors)
    unmarked = built.replace("<!-- backs: pipl-checked -->", "", 1)
    errors = checks.claims_errors(README, unmarked, claims)
    assert errors == [
        "report section 'PIPL mapping' lacks <!-- backs: pipl-checked --> for the README claim it is said to back"
    ]
    stray = built.replace(
        "<!-- backs: pipl-checked -->", "<!-- backs: pipl-checked, world-peace -->", 1
    )
    errors = checks.claims_errors(README, stray, claims)
    assert errors and "world-peace" in errors[0]


def test_a_cited_test_that_does_not_exist_is_caught(built: str) -> None:
    assert checks.test_name_errors(built) == []
    forged = built.replace(
        "::test_over_range_delta_is_refused", "::test_over_range_delta_is_accepted", 1
    )
    errors = checks.test_name_errors(forged)
    assert errors == [
        "the report cites tests/attacks/test_agency.py::test_over_range_delta_is_accepted, which is not a test in that file"
    ]
    assert checks.test_name_errors("`tests/attacks/test_nobody.py`") == [
        "the report cites tests/attacks/test_nobody.py, which does not exist"
    ]
