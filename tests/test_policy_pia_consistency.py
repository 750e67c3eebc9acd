"""One source of truth: every section of an impact assessment agrees with the lint result.

Issue 12, item 2: for a catalog scoring religion and petitioning, section 2 used to say
"sensitive personal information: no ... the vocabulary scan found none" while the findings
listed the P11.sensitive and CRI-14 failures, and the rules table printed ``None``.  Here
PIAs are generated for a clean and several failing deployments and every section is
checked against the findings, with the expected statuses computed independently of the
code under test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest

from psc.policy.deployment import Deployment, Transfer, load_deployment
from psc.policy.findings import LintReport
from psc.policy.linter import lint
from psc.policy.pia import Bullets, Paragraph, PiaReport, Table, build_pia

DAY = dt.date(2026, 11, 20)
CITY_TEXT = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
DEMO_TEXT = resources.files("psc.policy").joinpath("demo-deployment.toml").read_text("utf-8")
RANK = {"not-run": 0, "pass": 1, "warn": 2, "fail": 3}

SENSITIVE_RULES = """
[[rules]]
id = "civic.temple-attendance"
agency = "civil-affairs-bureau"
description = "Attendance at registered temple services, reported by the district office"
delta = -10
domain = "civic"
purpose = "community record"
legal_basis = "statutory-duty"
legal_authority = "Regulations on Religious Affairs, Art. 2"
evidence_required = true
retention = "short"
data_categories = ["administrative-record"]
severity = "moderate"
finding = { document = "administrative-decision", authority = "civil-affairs-bureau" }

