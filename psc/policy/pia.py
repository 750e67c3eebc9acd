"""Personal-information impact assessment (PIPL Art. 55-56) for a deployment.

:func:`build_pia` turns a deployment and its lint report into a structured document
(sections of paragraphs, bullet lists and tables); :meth:`PiaReport.to_markdown` and
:meth:`PiaReport.to_html` render the same document, the HTML self-contained (inline
style, no external assets, no scripts).  The report covers what Art. 56 asks for:
legality, legitimacy and necessity of purpose and method; the impact on rights and the
risks; whether the safeguards are lawful, effective and proportionate.  It lists every
check with its evidence, the privacy parameters, what each party learns, the residual
risks, and records its generation date and the catalog version hash; Art. 56 requires it
to be kept at least three years.

Output is deterministic for a given deployment and ``generated`` date, so the example in
``papers/pia-example/`` regenerates byte for byte.
"""

from __future__ import annotations

import datetime as dt

from psc.catalog import PLURAL, Rule
from psc.policy.checks import required_mechanism
from psc.policy.deployment import Deployment
from psc.policy.findings import LintReport
from psc.policy.pia_render import (
    Block,
    Bullets,
    Paragraph,
    PiaReport,
    Section,
    Table,
    write_pia,
)
from psc.policy.proportionality import SCALE, max_bands_crossed
from psc.policy.verdicts import PROPORTIONALITY_CHECKS, SENSITIVE_CHECKS, Verdicts

__all__ = [
    "Block",
    "Bullets",
    "Paragraph",
    "PiaReport",
    "Section",
    "Table",
    "Verdicts",
    "build_pia",
    "write_pia",
]


def _finding_cell(rule: Rule) -> str:
    f = rule.finding
    return "none" if f is None else f"{f.document} by {f.authority}"


