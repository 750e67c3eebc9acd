"""Findings of the policy linter and the report that collects them.

A :class:`Finding` is one problem: the stable check id (``P7.retention-cap``), a severity,
the article it rests on, the rule or field concerned, what is wrong and what to change.
A :class:`CheckResult` is one check's verdict with the evidence it looked at, so that a
passing check is as documented as a failing one (the impact assessment prints both).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
Status = Literal["pass", "warn", "fail", "not-run"]


@dataclass(frozen=True)
class Finding:
    """One problem the linter found."""

    check: str  # stable check id, e.g. "P7.retention-cap"
    severity: Severity
    article: str  # the instrument and article the check rests on
    subject: str  # the rule or field concerned, e.g. "rules.traffic.violation.retention"
    message: str  # what is wrong
    fix: str  # what to change

    def line(self) -> str:
        """The finding for a terminal, on three lines: what, where; why; what to change.

        ``error   P7.retention-cap [rules.x.retention]`` / ``        <message>.`` /
        ``        fix: <fix> (<article>)``; findings are separated by a blank line in
        :meth:`LintReport.text_lines`.
        """
        message = self.message.rstrip()
        if not message.endswith((".", "!", "?", ")")):
            message += "."
        return (
            f"{self.severity:7s} {self.check} [{self.subject}]\n"
            f"        {message}\n"
            f"        fix: {self.fix} ({self.article})"
        )


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: its findings and the evidence it examined."""

    check: str
    article: str
    title: str
    scope: str  # "catalog" | "deployment"
    status: Status
    findings: tuple[Finding, ...]
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class LintReport:
    """Every check's result for one catalog (and optionally one deployment)."""

    catalog_source: str
    catalog_name: str
    catalog_version: str
    catalog_hash: str
    deployment_source: str | None
    as_of: str  # ISO date the time-dependent checks were evaluated at
    results: tuple[CheckResult, ...]

    @property
    def findings(self) -> tuple[Finding, ...]:
        """All findings, errors first, in check order within a severity."""
        order = {s: i for i, s in enumerate(SEVERITIES)}
        flat = [f for r in self.results for f in r.findings]
        return tuple(sorted(flat, key=lambda f: order[f.severity]))

    def count(self, severity: Severity) -> int:
        """Number of findings of ``severity``."""
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def exit_code(self) -> int:
        """0 when no error-level finding, 1 otherwise (2 is the CLI's: unreadable input)."""
        return 1 if self.count("error") else 0

    def by_check(self, check_id: str) -> Sequence[Finding]:
        """Findings of one check id."""
        return [f for f in self.findings if f.check == check_id]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: summary, every check with status and evidence, every finding."""
        return {
            "format": "psc-lint/1",
            "catalog": {
                "source": self.catalog_source,
                "name": self.catalog_name,
                "version": self.catalog_version,
                "hash": self.catalog_hash,
            },
            "deployment": self.deployment_source,
            "as_of": self.as_of,
            "summary": {s: self.count(s) for s in SEVERITIES} | {"exit_code": self.exit_code},
            "checks": [
                {
                    "id": r.check,
                    "article": r.article,
                    "title": r.title,
                    "scope": r.scope,
                    "status": r.status,
                    "evidence": list(r.evidence),
                }
                for r in self.results
            ],
            "findings": [asdict(f) for f in self.findings],
        }

    def dumps(self) -> str:
        """:meth:`to_json` as indented, key-sorted JSON text."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def text_lines(self, *, verbose: bool = False) -> list[str]:
        """Lines for a terminal: findings, then a summary (and every check if ``verbose``)."""
        lines: list[str] = []
        for f in self.findings:
            lines += [f.line(), ""]
        if verbose:
            lines.append("")
            lines.extend(f"{r.status:7s} {r.check:28s} {r.title}" for r in self.results)
        ran = sum(1 for r in self.results if r.status != "not-run")
        lines.append(
            f"{self.catalog_name} v{self.catalog_version} ({self.catalog_hash[:12]}): {ran} checks, "
            f"{self.count('error')} error(s), {self.count('warning')} warning(s), "
            f"{self.count('info')} info"
        )
        return lines
