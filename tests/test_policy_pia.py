"""Impact-assessment report: content, determinism, self-contained HTML, the shipped example."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

from psc.policy.checks import check_ids
from psc.policy.deployment import load_deployment
from psc.policy.linter import lint
from psc.policy.pia import build_pia, write_pia

DAY = dt.date(2026, 11, 20)
DEMO = load_deployment("demo")
EXAMPLE = Path(__file__).parent.parent / "papers" / "pia-example"


def demo_pia() -> tuple[str, str]:
    pia = build_pia(DEMO, lint(DEMO.catalog, DEMO, today=DAY), generated=DAY)
    return pia.to_markdown(), pia.to_html()


def test_report_covers_checks_parties_parameters_and_retention() -> None:
    md, _ = demo_pia()
    for cid in check_ids():
        assert f"| {cid} |" in md
    for party in (
        "Agency",
        "Aggregator",
        "Key committee",
        "Relying party",
        "Subject",
        "Auditor / regulator",
    ):
        assert f"| {party}" in md
    assert DEMO.catalog.version_hash in md
    assert "3072-bit modulus" in md and "3 of 5" in md and "epsilon 0.5 per release" in md
    assert "assessment generated | 2026-11-20" in md and "2029-11-20" in md
    assert "Residual risks" in md and "The deployment may proceed" in md
    assert "AAA above 1049.5" in md


def test_failing_deployment_says_it_must_not_proceed(tmp_path: Path) -> None:
    bad = dataclasses.replace(
        DEMO, min_age=12, security=dataclasses.replace(DEMO.security, registry_separate=False)
    )
    report = lint(bad.catalog, bad, today=DAY)
    md = build_pia(bad, report, generated=DAY).to_markdown()
    assert "must not proceed" in md and "| error | P11.minors | deployment.min_age |" in md
    assert "Open error P19.pseudonymisation" in md


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    odd = dataclasses.replace(DEMO, name="<script>alert(1)</script> & co")
    pia = build_pia(odd, lint(odd.catalog, odd, today=DAY), generated=DAY)
    md_path, html_path = write_pia(pia, tmp_path / "out")
    page = html_path.read_text("utf-8")
    assert md_path.read_text("utf-8").startswith("# Personal-information impact assessment")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"<(link|img|script|iframe)\b|src=|href=|@import|url\(", page)
    assert (
        page.count("<table>")
        == sum(1 for ln in md_path.read_text("utf-8").splitlines() if ln.startswith("|---|"))
        and '<td class="pass">pass</td>' in page
    )


def test_deterministic() -> None:
    assert demo_pia() == demo_pia()


def test_shipped_example_is_current() -> None:
    md, page = demo_pia()
    assert (EXAMPLE / "pia.md").read_text("utf-8") == md, (
        "regenerate: psc pia demo --out papers/pia-example --date 2026-11-20"
    )
    assert (EXAMPLE / "pia.html").read_text("utf-8") == page