def _publication_cell(rule: Rule) -> str:
    if rule.publication == "none":
        return "none"
    return f"{rule.publication}: {rule.publication_basis or 'NO BASIS GIVEN'}"


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def build_pia(deployment: Deployment, report: LintReport, *, generated: dt.date) -> PiaReport:
    """Assemble the impact assessment of ``deployment`` from its lint ``report``.

    ``generated`` is the assessment date (pass it explicitly; it is printed and sets the
    retention date, at least three years later).
    """
    d = deployment
    v = Verdicts(report)
    cat = d.catalog
    s = cat.scheme
    keep_years = max(3, d.assessment.retention_years)
    retain_until = _add_years(generated, keep_years)
    ran = [r for r in report.results if r.status != "not-run"]
    n = {st: sum(1 for r in ran if r.status == st) for st in ("pass", "warn", "fail")}
    verdict = (
        "The deployment may proceed: no check fails."
        if not n["fail"]
        else f"The deployment must not proceed until every failing check is fixed "
        f"({report.count('error')} error-level finding(s), listed under Findings)."
    )
    sections: list[Section] = []

    sections.append(
        Section(
            "Summary",
            (
                Table(
                    ("item", "value"),
                    (
                        ("deployment", f"{d.name} ({d.source})"),
                        ("personal-information processor", d.operator or s.operator),
                        ("catalog", f"{s.name} v{s.version} ({cat.source})"),
                        ("catalog version hash", cat.version_hash),
                        (
                            "persons scored",
                            f"{d.population:,} ({PLURAL[s.subject_kind]} aged {d.min_age}+)"
                            if s.subject_kind == "person"
                            else f"{d.population:,} {PLURAL[s.subject_kind]}",
                        ),
                        ("assessment generated", generated.isoformat()),
                        ("checks evaluated as of", report.as_of),
                        (
                            "keep this assessment until",
                            f"{retain_until.isoformat()} (PIPL Art. 56: at least 3 years)",
                        ),
                        (
                            "checks run",
                            f"{len(ran)}: {n['pass']} pass, {n['warn']} warn, {n['fail']} fail",
                        ),
                    ),
                ),
                Paragraph(verdict),
            ),
        )
    )

    publishes = [r.id for r in cat.rules if r.publication != "none"]
    sensitive = v.sensitive_findings()
    sections.append(
        Section(
            "Why an assessment is required (Art. 55)",
            (
                Table(
                    ("trigger", "applies", "because", "checks", "status"),
                    (
                        (
                            "sensitive personal information",
                            "yes" if sensitive else "no",
                            "the linter found sensitive personal information: "
                            + "; ".join(sensitive)
                            + " (a catalog scoring it is refused at load and must not run)"
                            if sensitive
                            else "no rule matches the sensitive-category vocabulary and no minor "
                            "is scored; such rules are refused at load",
                            ", ".join(SENSITIVE_CHECKS),
                            v.status(*SENSITIVE_CHECKS),
                        ),
                        (
                            "automated decision-making",
                            "yes",
                            "a grade is an evaluation of credit status (Art. 73) computed automatically",
                            "P9.human-review",
                            v.status("P9.human-review"),
                        ),
                        (
                            "provision to other processors",
                            "yes" if d.uses else "no",
                            f"{len(d.uses)} relying-party uses of grades, each to be authorised "
                            "by a subject-signed consent token",
                            "P6.consent, P1.use-purpose, EUAI5.domain, EUAI5.unrelated-use",
                            v.status(
                                "P6.consent",
                                "P1.use-purpose",
                                "EUAI5.domain",
                                "EUAI5.unrelated-use",
                            ),
                        ),
                        (
                            "publication",
                            "yes" if publishes else "no",
                            ", ".join(publishes) or "no rule publishes to a list",
                            "P8.publication, SC49.blacklist",
                            v.status("P8.publication", "SC49.blacklist"),
                        ),
                        (
                            "cross-border transfer",
                            "yes" if d.transfers else "no",
                            f"{len(d.transfers)} transfers declared"
                            if d.transfers
                            else "none declared; default is no export",
                            "P13.transfer",
                            v.status("P13.transfer"),
                        ),
                    ),
                ),
            ),
        )
    )

    sections.append(
        Section(
            "Processing: purposes, legal bases and rules (legality and necessity)",
            (
                Paragraph(
                    f"Scheme {s.name!r}, domain {s.domain!r}, permitted purposes: {', '.join(s.purposes)}. "
                    f"Every {s.subject_kind} starts at {s.base_score} points within [{s.min_score}, {s.max_score}]; "
                    "bands: "
                    + ", ".join(
                        f"{g.label} above {float(g.min):g}"
                        if g.min is not None
                        else f"{g.label} below"
                        for g in cat.grades
                    )
                    + ". Points move only on evidence-backed records of the agencies below."
                ),
                Table(
                    (
                        "rule",
                        "agency",
                        "delta",
                        "severity",
                        "cap",
                        "retention",
                        "legal basis",
                        "authority",
                        "purpose",
                        "publication",
                        "official finding",
                        "findings",
                    ),
                    tuple(
                        (
                            r.id,
                            r.agency,
                            f"{r.delta:+d}",
                            r.severity,
                            r.grade_cap or "-",
                            f"{r.retention} ({cat.retention[r.retention].months} mo)",
                            r.legal_basis,
                            r.legal_authority,
                            r.purpose,
                            _publication_cell(r),
                            _finding_cell(r),
                            v.rule_checks(r.id),
                        )
                        for r in cat.rules
                    ),
                ),
            ),
        )
    )

    sections.append(
        Section(
            "Proportionality",
            (
                Paragraph(
                    "Each severity class may move the score by at most a share of the base score and cross at most "
                    "a number of band thresholds in one event (psc.policy.proportionality; a project policy "
                    "implementing SC 2020 No. 49 and the EU AI Act Art. 5(1)(c)(ii) contrast)."
                ),
                Table(
                    ("severity", "max |delta| per event", "max bands crossed", "grade cap"),
                    tuple(
                        (
                            v.severity,
                            f"{float(v.max_share) * 100:.0f}% of base = {float(v.max_share * s.base_score):g} points",
                            "any" if v.max_bands is None else str(v.max_bands),
                            "allowed, not to the lowest band" if v.cap_allowed else "not allowed",
                        )
                        for v in SCALE.values()
                    ),
                ),
                Table(
                    (
                        "rule",
                        "severity",
                        "delta",
                        "share of base",
                        "bands crossed (worst case)",
                        "proportionality findings",
                    ),
                    tuple(
                        (
                            r.id,
                            r.severity,
                            f"{r.delta:+d}",
                            f"{abs(r.delta) / s.base_score * 100:.1f}%",
                            str(max_bands_crossed(cat.thresholds, r.delta)),
                            ", ".join(v.rule_findings(r.id, *PROPORTIONALITY_CHECKS)) or "none",
                        )
                        for r in cat.rules
                    ),
                ),
            ),
        )
    )

    sch_rows = tuple(
        (
            p.name,
            f"{p.key_bits}-bit modulus"
            if p.name == "paillier"
            else f"N = {p.poly_modulus_degree}, {p.security_bits}-bit security",
            "P4.key-size",
            v.status("P4.key-size"),
        )
        for p in d.schemes
    )
    params: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        (
            "key committee",
            f"{d.committee.k} of {d.committee.n} holders must cooperate to decrypt",
            ("P4.committee",),
        ),
        (
            "differential privacy",
            f"{d.dp.accounting}: epsilon {d.dp.epsilon_per_release} per release, "
            f"{d.dp.epsilon_total} total per subject, delta {d.dp.delta:g}",
            ("P19.dp-budget",),
        ),
        (
            "dishonest noise contributors tolerated",
            f"{d.dp.dishonest_fraction:.0%}",
            ("P19.dp-budget",),
        ),
        ("sensitivity (largest |delta| of one event)", f"{cat.max_abs_delta} points", ()),
        (
            "retention classes",
            ", ".join(f"{c.name} {c.months} months" for c in cat.retention.values()),
            ("P7.retention-cap",),
        ),
        ("transparency-log retention", f"{d.log_retention_months} months", ()),
        (
            "transport / at rest",
            f"{d.security.transport} / {d.security.at_rest}",
            ("P4.encryption",),
        ),
        (
            "identity registry held apart",
            "yes" if d.security.registry_separate else "NO",
            ("P19.pseudonymisation",),
        ),
        ("data residency", d.data_residency, ("P12.residency",)),
        (
            "consent",
            f"{d.consent.model}, valid at most {d.consent.token_max_days} days, "
            f"withdrawal {'on' if d.consent.withdrawal else 'OFF'}",
            ("P6.consent",),
        ),
    )
    sections.append(
        Section(
            "Privacy and security parameters",
            (
                Table(("scheme", "parameters", "checks", "status"), sch_rows),
                Table(
                    ("parameter", "value", "checks", "status"),
                    tuple(
                        (name, value, ", ".join(ids) or "-", v.status(*ids) if ids else "-")
                        for name, value, ids in params
                    ),
                ),
            ),
        )
    )

    sections.append(Section("What each party learns", (_party_table(d),)))

    sections.append(
        Section(
            "Checks and evidence",
            (
                Paragraph(
                    "Every check of the psc policy linter, with the facts it examined. Status: pass, warn (a warning-level "
                    "finding), fail (an error-level finding), not-run (deployment checks without a deployment)."
                ),
                Table(
                    ("check", "article", "what it requires", "status", "evidence"),
                    tuple(
                        (r.check, r.article, r.title, r.status, "; ".join(r.evidence))
                        for r in report.results
                    ),
                ),
            ),
        )
    )

    fl = report.findings
    sections.append(
        Section(
            "Findings",
            (
                Table(
                    ("severity", "check", "concerns", "finding", "what to change"),
                    tuple((f.severity, f.check, f.subject, f.message, f.fix) for f in fl),
                )
                if fl
                else Paragraph("No findings."),
            ),
        )
    )

    sections.append(Section("Residual risks and safeguards", (Bullets(_residual_risks(d, v)),)))

    rc = d.rights
    sections.append(
        Section(
            "Rights of the persons scored",
            (
                Table(
                    ("right", "how", "deadline", "checks", "status"),
                    tuple(
                        (*row, ", ".join(ids), v.status(*ids))
                        for *row, ids in (
                            (
                                "access and explanation (Art. 45, 48)",
                                "own events with Merkle inclusion proofs against the agencies' committed roots; score and grade",
                                f"{rc.deadline_working_days} working days",
                                ("P14.deadline", "P14.self-access"),
                            ),
                            (
                                "correction and appeal (Art. 46)",
                                "the agency records a compensating delta linked to the original event",
                                f"{rc.correction_deadline_days} calendar days (CRI Art. 25), and at most {rc.deadline_working_days} working days",
                                ("CRI-25.dispute", "P14.deadline"),
                            ),
                            (
                                "deletion and credit repair (Art. 47; Shenzhen Art. 79-82)",
                                "early removal of a record class once its conditions are met",
                                f"{rc.repair_deadline_working_days} working days",
                                ("SZ82.repair",),
                            ),
                            (
                                "consent withdrawal (Art. 15)",
                                "the token id is withdrawn; later queries with it are refused and logged",
                                "immediate" if d.consent.withdrawal else "NOT OFFERED",
                                ("P6.consent",),
                            ),
                            (
                                "human review (Art. 24)",
                                "a caseworker reviews any decision based on a grade",
                                "on request" if rc.human_review else "NOT OFFERED",
                                ("P9.human-review",),
                            ),
                            (
                                "free reports (CRI Art. 17)",
                                "self-access",
                                f"{rc.free_reports_per_year} a year",
                                ("CRI-17.free-reports",),
                            ),
                        )
                    ),
                ),
                Paragraph(
                    f"Deadlines count working days in UTC+8 (weekends skipped, {len(rc.holidays)} public holidays and "
                    f"{len(rc.extra_workdays)} make-up working days configured); overdue requests are reported by `psc rights overdue`."
                ),
            ),
        )
    )

    sections.append(
        Section(
            "Retention of this assessment",
            (
                Paragraph(
                    f"Generated {generated.isoformat()} by `psc pia` for catalog version hash {cat.version_hash}. "
                    f"Keep until at least {retain_until.isoformat()}. Any change of the catalog changes its hash; "
                    "the linter then fails P16.assessment and P2.renotify until a new notice is published and a new "
                    "assessment generated."
                ),
                Paragraph(
                    "Penalty reference (P18): PIPL Art. 66 up to RMB 1 million for ordinary violations, up to RMB 50 million "
                    "or 5% of the previous year's turnover for serious ones; EU AI Act (contrast) up to EUR 35 million or 7% "
                    "of worldwide turnover for prohibited practices."
                ),
            ),
        )
    )

    return PiaReport(
        title=f"Personal-information impact assessment: {d.name}",
        generated=generated,
        retain_until=retain_until,
        catalog_hash=cat.version_hash,
        sections=tuple(sections),
    )


