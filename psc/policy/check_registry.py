"""The check framework: stable ids, articles, the context checks see and the sink they report to.

Every check runs against a :class:`LintContext` and reports through a :class:`Sink`:
findings (``error`` / ``warning`` / ``info``, each with the rule or field concerned and
what to change) and *evidence*, one line per fact it examined, so that a passing check is
documented too.  Checks register themselves with :func:`check`; the checks live in
:mod:`psc.policy.checks_catalog`, :mod:`psc.policy.checks_deployment` and
:mod:`psc.policy.checks_oversight`, and :mod:`psc.policy.checks` imports them so that :data:`CHECKS` is complete and ordered as
the report prints it (catalog scope first).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from psc.catalog import Catalog, Rule
from psc.policy.deployment import Deployment
from psc.policy.findings import Finding, Severity
from psc.policy.sensitive import SensitiveHit, Vocabulary, find_sensitive

Scope = Literal["catalog", "deployment"]

# articles, written once
A_P1 = "PIPL Art. 5-6"
A_P2 = "PIPL Art. 7, 17"
A_P3 = "PIPL Art. 8"
A_P4 = "PIPL Art. 9, 51"
A_P5 = "PIPL Art. 13"
A_P6 = "PIPL Art. 14-16"
A_P7 = (
    "PIPL Art. 19, 47; Credit Reporting Industry Regulations Art. 16 (negative information 5 years)"
)
A_P8 = "PIPL Art. 23, 25; State Council General Office 2020 No. 49"
A_P9 = "PIPL Art. 24, 73"
A_P10 = "PIPL Art. 26"
A_P11 = "PIPL Art. 28-32"
A_P12 = "PIPL Art. 33-37"
A_P13 = "PIPL Art. 38-40; CAC Provisions on Promoting and Regulating Cross-Border Data Flows (2024)"
A_P14 = "PIPL Art. 44-50; GB/T 35273-2020 s. 8.7"
A_P15 = "PIPL Art. 54; CAC Measures for Personal Information Protection Compliance Audits (2025)"
A_P16 = "PIPL Art. 55-56"
A_P17 = "PIPL Art. 57"
A_P18 = "PIPL Art. 66"
A_P19 = "PIPL Art. 4, 73"
A_SC49 = "State Council General Office Opinions 2020 No. 49 (punishment proportional to the fault)"
A_SZ29 = "Shenzhen SEZ Social Credit Regulations (2022) Art. 29"
A_SZ82 = "Shenzhen SEZ Social Credit Regulations (2022) Art. 79-82"
A_EUAI5 = "EU AI Act (Regulation 2024/1689) Art. 5(1)(c) (contrast, not Chinese law); State Council General Office 2020 No. 49"
A_DEP = "protocols/deployment.md"

NEGATIVE_RETENTION_CAP_MONTHS = 60
POSITIVE_RETENTION_CAP_MONTHS = 36
AUDIT_YEARS_LARGE = 2
AUDIT_YEARS_ASSUMED = 3
LARGE_POPULATION = 10_000_000
NOTICE_KEYS = ("processor", "contact", "purposes", "method", "categories", "retention", "rights")
_ARTICLE_REF = re.compile(r"\bArt(icle)?\.?\s*\d|第.+条|§\s*\d|\bs\.\s*\d", re.IGNORECASE)
_LAW_REF = re.compile(
    r"\b(law|regulations?|provisions?|measures|code|rules|decision)\b|法|条例|规定|办法",
    re.IGNORECASE,
)
_CONSENT_REF = re.compile(r"\bconsent\b|同意", re.IGNORECASE)


@dataclass(frozen=True)
class LintContext:
    """What the checks see: the catalog, an optional deployment, the date, the vocabulary."""

    catalog: Catalog
    deployment: Deployment | None
    today: dt.date
    vocabulary: Vocabulary
    sensitive: tuple[SensitiveHit, ...]  # find_sensitive over the catalog, computed once

    @property
    def dep(self) -> Deployment:
        """The deployment (deployment-scope checks only run when there is one)."""
        assert self.deployment is not None
        return self.deployment


@dataclass
class Sink:
    """Collects one check's findings and evidence."""

    check: Check
    findings: list[Finding] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    def add(self, severity: Severity, subject: str, message: str, fix: str) -> None:
        """Record a finding of ``severity`` about ``subject``."""
        self.findings.append(
            Finding(self.check.id, severity, self.check.article, subject, message, fix)
        )

    def error(self, subject: str, message: str, fix: str) -> None:
        self.add("error", subject, message, fix)

    def warning(self, subject: str, message: str, fix: str) -> None:
        self.add("warning", subject, message, fix)

    def info(self, subject: str, message: str, fix: str = "nothing to change") -> None:
        self.add("info", subject, message, fix)

    def note(self, text: str) -> None:
        """Record one fact the check examined (printed in the impact assessment)."""
        self.evidence.append(text)


CheckFn = Callable[[LintContext, Sink], None]


@dataclass(frozen=True)
class Check:
    """A registered check: stable id, article, one-line title, scope and function."""

    id: str
    article: str
    title: str
    scope: Scope
    run: CheckFn


CHECKS: list[Check] = []


def check(
    check_id: str, article: str, title: str, scope: Scope = "catalog"
) -> Callable[[CheckFn], CheckFn]:
    """Register a check function under a stable id (ids must be unique)."""

    def deco(fn: CheckFn) -> CheckFn:
        if any(c.id == check_id for c in CHECKS):
            raise ValueError(f"duplicate check id {check_id!r}")
        CHECKS.append(Check(check_id, article, title, scope, fn))
        return fn

    return deco


def check_ids() -> tuple[str, ...]:
    """Every registered check id, in report order."""
    return tuple(c.id for c in CHECKS)


def _r(rule: Rule, attr: str = "") -> str:
    return f"rules.{rule.id}" + (f".{attr}" if attr else "")


def _negative(rule: Rule) -> bool:
    return rule.delta < 0 or rule.grade_cap is not None


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def run_checks(ctx: LintContext) -> Iterator[tuple[Check, Sink | None]]:
    """Run every applicable check; yields (check, sink) or (check, None) when not run."""
    for c in CHECKS:
        if c.scope == "deployment" and ctx.deployment is None:
            yield c, None
            continue
        sink = Sink(c)
        c.run(ctx, sink)
        yield c, sink


def sensitive_hits(catalog: Catalog, vocabulary: Vocabulary) -> tuple[SensitiveHit, ...]:
    """The sensitive hits of a catalog (computed once per lint run)."""
    return tuple(find_sensitive(catalog.rules, vocabulary))
