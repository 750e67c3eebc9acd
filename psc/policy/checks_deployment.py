"""Deployment-scope policy checks: run only when a deployment description is given.

Each function is one stable check id (``protocols/policy-checks.md``), registered in
report order after the catalog-scope checks.
"""

from __future__ import annotations

from psc.policy.check_registry import (
    A_DEP,
    A_P2,
    A_P4,
    A_P6,
    A_P9,
    A_P11,
    A_P12,
    A_P13,
    A_P14,
    NOTICE_KEYS,
    LintContext,
    Sink,
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