def _party_table(d: Deployment) -> Table:
    c = d.committee
    eps = d.dp.epsilon_per_release
    return Table(
        ("party", "holds", "learns", "never learns", "safeguard"),
        (
            (
                "Agency (court, tax office, transport bureau, utility...)",
                "its own records, each with the hash of the official document",
                "its own records",
                "other agencies' records; anyone's score or grade",
                "dense encrypted delta vectors (zeros where nothing happened); private Merkle commitment to its event list",
            ),
            (
                "Aggregator (scoring authority)",
                "encrypted accumulators, the transparency log",
                "ciphertexts and public metadata: which agency submitted for which period, sizes, catalog version",
                "any delta, score or grade; who had an event",
                "holds no key share; dense vectors; signed, logged envelopes",
            ),
            (
                "Key committee",
                f"shares of the decryption key ({c.k} of {c.n})",
                f"only what the reveal protocol decrypts: grades for lawful requests, or statistics with DP noise (epsilon {eps})",
                f"exact scores; individual deltas; anything at all with fewer than {c.k} holders",
                "threshold decryption with proofs of correct shares; distributed noise; noise flooding before CKKS decryption",
            ),
            (
                "Relying party (bank, landlord, employer)",
                "a consent token signed by the subject",
                "one grade, for the purpose, domain and catalog version in the token",
                "the score, the events, other subjects' grades",
                f"token bound to party, purpose, domain, catalog hash and an expiry (at most {d.consent.token_max_days} days); withdrawal; refusals logged",
            ),
            (
                "Subject (the person scored)",
                "credentials",
                "their own events, score, grade and explanation, with inclusion proofs",
                "other subjects' data",
                "access, correction, repair and withdrawal workflows with deadlines",
            ),
            (
                "Auditor / regulator",
                "public keys",
                "the transparency log, the privacy-budget ledger, this assessment",
                "personal data in the clear",
                "DP-protected statistics only; published catalog with version hash",
            ),
        ),
    )


