"""Every linter check: a passing and a failing example, parametrised over the registry."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

import pytest

from psc.catalog import Catalog, OfficialFinding, RetentionClass, Rule, load_catalog
from psc.policy.checks import CHECKS, check_ids, required_mechanism
from psc.policy.deployment import Deployment, GradeUse, SchemeParams, Transfer, load_deployment
from psc.policy.findings import Severity
from psc.policy.linter import lint
from psc.policy.proportionality import SCALE, max_bands_crossed, max_delta

TODAY = dt.date(2026, 11, 25)
CITY = load_catalog("city")
DEMO = load_deployment("demo")

Mutation = Callable[[Catalog, Deployment], tuple[Catalog, Deployment]]
#: checks that only report reference data: they never fail
INFORMATIONAL = {"P18.penalties"}


def rule(rule_id: str, **changes: object) -> Mutation:
    def mut(cat: Catalog, dep: Deployment) -> tuple[Catalog, Deployment]:
        rules = tuple(
            dataclasses.replace(r, **changes) if r.id == rule_id else r for r in cat.rules
        )  # type: ignore[arg-type]
        new = dataclasses.replace(cat, rules=rules)
        return new, dataclasses.replace(dep, catalog=new)

    return mut


def scheme(**changes: object) -> Mutation:
    def mut(cat: Catalog, dep: Deployment) -> tuple[Catalog, Deployment]:
        new = dataclasses.replace(cat, scheme=dataclasses.replace(cat.scheme, **changes))  # type: ignore[arg-type]
        return new, dataclasses.replace(dep, catalog=new)

    return mut


def retention(name: str, months: int) -> Mutation:
    def mut(cat: Catalog, dep: Deployment) -> tuple[Catalog, Deployment]:
        new = dataclasses.replace(
            cat, retention={**cat.retention, name: RetentionClass(name, months)}
        )
        return new, dataclasses.replace(dep, catalog=new)

    return mut


def dep(path: str, **changes: object) -> Mutation:
    """Replace fields of ``deployment.<path>`` (path '' for the deployment itself)."""

    def mut(cat: Catalog, d: Deployment) -> tuple[Catalog, Deployment]:
        if not path:
            return cat, dataclasses.replace(d, **changes)  # type: ignore[arg-type]
        inner = getattr(d, path)
        return cat, dataclasses.replace(d, **{path: dataclasses.replace(inner, **changes)})

    return mut


def notice_without(key: str) -> Mutation:
    def mut(cat: Catalog, d: Deployment) -> tuple[Catalog, Deployment]:
        fields = {k: v for k, v in d.notice.fields.items() if k != key}
        return cat, dataclasses.replace(d, notice=dataclasses.replace(d.notice, fields=fields))

    return mut


def other_catalog(cat: Catalog, d: Deployment) -> tuple[Catalog, Deployment]:
    return load_catalog("company"), d


def use(i: int, **changes: object) -> Mutation:
    def mut(cat: Catalog, d: Deployment) -> tuple[Catalog, Deployment]:
        uses = list(d.uses)
        uses[i] = dataclasses.replace(uses[i], **changes)  # type: ignore[arg-type]
        return cat, dataclasses.replace(d, uses=tuple(uses))

    return mut


def transfer(**kw: object) -> Mutation:
    t = Transfer(
        **(
            {
                "recipient": "cloud-sg",
                "country": "SG",
                "purpose": "backup",
                "persons_per_year": 200_000,
                "sensitive_persons_per_year": 0,
                "mechanism": "none",
                "separate_consent": True,
            }
            | kw
        )
    )  # type: ignore[arg-type]
    return dep("", transfers=(t,))


def schemes(*s: SchemeParams) -> Mutation:
    return dep("", schemes=s)


FAILING: list[tuple[str, Severity, Mutation]] = [
    ("P1.purpose", "error", rule("traffic.violation", purpose="other")),
    ("P1.purpose", "error", rule("traffic.violation", purpose="  ")),
    ("P1.scheme-purposes", "error", scheme(purposes=("credit-assessment", "general purpose"))),
    ("P14.self-access", "error", scheme(purposes=("credit-assessment", "tenancy-screening"))),
    ("P1.unused-retention", "warning", retention("spare", 12)),
    ("P5.legal-basis", "error", rule("traffic.violation", legal_basis="because")),
    ("P5.consent-negative", "error", rule("traffic.violation", legal_basis="consent")),
    ("P12.authority", "error", rule("tax.arrears", legal_authority="")),
    (
        "P12.authority",
        "warning",
        rule("tax.arrears", legal_authority="Tax Collection and Administration Law"),
    ),
    ("P3.evidence", "error", rule("traffic.violation", evidence_required=False)),
    ("P3.evidence", "warning", rule("civic.volunteering", evidence_required=False)),
    ("P3.official-finding", "error", rule("tax.arrears", finding=None)),
    (
        "P3.official-finding",
        "error",
        rule("tax.arrears", finding=OfficialFinding("creditor-record", "tax-bureau")),
    ),
    (
        "P12.competent-authority",
        "error",
        rule("tax.arrears", finding=OfficialFinding("tax-processing-decision", "tax-inspection")),
    ),
    (
        "P12.competent-authority",
        "warning",
        rule("tax.arrears", finding=OfficialFinding("court-judgment", "tax-bureau")),
    ),
    ("P4.classification", "error", rule("utility.arrears", data_categories=())),
    ("P7.retention-cap", "error", retention("negative", 72)),
    ("P7.retention-cap", "warning", retention("short", 48)),
    (
        "P8.publication",
        "error",
        rule("traffic.drunk-driving", publication="blacklist", publication_basis=None),
    ),
    (
        "P8.publication",
        "error",
        rule(
            "traffic.drunk-driving", publication="blacklist", publication_basis="separate consent"
        ),
    ),
    ("P8.publication", "error", rule("civic.volunteering", publication_basis="because we want to")),
    (
        "SC49.blacklist",
        "error",
        rule("tax.arrears", publication="blacklist", publication_basis="Tax Law, Art. 45"),
    ),
    ("SC49.proportionality", "error", rule("traffic.violation", delta=-200)),
    (
        "SC49.proportionality",
        "error",
        rule("traffic.violation", delta=-25),
    ),  # 2.5% but crosses 2 bands
    ("SC49.proportionality", "error", rule("civic.blood-donation", delta=100)),
    ("SC49.proportionality", "warning", rule("traffic.violation", max_per_period=30)),
    ("SC49.cap", "error", rule("traffic.violation", grade_cap="C")),
    ("SC49.cap", "error", rule("traffic.drunk-driving", grade_cap="D")),
    (
        "SZ29.unrelated-factors",
        "error",
        rule("utility.arrears", description="Playing online games more than three hours a day"),
    ),
    (
        "SZ29.unrelated-factors",
        "error",
        rule("admin.unpaid-fine", description="Walking the dog without a leash"),
    ),
    ("SZ29.explainable", "warning", rule("utility.arrears", description="bad")),
    ("SZ29.explainable", "error", rule("utility.arrears", agency=" ")),
    (
        "P11.sensitive",
        "error",
        rule("admin.unpaid-fine", description="Attended unregistered religious gatherings"),
    ),
    ("P11.sensitive", "error", rule("admin.unpaid-fine", data_categories=("health",))),
    (
        "CRI-14",
        "error",
        rule("admin.unpaid-fine", description="Blood type recorded at registration"),
    ),
    (
        "CRI-14",
        "error",
        rule("admin.unpaid-fine", description="Fingerprint mismatch at the border"),
    ),
    (
        "P10.camera",
        "error",
        rule("traffic.violation", description="Caught by a traffic camera running a red light"),
    ),
    (
        "P10.camera",
        "error",
        rule("traffic.violation", description="Face recognition match at a crossing"),
    ),
    ("EUAI5.purpose", "error", scheme(purposes=("credit-assessment", "school-admission"))),
    ("EUAI5.purpose", "error", scheme(purposes=("credit-assessment", "travel-ban"))),
    ("DEP.catalog", "error", other_catalog),
    ("P2.notice", "error", notice_without("rights")),
    ("P2.notice", "error", dep("notice", published=None)),
    ("P2.notice", "error", dep("notice", published=dt.date(2027, 1, 1))),
    ("P2.renotify", "error", dep("notice", catalog_hash="0" * 64)),
    ("P4.key-size", "error", schemes(SchemeParams("paillier", key_bits=1024))),
    ("P4.key-size", "warning", schemes(SchemeParams("paillier", key_bits=2048))),
    (
        "P4.key-size",
        "error",
        schemes(SchemeParams("ckks", poly_modulus_degree=8192, security_bits=80)),
    ),
    ("P4.encryption", "error", dep("security", transport="")),
    ("P4.encryption", "error", dep("security", at_rest="none")),
    ("P4.committee", "error", dep("committee", k=1)),
    ("P4.committee", "warning", dep("committee", k=2)),
    ("P6.consent", "error", dep("consent", withdrawal=False)),
    ("P6.consent", "error", dep("consent", model="implied")),
    ("P6.consent", "warning", dep("consent", token_max_days=730)),
    ("P9.human-review", "error", use(0, human_review=False)),
    ("P9.human-review", "error", dep("rights", human_review=False)),
    ("P11.minors", "error", dep("", min_age=12)),
    ("P11.minors", "warning", dep("", min_age=16)),
    ("P12.residency", "error", dep("", data_residency="SG")),
    ("P12.residency", "error", scheme(data_residency="US")),
    ("P13.transfer", "error", transfer()),
    ("P13.transfer", "error", transfer(persons_per_year=5_000_000, mechanism="standard-contract")),
    (
        "P13.transfer",
        "error",
        transfer(persons_per_year=10, mechanism="none", separate_consent=False),
    ),
    (
        "P13.transfer",
        "warning",
        transfer(persons_per_year=10, sensitive_persons_per_year=5, mechanism="standard-contract"),
    ),
    ("P14.deadline", "error", dep("rights", deadline_working_days=30)),
    ("P14.deadline", "warning", dep("rights", deadline_working_days=18)),
    ("CRI-25.dispute", "error", dep("rights", correction_deadline_days=30)),
    ("SZ82.repair", "error", dep("rights", repair_deadline_working_days=10)),
    ("CRI-15.notify", "error", dep("rights", notify_before_negative=False)),
    ("CRI-17.free-reports", "error", dep("rights", free_reports_per_year=1)),
    ("P15.audit", "error", dep("", population=20_000_000, last_audit=dt.date(2024, 1, 1))),
    ("P15.audit", "error", dep("", population=20_000_000, last_audit=None)),
    ("P15.audit", "warning", dep("", last_audit=dt.date(2022, 1, 1))),
    ("P15.audit", "error", dep("", last_audit=dt.date(2027, 1, 1))),
    ("P16.assessment", "error", dep("assessment", date=None)),
    ("P16.assessment", "error", dep("assessment", catalog_hash="f" * 64)),
    ("P16.assessment", "error", dep("assessment", retention_years=1)),
    ("P17.incident", "error", dep("security", incident_contact="")),
    ("P17.incident", "error", dep("security", incident_plan="")),
    ("P19.pseudonymisation", "error", dep("security", registry_separate=False)),
    ("P19.dp-budget", "error", dep("dp", epsilon_per_release=5.0)),
    ("P19.dp-budget", "error", dep("dp", delta=0.01)),
    ("P19.dp-budget", "warning", dep("dp", epsilon_total=50.0)),
    ("P1.use-purpose", "error", use(0, purpose="marketing")),
    ("EUAI5.domain", "error", use(1, domain="education")),
    (
        "EUAI5.unrelated-use",
        "error",
        use(1, consequence="refuse school admission to the subject's children"),
    ),
    (
        "EUAI5.unrelated-use",
        "error",
        use(0, consequence="travel ban: no flights or high-speed rail tickets"),
    ),
]


def test_every_check_has_a_failing_example() -> None:
    covered = {cid for cid, _, _ in FAILING}
    assert set(check_ids()) - INFORMATIONAL == covered


def test_check_ids_are_stable_and_unique() -> None:
    ids = check_ids()
    assert len(ids) == len(set(ids))
    assert {
        "P1.purpose",
        "P3.evidence",
        "P7.retention-cap",
        "CRI-14",
        "SC49.proportionality",
        "SZ29.unrelated-factors",
        "EUAI5.domain",
        "P13.transfer",
        "P15.audit",
        "P16.assessment",
    } <= set(ids)
    for c in CHECKS:
        assert c.article and c.title and c.scope in ("catalog", "deployment")


BASELINE = lint(CITY, DEMO, today=TODAY)


@pytest.mark.parametrize("check_id", check_ids())
def test_every_check_passes_on_the_demo(check_id: str) -> None:
    assert [f for f in BASELINE.by_check(check_id) if f.severity != "info"] == []
    (result,) = [r for r in BASELINE.results if r.check == check_id]
    assert result.status == "pass" and result.evidence


@pytest.mark.parametrize(
    ("check_id", "severity", "mutate"),
    FAILING,
    ids=[f"{c}-{s}-{i}" for i, (c, s, _) in enumerate(FAILING)],
)
def test_every_check_fails_on_its_counterexample(
    check_id: str, severity: Severity, mutate: Mutation
) -> None:
    cat, d = mutate(CITY, DEMO)
    report = lint(cat, d, today=TODAY)
    found = report.by_check(check_id)
    assert any(f.severity == severity for f in found), report.text_lines()
    f = next(f for f in found if f.severity == severity)
    assert f.article and f.subject and f.message and f.fix
    assert report.exit_code == (1 if report.count("error") else 0)
    (result,) = [r for r in report.results if r.check == check_id]
    assert result.status == ("fail" if severity == "error" else result.status)


def test_informational_check_reports_and_never_fails() -> None:
    (f,) = BASELINE.by_check("P18.penalties")
    assert f.severity == "info" and "RMB 50 million" in f.message


@pytest.mark.parametrize("name", ["city", "company"])
def test_shipped_catalogs_lint_clean(name: str) -> None:
    report = lint(load_catalog(name), today=TODAY)
    assert report.exit_code == 0 and report.count("warning") == 0
    assert all(r.status == "not-run" for r in report.results if r.scope == "deployment")


def test_disproportionate_rule_names_the_article() -> None:
    cat, _ = rule("traffic.violation", delta=-200)(CITY, DEMO)
    report = lint(cat, today=TODAY)
    (f,) = [f for f in report.by_check("SC49.proportionality") if "of the base score" in f.message]
    assert "2020 No. 49" in f.article and "EU AI Act Art. 5(1)(c)" in f.article
    assert "20.0% of the base score" in f.message and "at most 30" in f.fix


def test_sensitive_rule_reported_under_several_instruments() -> None:
    cat, _ = rule("admin.unpaid-fine", description="facial recognition of jaywalkers")(CITY, DEMO)
    report = lint(cat, today=TODAY)
    assert {"P11.sensitive", "CRI-14", "P10.camera", "SZ29.unrelated-factors"} <= {
        f.check for f in report.findings if f.severity == "error"
    }


@pytest.mark.parametrize(
    ("persons", "sensitive", "need"),
    [
        (0, 0, "none"),
        (99_999, 0, "none"),
        (100_000, 0, "standard-contract"),
        (999_999, 0, "standard-contract"),
        (1_000_000, 0, "security-assessment"),
        (10, 1, "standard-contract"),
        (10, 9_999, "standard-contract"),
        (10, 10_000, "security-assessment"),
    ],
)
def test_required_mechanism_thresholds(persons: int, sensitive: int, need: str) -> None:
    assert required_mechanism(persons, sensitive) == need


def test_audit_boundary_two_years_for_large_populations() -> None:
    d = dataclasses.replace(DEMO, population=10_000_001, last_audit=dt.date(2024, 11, 25))
    assert lint(CITY, d, today=TODAY).by_check("P15.audit") == []
    d = dataclasses.replace(d, last_audit=dt.date(2024, 11, 24))
    assert lint(CITY, d, today=TODAY).exit_code == 1
    d = dataclasses.replace(d, population=10_000_000)  # not more than 10 million: 3 years assumed
    assert lint(CITY, d, today=TODAY).by_check("P15.audit") == []


@pytest.mark.parametrize(
    ("delta", "bands"),
    [(0, 0), (5, 1), (20, 1), (21, 2), (30, 2), (90, 2), (91, 3), (450, 4), (451, 5)],
)
def test_bands_crossed_against_brute_force(delta: int, bands: int) -> None:
    ts = CITY.thresholds
    brute = max(sum(1 for t in ts if s - delta < t < s) for s in range(0, 1300))
    assert max_bands_crossed(ts, -delta) == brute == bands


def test_scale_is_monotone_and_fits_reported_figures() -> None:
    shares = [SCALE[s].max_share for s in ("minor", "moderate", "serious")]
    assert shares == sorted(shares)
    assert max_delta(1000, "minor") >= 5  # Rongcheng traffic ticket, -5
    assert not SCALE["minor"].cap_allowed and SCALE["serious"].cap_allowed


def test_report_json_shape() -> None:
    cat, d = rule("traffic.violation", purpose="other")(CITY, DEMO)
    data = lint(cat, d, today=TODAY).to_json()
    assert data["summary"]["exit_code"] == 1 and data["summary"]["error"] >= 1
    f = next(f for f in data["findings"] if f["check"] == "P1.purpose")
    assert f["subject"] == "rules.traffic.violation.purpose" and f["article"] == "PIPL Art. 5-6"
    assert {c["id"] for c in data["checks"]} == set(check_ids())


def test_uses_are_grade_uses() -> None:
    assert all(isinstance(u, GradeUse) for u in DEMO.uses)
    assert isinstance(CITY.rules[0], Rule)
