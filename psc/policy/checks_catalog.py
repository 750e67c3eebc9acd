"""Catalog-scope policy checks: what every catalog must satisfy, deployment or not.

Each function is one stable check id (``protocols/policy-checks.md``); they register
with :func:`psc.policy.check_registry.check` in report order.  A check never raises on
a policy problem: it reports findings and evidence through its sink.
"""

from __future__ import annotations

import re
from fractions import Fraction

from psc.catalog import FINDING_DOCUMENTS, LEGAL_BASES
from psc.policy.check_registry import (
    _ARTICLE_REF,
    _CONSENT_REF,
    _LAW_REF,
    A_EUAI5,
    A_P1,
    A_P3,
    A_P4,
    A_P5,
    A_P6,
    A_P7,
    A_P8,
    A_P10,
    A_P11,
    A_P12,
    A_SC49,
    A_SZ29,
    NEGATIVE_RETENTION_CAP_MONTHS,
    POSITIVE_RETENTION_CAP_MONTHS,
    LintContext,
    Sink,
    _negative,
    _r,
    check,
)
from psc.policy.proportionality import SCALE, max_bands_crossed


@check("P1.purpose", A_P1, "every rule declares a specific purpose")
def _p1_purpose(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        term = ctx.vocabulary.vague_purpose_term(rule.purpose)
        if term is not None:
            out.error(
                _r(rule, "purpose"),
                f"purpose {rule.purpose!r} is missing or too vague to be clear, reasonable and "
                f"directly related (matches {term!r})",
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
        term = ctx.vocabulary.vague_purpose_term(p)
        if term is not None:
            out.error(
                "scheme.purposes",
                f"permitted purpose {p!r} is too vague to bind the use of a grade (matches {term!r})",
                "list each concrete purpose a grade may be revealed for, e.g. 'credit-assessment'",
            )
    out.note(f"permitted purposes: {', '.join(s.purposes)}")


#: purposes every scheme must list (protocols/catalog.md §5.3); the protocol's self-access
#: request (psc.protocol.parameters.SELF_ACCESS_PURPOSE) asks under the first
REQUIRED_PURPOSES: tuple[tuple[str, str], ...] = (
    (
        "subject-self-access",
        "the subject's right to see their own grade (PIPL Art. 44-45); the reveal protocol "
        "asks under this purpose when a subject reads their own grade",
    ),
)


@check(
    "P14.self-access",
    "PIPL Art. 44-45; protocols/catalog.md s. 5.3",
    "the scheme lists every required purpose (subject-self-access)",
)
def _p14_self_access(ctx: LintContext, out: Sink) -> None:
    listed = ctx.catalog.scheme.purposes
    for purpose, why in REQUIRED_PURPOSES:
        if purpose not in listed:
            out.error(
                "scheme.purposes",
                f"required purpose {purpose!r} is missing: {why}",
                f"add {purpose!r} to scheme.purposes",
            )
    out.note(f"required purposes: {', '.join(p for p, _ in REQUIRED_PURPOSES)}")


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


@check(
    "P3.official-finding",
    f"{A_P3}; {A_SC49}",
    "every negative rule rests on conduct a court, administrative authority or arbitration body found",
)
def _p3_finding(ctx: LintContext, out: Sink) -> None:
    n = 0
    for rule in ctx.catalog.rules:
        if not _negative(rule):
            continue
        n += 1
        f = rule.finding
        if f is None:
            out.error(
                _r(rule, "finding"),
                "the rule names no official finding: nothing says which document proves the "
                "conduct or who found it",
                f'add finding = {{ document = "administrative-penalty-decision", authority = '
                f'"{rule.agency}" }} (or the court judgment, tax processing decision or '
                "arbitration award that proves it)",
            )
        elif FINDING_DOCUMENTS[f.document] == "private":
            out.error(
                _r(rule, "finding"),
                f"the conduct is proven only by a {f.document} of {f.authority}: no court, "
                "administrative authority or arbitration body has found it",
                "score only conduct found by a court judgment, an administrative decision or an "
                "arbitration award; otherwise remove the rule",
            )
        else:
            out.note(f"{rule.id}: {f.document} issued by {f.authority}")
    out.note(f"{n} negative rules checked")


#: words that name an issuer of each class, in English and Chinese
_ISSUER_WORDS = {
    "court": ("court", "法院"),
    "arbitration": ("arbitration", "仲裁"),
}


@check(
    "P12.competent-authority",
    A_P12,
    "every negative rule is scored by the authority competent to issue its finding",
)
def _p12_competent(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        f = rule.finding
        if not _negative(rule) or f is None:
            continue
        if f.authority.strip() != rule.agency.strip():
            out.error(
                _r(rule, "agency"),
                f"{rule.agency} scores conduct found by {f.authority} ({f.document}): only the "
                "competent authority that issued the finding may record it",
                f"set agency = {f.authority!r}, or have {f.authority} submit the records",
            )
        issuer = FINDING_DOCUMENTS[f.document]
        name = f.authority.casefold()
        for kind, words in _ISSUER_WORDS.items():
            named = any(w in name for w in words)
            if issuer == kind and not named:
                out.warning(
                    _r(rule, "finding"),
                    f"a {f.document} is issued by a {kind}, but {f.authority!r} does not name one",
                    f"name the {kind} that issues it as finding.authority (and agency)",
                )
            elif issuer != kind and named:
                out.warning(
                    _r(rule, "finding"),
                    f"{f.authority!r} looks like a {kind}, which does not issue a {f.document}",
                    "use the document kind this authority issues",
                )
        out.note(f"{rule.id}: scored by {rule.agency}, found by {f.authority}")


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


#: a description shorter than this many words explains nothing to the person scored
MIN_EXPLANATION_WORDS = 4
_LATIN_WORD = re.compile(r"[^\W\d_]+|\d+")
_CJK_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def explanation_words(text: str) -> int:
    """Words in a description, counted fairly across scripts.

    Latin (and other alphabetic) text counts its words; Chinese has no spaces and a word
    averages about two characters, so every two CJK characters count as one word
    (rounded up).  ``"Unpaid fine"`` is 2 words; an 18-character Chinese sentence is 9.
    """
    cjk = len(_CJK_CHAR.findall(text))
    latin = len(_LATIN_WORD.findall(_CJK_CHAR.sub(" ", text)))
    return latin + (cjk + 1) // 2


@check("SZ29.explainable", A_SZ29, "every rule is explained and traceable to an agency")
def _sz29_explain(ctx: LintContext, out: Sink) -> None:
    for rule in ctx.catalog.rules:
        d = rule.description.strip()
        if (
            explanation_words(d) < MIN_EXPLANATION_WORDS
            or d.replace(" ", "").lower() == rule.id.replace(".", "").lower()
        ):
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