def _residual_risks(d: Deployment, v: Verdicts) -> tuple[str, ...]:
    c = d.committee
    report = v.report
    ok = {cid: v.status(cid) in ("pass", "warn") for cid in ("P19.pseudonymisation", "SC49.cap")}
    risks = [
        f"Collusion of {c.k} or more of the {c.n} key holders can decrypt any accumulator: the committee must be "
        "held by independent institutions, with decryption requests logged.",
        "Public metadata (which agency submitted in which period, envelope sizes) is visible to the aggregator; it "
        "reveals agency activity, not individual events, because vectors are dense.",
        "A revealed grade still discloses a band of the score; repeated reveals to several relying parties are "
        "bounded by consent, not by cryptography.",
        f"Differentially private statistics leak up to epsilon {d.dp.epsilon_total} per subject in total; the budget "
        "ledger refuses further releases once it is spent.",
        "The identity-to-slot registry can re-identify every pseudonymous slot (Art. 4, 73: pseudonymised data is "
        "personal information); "
        + (
            "it is held apart from the aggregator and in scope of this assessment."
            if ok["P19.pseudonymisation"]
            else "it is NOT held apart from the aggregator (P19.pseudonymisation fails)."
        ),
        "Sensitive-category detection is lexical: a rule worded to evade the vocabulary would not be caught "
        "automatically; catalogs are also reviewed by people, and every evasion found is added to the vocabulary.",
        "The proportionality scale, the 3-year audit interval below 10 million persons, and the judgment-defaulter "
        "listing period are project assumptions or secondary-source figures, marked as such in pipl.md.",
        "Grade caps (e.g. drunk driving) override every positive record while in retention; "
        + (
            "they are limited to serious conduct and never to the lowest band."
            if ok["SC49.cap"]
            else "the linter found caps on conduct that is not serious or to the lowest band "
            "(SC49.cap fails)."
        ),
    ]
    if any(r.publication == "blacklist" for r in d.catalog.rules):
        risks.append(
            "Rules that publish to a blacklist expose listed persons to public shaming; "
            + (
                "publication follows the cited law only, after notice to the person, and ends with "
                "the retention period or on credit repair."
                if v.status("P8.publication", "SC49.blacklist") in ("pass", "warn")
                else "the linter found blacklists without a legal basis or for conduct that is not "
                "serious (P8.publication / SC49.blacklist fail)."
            )
        )
    for t in d.transfers:
        risks.append(
            f"Export to {t.recipient} ({t.country}): {t.persons_per_year} persons a year under {t.mechanism} "
            f"(required {required_mechanism(t.persons_per_year, t.sensitive_persons_per_year)})."
        )
    for f in report.findings:
        if f.severity in ("warning", "error"):
            risks.append(f"Open {f.severity} {f.check} on {f.subject}: {f.message}")
    return tuple(risks)
