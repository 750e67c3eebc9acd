"""An official finding behind every negative rule (issue 12, build item 3).

Each negative rule names the kind of official document that proves an event and the
authority competent to issue it; the linter flags conduct that no court, administrative
authority or arbitration body has found (P3.official-finding) and rules scored by an
office that is not the competent authority (P12.competent-authority).
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pytest

from psc.catalog import FINDING_DOCUMENTS, load_catalog, parse_catalog
from psc.exceptions import CatalogError
from psc.policy.linter import lint

CITY_TEXT = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
DAY = dt.date(2026, 11, 25)
TAX_FINDING = 'finding = { document = "tax-processing-decision", authority = "tax-bureau" }\n'


def _errors(text: str, check: str) -> list[str]:
    report = lint(parse_catalog(text), today=DAY)
    return [f.subject + " " + f.message for f in report.by_check(check) if f.severity == "error"]


@pytest.mark.parametrize("name", ["city", "company"])
def test_every_shipped_negative_rule_names_its_finding(name: str) -> None:
    cat = load_catalog(name)
    for rule in cat.rules:
        if rule.delta < 0 or rule.grade_cap is not None:
            assert rule.finding is not None, rule.id
            assert FINDING_DOCUMENTS[rule.finding.document] != "private", rule.id
            assert rule.finding.authority == rule.agency, rule.id
    report = lint(cat, today=DAY)
    assert not report.by_check("P3.official-finding")
    assert not report.by_check("P12.competent-authority")


def test_negative_rule_without_finding_is_an_error() -> None:
    assert TAX_FINDING in CITY_TEXT
    errors = _errors(CITY_TEXT.replace(TAX_FINDING, ""), "P3.official-finding")
    assert errors and errors[0].startswith("rules.tax.arrears.finding ")


def test_conduct_no_authority_found_is_an_error() -> None:
    text = CITY_TEXT.replace(
        TAX_FINDING, 'finding = { document = "creditor-record", authority = "tax-bureau" }\n'
    )
    errors = _errors(text, "P3.official-finding")
    assert errors and "no court, administrative authority or arbitration body" in errors[0]


def test_rule_scored_by_an_office_that_is_not_the_competent_authority() -> None:
    text = CITY_TEXT.replace(
        TAX_FINDING,
        'finding = { document = "tax-processing-decision", authority = "state-tax-inspection" }\n',
    )
    errors = _errors(text, "P12.competent-authority")
    assert errors and "state-tax-inspection" in errors[0] and "tax-bureau" in errors[0]


def test_court_document_from_an_administrative_office_is_flagged() -> None:
    text = CITY_TEXT.replace(
        TAX_FINDING, 'finding = { document = "court-judgment", authority = "tax-bureau" }\n'
    )
    report = lint(parse_catalog(text), today=DAY)
    assert any("court" in f.message for f in report.by_check("P12.competent-authority"))


def test_positive_rules_need_no_finding() -> None:
    cat = load_catalog("city")
    assert any(r.delta > 0 and r.finding is None for r in cat.rules)


@pytest.mark.parametrize(
    ("finding", "problem"),
    [
        ('{ document = "verdict", authority = "tax-bureau" }', "finding.document: must be one of"),
        (
            '{ document = "tax-processing-decision", authorty = "tax-bureau" }',
            "finding.authorty: unknown key; did you mean 'authority'?",
        ),
        ('{ document = "tax-processing-decision", authority = " " }', "finding.authority"),
        ('"tax-processing-decision"', "finding: must be a table"),
    ],
)
def test_malformed_finding_refused_by_the_loader(finding: str, problem: str) -> None:
    text = CITY_TEXT.replace(TAX_FINDING, f"finding = {finding}\n")
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    assert any(problem in p and "tax.arrears" in p for p in info.value.problems), info.value


def test_finding_is_part_of_the_version_hash() -> None:
    a = parse_catalog(CITY_TEXT)
    b = parse_catalog(
        CITY_TEXT.replace(
            TAX_FINDING,
            'finding = { document = "administrative-decision", authority = "tax-bureau" }\n',
        )
    )
    assert a.version_hash != b.version_hash