[[rules]]
id = "civic.skip-level-complaints"
agency = "city-administration"
description = "Lodging complaints against local officials with offices in the capital"
delta = -20
domain = "administrative"
purpose = "maintenance of social order"
legal_basis = "statutory-duty"
legal_authority = "Regulations on Letters and Visits, Art. 18"
evidence_required = true
retention = "short"
data_categories = ["administrative-record"]
severity = "moderate"
finding = { document = "administrative-decision", authority = "city-administration" }
"""


def _with_catalog(tmp: Path, catalog_text: str) -> Deployment:
    (tmp / "own.toml").write_text(catalog_text, "utf-8")
    dep = tmp / "dep.toml"
    dep.write_text(DEMO_TEXT.replace('catalog = "city"', 'catalog = "own.toml"'), "utf-8")
    return load_deployment(dep, check_sensitive=False)


def _clean(tmp: Path) -> Deployment:
    return load_deployment("demo")


def _sensitive(tmp: Path) -> Deployment:
    return _with_catalog(tmp, CITY_TEXT + SENSITIVE_RULES)


def _disproportionate(tmp: Path) -> Deployment:
    text = CITY_TEXT.replace("delta = -5\n", "delta = -150\n", 1).replace(
        'grade_cap = "C"', 'grade_cap = "D"'
    )
    text = text.replace(
        'publication_basis = "SPC Provisions on Publishing the List of Dishonest Judgment '
        'Defaulters (2017), Art. 1, 6"\n',
        "",
    )
    return _with_catalog(tmp, text)


def _failing_deployment(tmp: Path) -> Deployment:
    d = load_deployment("demo")
    return dataclasses.replace(
        d,
        min_age=12,
        security=dataclasses.replace(d.security, registry_separate=False, at_rest="none"),
        rights=dataclasses.replace(d.rights, human_review=False, deadline_working_days=40),
        consent=dataclasses.replace(d.consent, withdrawal=False),
        transfers=(Transfer("overseas-bureau", "SG", "analytics", 2_000_000, 0, "none", False),),
    )


CASES: dict[str, Callable[[Path], Deployment]] = {
    "clean": _clean,
    "sensitive": _sensitive,
    "disproportionate": _disproportionate,
    "failing-deployment": _failing_deployment,
}


def _worst(report: LintReport, ids: list[str]) -> str:
    by_id = {r.check: r.status for r in report.results}
    return max((by_id[i] for i in ids), key=RANK.__getitem__)


def _rule_checks(report: LintReport, rule_id: str) -> set[str]:
    p = f"rules.{rule_id}"
    return {f.check for f in report.findings if f.subject == p or f.subject.startswith(p + ".")}


def _tables(pia: PiaReport, title: str) -> list[Table]:
    (section,) = [s for s in pia.sections if s.title.startswith(title)]
    return [b for b in section.blocks if isinstance(b, Table)]


def _text(pia: PiaReport) -> list[str]:
    cells: list[str] = []
    for s in pia.sections:
        for b in s.blocks:
            if isinstance(b, Paragraph):
                cells.append(b.text)
            elif isinstance(b, Bullets):
                cells.extend(b.items)
            else:
                cells.extend(c for row in b.rows for c in row)
    return cells


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, LintReport, PiaReport]:
    dep = CASES[request.param](tmp_path)
    report = lint(dep.catalog, dep, today=DAY)
    return request.param, report, build_pia(dep, report, generated=DAY)


def test_the_cases_fail_as_intended(case: tuple[str, LintReport, PiaReport]) -> None:
    name, report, _ = case
    assert (report.count("error") == 0) == (name == "clean")


def test_summary_counts_and_verdict(case: tuple[str, LintReport, PiaReport]) -> None:
    _, report, pia = case
    ran = [r for r in report.results if r.status != "not-run"]
    n = {s: sum(r.status == s for r in ran) for s in ("pass", "warn", "fail")}
    (summary,) = _tables(pia, "Summary")
    assert dict(summary.rows)["checks run"] == (
        f"{len(ran)}: {n['pass']} pass, {n['warn']} warn, {n['fail']} fail"
    )
    text = "\n".join(_text(pia))
    assert ("must not proceed" in text) == bool(n["fail"])
    assert ("may proceed" in text) == (not n["fail"])


def test_every_status_cell_is_the_worst_status_of_its_checks(
    case: tuple[str, LintReport, PiaReport],
) -> None:
    _, report, pia = case
    seen = 0
    for s in pia.sections:
        for t in (b for b in s.blocks if isinstance(b, Table)):
            if "checks" not in t.headers or "status" not in t.headers:
                continue
            ci, si = t.headers.index("checks"), t.headers.index("status")
            for row in t.rows:
                if row[ci] == "-":
                    assert row[si] == "-"
                    continue
                seen += 1
                assert row[si] == _worst(report, row[ci].split(", ")), (s.title, row)
    assert seen >= 20


def test_sensitive_trigger_agrees_with_the_findings(
    case: tuple[str, LintReport, PiaReport],
) -> None:
    name, report, pia = case
    sensitive = [
        f
        for f in report.findings
        if f.check in ("P11.sensitive", "CRI-14", "P10.camera", "P11.minors")
    ]
    (triggers,) = _tables(pia, "Why an assessment is required")
    row = next(r for r in triggers.rows if r[0] == "sensitive personal information")
    assert row[1] == ("yes" if sensitive else "no")
    for f in sensitive:
        assert f.subject in row[2]
    if name == "sensitive":
        assert {"P11.sensitive", "CRI-14"} <= {f.check for f in sensitive}
        assert "found none" not in row[2]


def test_rules_tables_agree_with_the_findings(case: tuple[str, LintReport, PiaReport]) -> None:
    _, report, pia = case
    rules_table = _tables(pia, "Processing")[0]
    fi = rules_table.headers.index("findings")
    for row in rules_table.rows:
        want = _rule_checks(report, row[0])
        assert row[fi] == (", ".join(sorted(want)) or "none")
    prop = _tables(pia, "Proportionality")[1]
    pi = prop.headers.index("proportionality findings")
    for row in prop.rows:
        p = f"rules.{row[0]}"
        want = [
            f"{f.severity} {f.check}"
            for f in report.findings
            if f.check.startswith("SC49.") and (f.subject == p or f.subject.startswith(p + "."))
        ]
        assert row[pi] == (", ".join(want) or "none")


def test_checks_and_findings_sections_are_the_report(
    case: tuple[str, LintReport, PiaReport],
) -> None:
    _, report, pia = case
    (checks,) = _tables(pia, "Checks and evidence")
    assert [(r[0], r[3]) for r in checks.rows] == [(r.check, r.status) for r in report.results]
    fl = _tables(pia, "Findings")
    if report.findings:
        assert [r[:3] for r in fl[0].rows] == [
            (f.severity, f.check, f.subject) for f in report.findings
        ]
    else:
        assert not fl


def test_residual_risks_list_every_open_finding_and_no_false_safeguard(
    case: tuple[str, LintReport, PiaReport],
) -> None:
    _, report, pia = case
    (section,) = [s for s in pia.sections if s.title.startswith("Residual risks")]
    items = [it for b in section.blocks if isinstance(b, Bullets) for it in b.items]
    for f in report.findings:
        if f.severity in ("error", "warning"):
            assert any(f.check in it and f.subject in it for it in items), f
    registry_ok = _worst(report, ["P19.pseudonymisation"]) in ("pass", "warn")
    assert any("held apart from the aggregator and in scope" in it for it in items) == registry_ok
    caps_ok = _worst(report, ["SC49.cap"]) in ("pass", "warn")
    assert any("never to the lowest band" in it for it in items) == caps_ok


def test_no_cell_prints_a_python_none(case: tuple[str, LintReport, PiaReport]) -> None:
    _, _, pia = case
    assert not [c for c in _text(pia) if "None" in c.replace("None of", "")]
