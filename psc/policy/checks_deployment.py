"""Deployment-scope policy checks: run only when a deployment description is given.

Each function is one stable check id (``protocols/policy-checks.md``), registered in
report order after the catalog-scope checks.
"""

from __future__ import annotations

from psc.policy.check_registry import (
    A_DEP,
    A_EUAI5,
    A_P1,
    A_P2,
    A_P4,
    A_P6,
    A_P9,
    A_P11,
    A_P12,
    A_P13,
    A_P14,
    A_P15,
    A_P16,
    A_P17,
    A_P18,
    A_P19,
    A_SZ82,
    AUDIT_YEARS_ASSUMED,
    AUDIT_YEARS_LARGE,
    LARGE_POPULATION,
    NOTICE_KEYS,
    LintContext,
    Sink,
    _years_before,
    check,
)
from psc.policy.consent import MAX_TOKEN_DAYS, token_life_limit
from psc.policy.deployment import MECHANISMS


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
