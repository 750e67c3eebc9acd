"""The policy checks: ../reference/pipl.md made code, one function per stable check id.

Ids are ``P<n>.<aspect>`` for the PIPL items of ``pipl.md`` and ``<instrument>.<aspect>``
for the other instruments: ``CRI-14`` (Credit Reporting Industry Regulations Art. 14),
``SC49.*`` (State Council General Office Opinions 2020 No. 49), ``SZ29.*``/``SZ82.*``
(Shenzhen SEZ Social Credit Regulations 2022), ``EUAI5.*`` (EU AI Act Art. 5(1)(c), the
contrast).  ``DEP.catalog`` checks the deployment file's own consistency.

Every check runs against a :class:`LintContext` and reports through a :class:`Sink`:
findings (``error`` / ``warning`` / ``info``, each with the rule or field concerned and
what to change) and *evidence*, one line per fact it examined, so that a passing check is
documented too.  Catalog-scope checks always run; deployment-scope checks run only when a
deployment is given.  The registry :data:`CHECKS` is ordered as the report prints it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from psc.catalog import LEGAL_BASES, Catalog, Rule
from psc.policy.consent import MAX_TOKEN_DAYS, token_life_limit
from psc.policy.deployment import MECHANISMS, Deployment
from psc.policy.findings import Finding, Severity
from psc.policy.proportionality import SCALE, max_bands_crossed
from psc.policy.sensitive import SensitiveHit, Vocabulary, find_sensitive, normalise_purpose

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


# ------------------------------------------------------------------------------------
# catalog scope


@check("P1.purpose", A_P1, "every rule declares a specific purpose")
def _p1_purpose(ctx: LintContext, out: Sink) -> None:
    vague = ctx.vocabulary.vague_purposes
    for rule in ctx.catalog.rules:
        p = normalise_purpose(rule.purpose)
        if p in vague:
            out.error(
                _r(rule, "purpose"),
                f"purpose {rule.purpose!r} is missing or too vague to be clear, reasonable and directly related",
                "state the specific purpose the record serves, e.g. 'enforcement of effective judgments'",
            )
    out.note(
        f"{len(ctx.catalog.rules)} rules, purposes: "
        + "; ".join(sorted({r.purpose for r in ctx.catalog.rules}))
    )


@check("P1.scheme-purposes", A_P1, "the scheme's permitted purposes are specific")
def _p1_scheme(ctx: LintContext, out: Sink) -> None:
    s = ctx.catalog.scheme
    for p in s.purposes:
        if normalise_purpose(p) in ctx.vocabulary.vague_purposes:
            out.error(
                "scheme.purposes",
                f"permitted purpose {p!r} is too vague to bind the use of a grade",
                "list each concrete purpose a grade may be revealed for, e.g. 'credit-assessment'",
            )
    out.note(f"permitted purposes: {', '.join(s.purposes)}")


@check("P1.unused-retention", A_P1, "no retention class is declared that no rule uses")
def _p1_unused(ctx: LintContext, out: Sink) -> None:
    used = {r.retention for r in ctx.catalog.rules}
    for name in ctx.catalog.retention_classes:
        if name not in used:
            out.warning(
                f"retention.{name}",
                f"retention class {name!r} is used by no rule (minimum scope: declare only what is processed)",
                f"remove [retention.{name}] or assign it to the rules that need it",
            )
    out.note(f"retention classes in use: {', '.join(sorted(used))}")


@check("P5.legal-basis", A_P5, "every rule rests on one of the seven legal bases")
def _p5_basis(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        if rule.legal_basis not in LEGAL_BASES:
            out.error(
                _r(rule, "legal_basis"),
                f"legal basis {rule.legal_basis!r} is not one of the seven bases of Art. 13",
                f"use one of {', '.join(sorted(LEGAL_BASES))}",
            )
    counts: dict[str, int] = {}
    for rule in ctx.catalog.rules:
        counts[rule.legal_basis] = counts.get(rule.legal_basis, 0) + 1
    out.note("legal bases: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))


@check("P5.consent-negative", f"{A_P5}; {A_P6}", "no negative rule rests on consent")
def _p5_consent(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        if _negative(rule) and rule.legal_basis == "consent":
            out.error(
                _r(rule, "legal_basis"),
                "a rule that lowers a score cannot rest on consent: consent must be voluntary and "
                "withdrawable (Art. 14-15), and anyone would withdraw it",
                "cite the statutory duty or other law that requires the record (legal_basis = 'statutory-duty')",
            )
    out.note(f"{sum(_negative(r) for r in ctx.catalog.rules)} negative rules checked")


@check("P12.authority", A_P12, "every rule cites its legal authority with an article")
def _p12_authority(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        a = rule.legal_authority.strip()
        if not a:
            out.error(
                _r(rule, "legal_authority"),
                "no legal authority cited: a state organ acts only within its statutory powers",
                "cite the law and article that empower the agency to record this conduct",
            )
        elif not _ARTICLE_REF.search(a):
            out.warning(
                _r(rule, "legal_authority"),
                f"authority {a!r} names no article",
                "add the article number, e.g. 'Road Traffic Safety Law of the PRC, Art. 90'",
            )
    out.note(f"{len(ctx.catalog.rules)} rules cite an authority")


@check("P3.evidence", A_P3, "every rule that can lower a score requires evidence")
def _p3_evidence(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        if rule.evidence_required:
            continue
        if _negative(rule):
            out.error(
                _r(rule, "evidence_required"),
                "a rule that lowers a score or caps a grade does not require an evidence reference",
                "set evidence_required = true: every event must carry the hash of its official document",
            )
        else:
            out.warning(
                _r(rule, "evidence_required"),
                "a positive rule does not require evidence (inaccurate data harms the other subjects' ranking)",
                "set evidence_required = true",
            )
    out.note(
        f"evidence required on {sum(r.evidence_required for r in ctx.catalog.rules)}/{len(ctx.catalog.rules)} rules"
    )


@check("P4.classification", A_P4, "every rule tags the data categories it processes")
def _p4_class(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        if not [c for c in rule.data_categories if c.strip()]:
            out.error(
                _r(rule, "data_categories"),
                "no data category: the data cannot be classified and protected accordingly",
                "tag the record, e.g. data_categories = ['administrative-penalty']",
            )
    cats = sorted({c for r in ctx.catalog.rules for c in r.data_categories})
    out.note(f"categories: {', '.join(cats)}")


@check("P7.retention-cap", A_P7, "retention within the caps: negative <= 60 months, positive <= 36")
def _p7_cap(ctx: LintContext, out: Sink) -> None:
    cat = ctx.catalog
    for rule in cat.rules:
        months = cat.retention[rule.retention].months
        if _negative(rule) and months > NEGATIVE_RETENTION_CAP_MONTHS:
            out.error(
                _r(rule, "retention"),
                f"negative record kept {months} months in class {rule.retention!r}; negative information "
                f"must be deleted 5 years ({NEGATIVE_RETENTION_CAP_MONTHS} months) after the conduct",
                f"assign a retention class of at most {NEGATIVE_RETENTION_CAP_MONTHS} months",
            )
        elif not _negative(rule) and months > POSITIVE_RETENTION_CAP_MONTHS:
            out.warning(
                _r(rule, "retention"),
                f"positive record kept {months} months; the shortest necessary time is assumed to be "
                f"at most {POSITIVE_RETENTION_CAP_MONTHS} months",
                f"assign a retention class of at most {POSITIVE_RETENTION_CAP_MONTHS} months",
            )
    neg = [cat.retention[r.retention].months for r in cat.rules if _negative(r)]
    pos = [cat.retention[r.retention].months for r in cat.rules if not _negative(r)]
    out.note(
        f"longest negative retention {max(neg, default=0)} months (cap {NEGATIVE_RETENTION_CAP_MONTHS}); "
        f"longest positive {max(pos, default=0)} months (cap {POSITIVE_RETENTION_CAP_MONTHS})"
    )


@check("P8.publication", A_P8, "published lists have separate consent or a cited law")
def _p8_pub(ctx: LintContext, out: Sink) -> None:
    n = 0
    for rule in ctx.catalog.rules:
        if rule.publication == "none":
            continue
        n += 1
        basis = (rule.publication_basis or "").strip()
        law = bool(_LAW_REF.search(basis))
        consent = bool(_CONSENT_REF.search(basis))
        if not basis or not (law or consent):
            out.error(
                _r(rule, "publication_basis"),
                f"publication on a {rule.publication} has no basis (separate consent or a law)",
                "set publication_basis to the law and article that require publication, or to the "
                "separate-consent record (e.g. 'separate consent of the volunteer, recorded by the registry')",
            )
        elif rule.publication == "blacklist" and not law:
            out.error(
                _r(rule, "publication_basis"),
                "a blacklist rests on consent alone: nobody consents to be listed freely",
                "cite the law and article that provide for the list",
            )
        else:
            out.note(f"{rule.id}: {rule.publication} under {basis!r}")
    out.note(f"{n} rules publish to a list")


@check("SC49.blacklist", A_SC49, "blacklists only for serious conduct")
def _sc49_black(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        if rule.publication == "blacklist" and rule.severity != "serious":
            out.error(
                _r(rule, "publication"),
                f"a {rule.severity} rule publishes to a blacklist; blacklists are limited to serious conduct",
                "remove the publication, or (only if the conduct is serious in the sense of No. 49) set severity = 'serious'",
            )
    out.note(
        f"blacklist rules: {', '.join(r.id for r in ctx.catalog.rules if r.publication == 'blacklist') or 'none'}"
    )


@check(
    "SC49.proportionality",
    f"{A_SC49}; EU AI Act Art. 5(1)(c)(ii) (contrast)",
    "each delta within its severity class's scale",
)
def _sc49_prop(ctx: LintContext, out: Sink) -> None:
    cat = ctx.catalog
    base = cat.scheme.base_score
    for rule in cat.rules:
        sc = SCALE.get(rule.severity)
        if sc is None:
            out.error(
                _r(rule, "severity"),
                f"unknown severity {rule.severity!r}",
                f"use one of {', '.join(SCALE)}",
            )
            continue
        limit = sc.max_share * base
        bands = max_bands_crossed(cat.thresholds, rule.delta)
        if abs(rule.delta) > limit:
            out.error(
                _r(rule, "delta"),
                f"delta {rule.delta:+d} is {float(Fraction(abs(rule.delta), base)) * 100:.1f}% of the base score "
                f"{base}; a {rule.severity} rule may move at most {float(sc.max_share) * 100:.0f}% ({float(limit):g} points)",
                f"reduce |delta| to at most {int(limit)}, or reclassify the conduct if it truly is more serious",
            )
        if sc.max_bands is not None and bands > sc.max_bands:
            out.error(
                _r(rule, "delta"),
                f"delta {rule.delta:+d} can cross {bands} grade bands in one event; a {rule.severity} "
                f"rule may cross at most {sc.max_bands}",
                "reduce |delta| below the narrowest band width, or widen the bands",
            )
        per_period = abs(rule.delta) * rule.max_per_period
        if per_period > sc.max_period_share * base:
            out.warning(
                _r(rule, "max_per_period"),
                f"{rule.max_per_period} events x {abs(rule.delta)} = {per_period} points in one period exceeds "
                f"{float(sc.max_period_share) * 100:.0f}% of the base for a {rule.severity} rule",
                "lower max_per_period or |delta|",
            )
        out.note(
            f"{rule.id}: {rule.severity}, {rule.delta:+d} = {float(Fraction(abs(rule.delta), base)) * 100:.1f}% of base "
            f"(limit {float(sc.max_share) * 100:.0f}%), crosses at most {bands} band(s)"
        )


@check("SC49.cap", A_SC49, "grade caps only on serious rules, never to the lowest band")
def _sc49_cap(ctx: LintContext, out: Sink) -> None:
    cat = ctx.catalog
    lowest = cat.labels[0]
    for rule in cat.rules:
        if rule.grade_cap is None:
            continue
        if not SCALE.get(rule.severity, SCALE["minor"]).cap_allowed:
            out.error(
                _r(rule, "grade_cap"),
                f"a {rule.severity} rule caps the grade at {rule.grade_cap}: a cap overrides every other record "
                "and is reserved for serious conduct",
                "remove grade_cap, or reclassify the rule as serious if the conduct is serious",
            )
        if rule.grade_cap == lowest:
            out.error(
                _r(rule, "grade_cap"),
                f"cap at the lowest band {lowest!r}: one event would decide the worst grade whatever else is recorded",
                f"cap at {cat.labels[1]!r} or higher, or drop the cap",
            )
        out.note(f"{rule.id}: {rule.severity}, caps at {rule.grade_cap}")
    if not any(r.grade_cap for r in cat.rules):
        out.note("no grade caps")


@check("SZ29.unrelated-factors", A_SZ29, "no rule scores conduct unrelated to credit")
def _sz29_unrelated(ctx: LintContext, out: Sink) -> None:
    m = ctx.vocabulary.unrelated_conduct
    for rule in ctx.catalog.rules:
        text = f"{rule.id} {rule.description} {rule.purpose}"
        term = m.find(text)
        if term is not None:
            out.error(
                _r(rule),
                f"rule scores conduct unrelated to credit (matches {term!r}): {rule.description!r}",
                "remove the rule: only conduct that bears on honouring legal or contractual obligations may count",
            )
    out.note(f"{len(ctx.catalog.rules)} rules checked against the unrelated-conduct vocabulary")


@check("SZ29.explainable", A_SZ29, "every rule is explained and traceable to an agency")
def _sz29_explain(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        d = rule.description.strip()
        if len(d) < 20 or d.replace(" ", "").lower() == rule.id.replace(".", "").lower():
            out.warning(
                _r(rule, "description"),
                f"description {d!r} does not explain the conduct to the person scored",
                "describe the conduct and the official document it is proven by",
            )
        if not rule.agency.strip():
            out.error(
                _r(rule, "agency"),
                "no source agency: the record is not traceable",
                "name the agency",
            )
    out.note(f"agencies: {', '.join(ctx.catalog.agencies)}")


def _sensitive_check(ctx: LintContext, out: Sink, check_id: str) -> None:
    n = 0
    for hit in ctx.sensitive:
        if check_id == hit.lint_id or check_id in hit.also:
            n += 1
            out.error(
                f"rules.{hit.rule_id}.{hit.field}",
                f"rule scores the sensitive category {hit.category!r} ({hit.evidence}); refused under {hit.article}",
                "remove the rule: psc never scores this category, whatever the wording (the loader refuses it too)",
            )
    if not n:
        out.note(
            f"{len(ctx.catalog.rules)} rules x {len(ctx.vocabulary.categories)} vocabulary categories: no match"
        )


@check("P11.sensitive", A_P11, "no rule scores a sensitive category (refused at load)")
def _p11(ctx: LintContext, out: Sink) -> None:
    _sensitive_check(ctx, out, "P11.sensitive")


@check(
    "CRI-14",
    "Credit Reporting Industry Regulations Art. 14",
    "no religion, genes, fingerprints, blood type, illness",
)
def _cri14(ctx: LintContext, out: Sink) -> None:
    _sensitive_check(ctx, out, "CRI-14")


@check("P10.camera", A_P10, "no camera- or face-derived score inputs")
def _p10(ctx: LintContext, out: Sink) -> None:
    _sensitive_check(ctx, out, "P10.camera")


@check("EUAI5.purpose", A_EUAI5, "the scheme's purposes stay in its domain")
def _euai5_purpose(ctx: LintContext, out: Sink) -> None:
    m = ctx.vocabulary.unrelated_use
    s = ctx.catalog.scheme
    for p in s.purposes:
        term = m.find(p)
        if term is not None:
            out.error(
                "scheme.purposes",
                f"permitted purpose {p!r} is a social context unrelated to the {s.domain!r} records scored (matches {term!r})",
                "remove the purpose: a grade may only be used in the domain its rules come from",
            )
    out.note(f"domain {s.domain!r}; rule domains {', '.join(s.rule_domains)}")


# ------------------------------------------------------------------------------------
# deployment scope


@check("DEP.catalog", A_DEP, "the deployment names the catalog being linted", "deployment")
def _dep_catalog(ctx: LintContext, out: Sink) -> None:
    dep_hash = ctx.dep.catalog.version_hash
    if dep_hash != ctx.catalog.version_hash:
        out.error(
            "deployment.catalog",
            f"the deployment names catalog {ctx.dep.catalog_ref!r} ({dep_hash[:12]}) but "
            f"{ctx.catalog.source} ({ctx.catalog.version_hash[:12]}) was linted",
            "lint the catalog the deployment names, or point deployment.catalog at this one",
        )
    out.note(f"catalog {ctx.dep.catalog_ref!r} hash {dep_hash}")


@check("P2.notice", A_P2, "the processing notice has every required field", "deployment")
def _p2_notice(ctx: LintContext, out: Sink) -> None:
    n = ctx.dep.notice
    for key in NOTICE_KEYS:
        v = n.fields.get(key)
        if v is None or (isinstance(v, str | list) and not v):
            out.error(f"notice.{key}", f"the notice does not state {key}", f"add notice.{key}")
    if not n.version:
        out.error("notice.version", "the notice has no version", "add notice.version")
    if n.published is None:
        out.error(
            "notice.published",
            "the notice has no publication date",
            "add notice.published = YYYY-MM-DD",
        )
    elif n.published > ctx.today:
        out.error(
            "notice.published",
            f"notice published {n.published}, after today {ctx.today}",
            "publish the notice before processing",
        )
    listed = n.fields.get("purposes", [])
    for p in ctx.catalog.scheme.purposes:
        if isinstance(listed, list) and p not in listed:
            out.error(
                "notice.purposes",
                f"scheme purpose {p!r} is not in the notice",
                f"add {p!r} to notice.purposes",
            )
    out.note(f"notice {n.version!r} published {n.published}")


@check("P2.renotify", A_P2, "the notice was issued for the current catalog version", "deployment")
def _p2_renotify(ctx: LintContext, out: Sink) -> None:
    n = ctx.dep.notice
    if n.catalog_hash != ctx.catalog.version_hash:
        out.error(
            "notice.catalog_hash",
            f"the catalog changed since notice {n.version!r} (notice {n.catalog_hash[:12] or 'none'}, "
            f"catalog {ctx.catalog.version_hash[:12]}): people must be re-notified",
            f"publish a new notice version and set notice.catalog_hash = {ctx.catalog.version_hash!r}",
        )
    out.note(f"notice bound to catalog hash {n.catalog_hash}")


@check(
    "P4.key-size",
    A_P4,
    "encryption keys large enough (Paillier >= 2048 bits, 3072 recommended)",
    "deployment",
)
def _p4_keys(ctx: LintContext, out: Sink) -> None:
    for i, s in enumerate(ctx.dep.schemes):
        w = f"schemes[{i}]"
        if s.name == "paillier":
            if s.key_bits is None or s.key_bits < 2048:
                out.error(
                    f"{w}.key_bits",
                    f"Paillier modulus of {s.key_bits} bits is below 2048 (about 112-bit security)",
                    "use key_bits = 3072 (128-bit security)",
                )
            elif s.key_bits < 3072:
                out.warning(
                    f"{w}.key_bits",
                    f"Paillier {s.key_bits} bits gives about 112-bit security",
                    "use key_bits = 3072 for 128-bit security",
                )
            out.note(f"paillier {s.key_bits} bits")
        else:
            if s.security_bits is None or s.security_bits < 128:
                out.error(
                    f"{w}.security_bits",
                    f"{s.name} parameters claim {s.security_bits} bits of security",
                    "choose parameters with security_bits >= 128 (HE standard tables)",
                )
            if s.poly_modulus_degree is None:
                out.error(
                    f"{w}.poly_modulus_degree",
                    f"{s.name} ring dimension not stated",
                    "state poly_modulus_degree (e.g. 8192, 32768)",
                )
            out.note(f"{s.name} N={s.poly_modulus_degree}, {s.security_bits}-bit security")


@check("P4.encryption", A_P4, "data encrypted in transit and at rest", "deployment")
def _p4_enc(ctx: LintContext, out: Sink) -> None:
    s = ctx.dep.security
    for key, val in (("transport", s.transport), ("at_rest", s.at_rest)):
        if not val.strip() or val.strip().lower() in ("none", "no", "plaintext"):
            out.error(
                f"security.{key}",
                f"no encryption {key.replace('_', ' ')}",
                f"state the protection, e.g. security.{key} = 'TLS 1.3' / 'AES-256-GCM'",
            )
    out.note(f"transport {s.transport!r}, at rest {s.at_rest!r}")


@check("P4.committee", A_P4, "decryption needs a majority of a key committee", "deployment")
def _p4_committee(ctx: LintContext, out: Sink) -> None:
    c = ctx.dep.committee
    if not 2 <= c.k <= c.n:
        out.error(
            "committee",
            f"committee {c.k} of {c.n}: one holder could decrypt, or k exceeds n",
            "use 2 <= k <= n, e.g. 3 of 5",
        )
    elif c.k <= c.n // 2:
        out.warning(
            "committee.k",
            f"{c.k} of {c.n} lets a minority of holders decrypt",
            f"raise k to at least {c.n // 2 + 1}",
        )
    out.note(f"committee {c.k} of {c.n}")


@check(
    "P6.consent", A_P6, "relying parties need subject-signed, withdrawable consent", "deployment"
)
def _p6(ctx: LintContext, out: Sink) -> None:
    c = ctx.dep.consent
    if c.model != "subject-signed-token":
        out.error(
            "consent.model",
            f"consent model {c.model!r} is not a subject-signed token",
            "set consent.model = 'subject-signed-token' (protocols/consent-token.md)",
        )
    if not c.withdrawal:
        out.error(
            "consent.withdrawal",
            "consent cannot be withdrawn",
            "set consent.withdrawal = true and run the withdrawal workflow",
        )
    if c.token_max_days <= 0:
        out.error(
            "consent.token_max_days",
            "tokens have no maximum validity; the reveal gate refuses tokens valid longer than "
            f"{token_life_limit(c.token_max_days).days} days",
            "set consent.token_max_days, e.g. 90",
        )
    elif token_life_limit(c.token_max_days).days != c.token_max_days:
        out.warning(
            "consent.token_max_days",
            f"tokens valid {c.token_max_days} days; consent should be renewed at least yearly, "
            f"and the reveal gate refuses tokens valid longer than "
            f"{token_life_limit(c.token_max_days).days} days",
            f"set token_max_days <= {MAX_TOKEN_DAYS}",
        )
    out.note(f"model {c.model!r}, withdrawal {c.withdrawal}, max {c.token_max_days} days")


@check(
    "P9.human-review",
    A_P9 + "; GDPR Art. 22 (contrast)",
    "every grade use has a human-review path",
    "deployment",
)
def _p9(ctx: LintContext, out: Sink) -> None:
    d = ctx.dep
    if not d.rights.human_review:
        out.error(
            "rights.human_review",
            "subjects cannot ask for a human review of an automated evaluation",
            "set rights.human_review = true and staff the review",
        )
    for i, u in enumerate(d.uses):
        if not u.human_review:
            out.error(
                f"uses[{i}].human_review",
                f"{u.relying_party} decides {u.consequence!r} solely on the grade",
                "require human review before a significant decision; set human_review = true",
            )
    out.note(f"{len(d.uses)} grade uses, human review {'on' if d.rights.human_review else 'off'}")


@check("P11.minors", A_P11 + " (minors under 14)", "only adults are scored", "deployment")
def _p11_minors(ctx: LintContext, out: Sink) -> None:
    d = ctx.dep
    if ctx.catalog.scheme.subject_kind != "person":
        out.note("scheme scores companies")
        return
    if d.min_age < 14:
        out.error(
            "deployment.min_age",
            f"persons from age {d.min_age} are scored: data of minors under 14 is sensitive",
            "set min_age = 18",
        )
    elif d.min_age < 18:
        out.warning(
            "deployment.min_age",
            f"minors from {d.min_age} are scored; project policy scores adults only",
            "set min_age = 18",
        )
    out.note(f"minimum age {d.min_age}")


@check("P12.residency", A_P12, "data stored in China", "deployment")
def _p12_res(ctx: LintContext, out: Sink) -> None:
    for where, val in (
        ("deployment.data_residency", ctx.dep.data_residency),
        ("scheme.data_residency", ctx.catalog.scheme.data_residency),
    ):
        if val.strip().upper() != "CN":
            out.error(
                where,
                f"data residency {val!r}: state organs must store personal information in China",
                f"set {where} = 'CN'; export only through [[transfers]]",
            )
    out.note(f"residency {ctx.dep.data_residency!r}")


def required_mechanism(persons: int, sensitive: int) -> str:
    """The weakest lawful mechanism for a year's transfer volume (CAC 2024 thresholds).

    ``>= 1,000,000`` persons or ``>= 10,000`` sensitive: security assessment;
    ``>= 100,000`` persons or any sensitive: standard contract (or certification);
    fewer than 100,000 non-sensitive: exempt (``none``).
    """
    if sensitive >= 10_000 or persons >= 1_000_000:
        return "security-assessment"
    if persons >= 100_000 or sensitive > 0:
        return "standard-contract"
    return "none"


_MECH_RANK = {"none": 0, "certification": 1, "standard-contract": 1, "security-assessment": 2}
assert set(_MECH_RANK) == set(MECHANISMS)


@check(
    "P13.transfer",
    A_P13,
    "cross-border transfers have the mechanism their volume requires",
    "deployment",
)
def _p13(ctx: LintContext, out: Sink) -> None:
    ts = ctx.dep.transfers
    if not ts:
        out.note("no cross-border transfer declared (default: no export)")
        return
    for i, t in enumerate(ts):
        w = f"transfers[{i}]"
        need = required_mechanism(t.persons_per_year, t.sensitive_persons_per_year)
        if _MECH_RANK[t.mechanism] < _MECH_RANK[need]:
            out.error(
                f"{w}.mechanism",
                f"{t.persons_per_year} persons ({t.sensitive_persons_per_year} sensitive) a year to {t.recipient} ({t.country}) "
                f"need a {need}, declared {t.mechanism!r}",
                f"obtain a {need} before exporting, or reduce the volume",
            )
        if not t.separate_consent:
            out.error(
                f"{w}.separate_consent",
                "no separate consent for the export (Art. 39)",
                "obtain and record separate consent; set separate_consent = true",
            )
        if t.sensitive_persons_per_year:
            out.warning(
                f"{w}.sensitive_persons_per_year",
                "sensitive data is exported, but psc catalogs never hold sensitive categories",
                "find and remove the sensitive data source",
            )
        out.note(
            f"{t.recipient} ({t.country}): {t.persons_per_year}/yr, mechanism {t.mechanism} (required {need})"
        )


@check(
    "P14.deadline",
    A_P14,
    "requests answered within 15 working days (stricter default)",
    "deployment",
)
def _p14(ctx: LintContext, out: Sink) -> None:
    n = ctx.dep.rights.deadline_working_days
    if n <= 0:
        out.error(
            "rights.deadline_working_days", "no request deadline", "set deadline_working_days = 15"
        )
    elif n > 21:
        out.error(
            "rights.deadline_working_days",
            f"{n} working days exceeds even the 30-day reply often cited (GB/T 35273, unverified)",
            "set deadline_working_days = 15",
        )
    elif n > 15:
        out.warning(
            "rights.deadline_working_days",
            f"{n} working days is above psc's stricter default of 15",
            "set deadline_working_days = 15",
        )
    out.note(
        f"requests due in {n} working days; {len(ctx.dep.rights.holidays)} holidays configured"
    )


@check(
    "CRI-25.dispute",
    "Credit Reporting Industry Regulations Art. 25",
    "disputed items checked within 20 days",
    "deployment",
)
def _cri25(ctx: LintContext, out: Sink) -> None:
    n = ctx.dep.rights.correction_deadline_days
    if not 0 < n <= 20:
        out.error(
            "rights.correction_deadline_days",
            f"disputes answered in {n} days; the limit is 20",
            "set correction_deadline_days = 20 or less",
        )
    out.note(f"corrections due within {n} calendar days")


@check("SZ82.repair", A_SZ82, "credit repair decided within 3 working days", "deployment")
def _sz82(ctx: LintContext, out: Sink) -> None:
    n = ctx.dep.rights.repair_deadline_working_days
    if not 0 < n <= 3:
        out.error(
            "rights.repair_deadline_working_days",
            f"repair decided in {n} working days; Shenzhen allows 3",
            "set repair_deadline_working_days = 3",
        )
    out.note(f"repair due in {n} working days")


@check(
    "CRI-15.notify",
    "Credit Reporting Industry Regulations Art. 15; Shenzhen Art. 39; SC 2020 No. 49",
    "the person is told before negative information is used or published",
    "deployment",
)
def _cri15(ctx: LintContext, out: Sink) -> None:
    if not ctx.dep.rights.notify_before_negative:
        out.error(
            "rights.notify_before_negative",
            "people are not told before negative information is supplied or published",
            "set rights.notify_before_negative = true and send the notice",
        )
    out.note(f"notify before negative: {ctx.dep.rights.notify_before_negative}")


@check(
    "CRI-17.free-reports",
    "Credit Reporting Industry Regulations Art. 17",
    "two free reports a year",
    "deployment",
)
def _cri17(ctx: LintContext, out: Sink) -> None:
    n = ctx.dep.rights.free_reports_per_year
    if n < 2:
        out.error(
            "rights.free_reports_per_year",
            f"{n} free reports a year; the person is entitled to two",
            "set free_reports_per_year = 2 or more",
        )
    out.note(f"{n} free reports a year")


@check("P15.audit", A_P15, "compliance audit recent enough for the population", "deployment")
def _p15(ctx: LintContext, out: Sink) -> None:
    d = ctx.dep
    large = d.population > LARGE_POPULATION
    years = AUDIT_YEARS_LARGE if large else AUDIT_YEARS_ASSUMED
    if d.last_audit is None:
        (out.error if large else out.warning)(
            "deployment.last_audit",
            f"no compliance audit on record for {d.population:,} persons",
            "commission a compliance audit and record deployment.last_audit",
        )
    elif d.last_audit > ctx.today:
        out.error(
            "deployment.last_audit",
            f"audit date {d.last_audit} is in the future",
            "record the date of the completed audit",
        )
    elif d.last_audit < _years_before(ctx.today, years):
        (out.error if large else out.warning)(
            "deployment.last_audit",
            f"last audit {d.last_audit} is more than {years} years before {ctx.today}"
            + (
                " (more than 10 million persons)"
                if large
                else " (psc assumes 3 years below 10 million persons)"
            ),
            "commission a new compliance audit",
        )
    out.note(
        f"population {d.population:,}; last audit {d.last_audit}; required every {years} years"
    )


@check(
    "P16.assessment",
    A_P16,
    "an impact assessment covers this catalog and is kept 3 years",
    "deployment",
)
def _p16(ctx: LintContext, out: Sink) -> None:
    a = ctx.dep.assessment
    if a.date is None or not a.artefact:
        out.error(
            "assessment",
            "no impact-assessment artefact on record",
            "run `psc pia DEPLOYMENT --out DIR` and record [assessment] date, artefact and catalog_hash",
        )
        return
    if a.date > ctx.today:
        out.error(
            "assessment.date",
            f"assessment dated {a.date}, after today",
            "record the date the assessment was made",
        )
    if a.catalog_hash != ctx.catalog.version_hash:
        out.error(
            "assessment.catalog_hash",
            "the assessment was made for another catalog version",
            "re-run `psc pia` for the current catalog and update [assessment]",
        )
    if a.retention_years < 3:
        out.error(
            "assessment.retention_years",
            f"assessment kept {a.retention_years} years; keep it at least 3",
            "set retention_years = 3 or more",
        )
    out.note(f"assessment {a.artefact!r} of {a.date}, kept {a.retention_years} years")


@check("P17.incident", A_P17, "an incident contact and plan exist", "deployment")
def _p17(ctx: LintContext, out: Sink) -> None:
    s = ctx.dep.security
    if not s.incident_contact.strip():
        out.error(
            "security.incident_contact",
            "no incident contact",
            "name the contact who notifies the regulator and persons",
        )
    if not s.incident_plan.strip():
        out.error(
            "security.incident_plan", "no incident plan", "reference the incident response plan"
        )
    out.note(f"incident contact {s.incident_contact!r}")


@check("P18.penalties", A_P18, "penalty exposure (reference data)", "deployment")
def _p18(ctx: LintContext, out: Sink) -> None:
    out.info(
        "deployment",
        "PIPL Art. 66: up to RMB 1 million (ordinary) or RMB 50 million / 5% of turnover (serious); "
        "EU AI Act Art. 99 (contrast): up to EUR 35 million or 7% for prohibited practices",
    )
    out.note("reference figures reported for the assessment")


@check(
    "P19.pseudonymisation",
    A_P19,
    "re-identification keys held apart from the aggregator",
    "deployment",
)
def _p19_pseudo(ctx: LintContext, out: Sink) -> None:
    if not ctx.dep.security.registry_separate:
        out.error(
            "security.registry_separate",
            "the identity-to-slot registry is not held apart from the aggregator",
            "hold the registry at a separate party; set registry_separate = true",
        )
    out.note(f"registry separate: {ctx.dep.security.registry_separate}")


@check(
    "P19.dp-budget",
    A_P19,
    "released statistics carry a sound differential-privacy budget",
    "deployment",
)
def _p19_dp(ctx: LintContext, out: Sink) -> None:
    p = ctx.dep.dp
    if p.accounting not in ("pure", "zcdp"):
        out.error("dp.accounting", f"unknown accounting {p.accounting!r}", "use 'pure' or 'zcdp'")
    if not 0 < p.epsilon_per_release <= p.epsilon_total:
        out.error(
            "dp.epsilon_per_release",
            f"epsilon per release {p.epsilon_per_release} must be > 0 and <= the total {p.epsilon_total}",
            "set 0 < epsilon_per_release <= epsilon_total",
        )
    elif p.epsilon_total > 10:
        out.warning(
            "dp.epsilon_total",
            f"total epsilon {p.epsilon_total} gives little protection",
            "keep epsilon_total <= 10 per subject and period",
        )
    if p.accounting == "zcdp" and not 0 < p.delta < 1 / max(ctx.dep.population, 1):
        out.error(
            "dp.delta",
            f"delta {p.delta} must be in (0, 1/population)",
            f"set delta below {1 / max(ctx.dep.population, 1):.1e}",
        )
    if not 0 <= p.dishonest_fraction < 1:
        out.error(
            "dp.dishonest_fraction",
            "the dishonest fraction must be in [0, 1)",
            "state the fraction of noise contributors assumed dishonest",
        )
    out.note(
        f"{p.accounting}: epsilon {p.epsilon_per_release}/release, {p.epsilon_total} total, delta {p.delta}; "
        f"sensitivity {ctx.catalog.max_abs_delta} points"
    )


@check("P1.use-purpose", A_P1, "every grade use is a permitted purpose of the scheme", "deployment")
def _p1_use(ctx: LintContext, out: Sink) -> None:
    s = ctx.catalog.scheme
    for i, u in enumerate(ctx.dep.uses):
        if u.purpose not in s.purposes:
            out.error(
                f"uses[{i}].purpose",
                f"{u.relying_party} uses the grade for {u.purpose!r}, not a purpose of the scheme",
                f"use one of {', '.join(s.purposes)}, or drop the use",
            )
    out.note(f"{len(ctx.dep.uses)} uses checked against {len(s.purposes)} purposes")


@check(
    "EUAI5.domain", A_EUAI5, "grades used only in the domain their rules come from", "deployment"
)
def _euai5_domain(ctx: LintContext, out: Sink) -> None:
    s = ctx.catalog.scheme
    allowed = {s.domain, *s.rule_domains}
    for i, u in enumerate(ctx.dep.uses):
        if u.domain not in allowed:
            out.error(
                f"uses[{i}].domain",
                f"{u.relying_party} uses a {s.domain!r} grade in the unrelated domain {u.domain!r}",
                f"use the grade only in {', '.join(sorted(allowed))}",
            )
    out.note(f"allowed domains: {', '.join(sorted(allowed))}")


@check(
    "EUAI5.unrelated-use", A_EUAI5, "no consequence in an unrelated social context", "deployment"
)
def _euai5_use(ctx: LintContext, out: Sink) -> None:
    m = ctx.vocabulary.unrelated_use
    for i, u in enumerate(ctx.dep.uses):
        term = m.find(f"{u.purpose} {u.consequence}")
        if term is not None:
            out.error(
                f"uses[{i}].consequence",
                f"{u.relying_party}: consequence {u.consequence!r} lies in a social context unrelated to where the "
                f"data was generated (matches {term!r}), e.g. school admission or travel bans from traffic tickets",
                "drop the consequence: a grade may only have consequences in the domain its rules come from, proportionate to the conduct",
            )
        else:
            out.note(f"{u.relying_party}: {u.consequence!r}")


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
