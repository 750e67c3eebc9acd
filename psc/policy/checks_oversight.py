"""Deployment-scope policy checks of oversight and use: rights timing, audits, impact
assessment, incidents, penalties, de-identification, and the domain a grade is used in.

Each function is one stable check id (``protocols/policy-checks.md``), registered in
report order after :mod:`psc.policy.checks_deployment`.
"""

from __future__ import annotations

from psc.policy.check_registry import (
    A_EUAI5,
    A_P1,
    A_P15,
    A_P16,
    A_P17,
    A_P18,
    A_P19,
    A_SZ82,
    AUDIT_YEARS_ASSUMED,
    AUDIT_YEARS_LARGE,
    LARGE_POPULATION,
    LintContext,
    Sink,
    _years_before,
    check,
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
