"""Deployment descriptions: the facts about one running psc installation the linter checks.

The normative format is ``protocols/deployment.md``.  A catalog says *what* is scored; a
deployment says *how* and *where*: which catalog (built-in name or a path relative to the
deployment file), the schemes and key sizes, the key committee, differential-privacy
budgets, data residency, cross-border transfers with annual volumes, the consent model,
request deadlines, the published notice, the population scored, the last compliance audit
and the impact assessment.  :func:`load_deployment` validates types and reports every
problem at once in one :class:`~psc.exceptions.DeploymentError`; whether the values are
*lawful* is for :mod:`psc.policy.checks` to say.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from psc.catalog import BUILTIN_CATALOGS, Catalog, load_catalog
from psc.exceptions import CatalogError, DeploymentError
from psc.policy.toml_input import read_toml_file, unknown_keys

#: built-in example deployments, shipped as ``psc/policy/<name>-deployment.toml``
BUILTIN_DEPLOYMENTS = ("demo",)

#: cross-border transfer mechanisms (PIPL Art. 38), weakest first
MECHANISMS = ("none", "certification", "standard-contract", "security-assessment")


@dataclass(frozen=True)
class SchemeParams:
    """One encryption scheme in use and its parameters."""

    name: str  # "paillier" | "ckks" | "bfv"
    key_bits: int | None = None  # Paillier modulus size
    poly_modulus_degree: int | None = None  # CKKS/BFV ring dimension N
    security_bits: int | None = None  # claimed classical security level (lattice schemes)


@dataclass(frozen=True)
class Committee:
    """The k-of-n key committee: any k shares decrypt, fewer learn nothing."""

    k: int
    n: int


@dataclass(frozen=True)
class DpBudget:
    """Differential-privacy budgets of released statistics (per subject)."""

    accounting: str  # "pure" | "zcdp"
    epsilon_per_release: float
    epsilon_total: float
    delta: float
    dishonest_fraction: float


@dataclass(frozen=True)
class Transfer:
    """A cross-border transfer (PIPL Art. 38-40) with its annual volumes."""

    recipient: str
    country: str
    purpose: str
    persons_per_year: int
    sensitive_persons_per_year: int
    mechanism: str
    separate_consent: bool


@dataclass(frozen=True)
class GradeUse:
    """How a relying party uses a revealed grade, and what follows from it."""

    relying_party: str
    purpose: str
    domain: str
    consequence: str
    human_review: bool


@dataclass(frozen=True)
class Notice:
    """The published processing notice (PIPL Art. 7, 17)."""

    version: str
    catalog_hash: str
    published: dt.date | None
    fields: Mapping[str, Any]  # processor, contact, purposes, method, categories, retention, rights


@dataclass(frozen=True)
class ConsentModel:
    """How relying parties obtain consent (PIPL Art. 14-16)."""

    model: str  # "subject-signed-token"
    withdrawal: bool
    token_max_days: int


@dataclass(frozen=True)
class RightsConfig:
    """Data-subject request handling (PIPL Art. 44-50; CRI Art. 15, 17, 25; Shenzhen Art. 79-82)."""

    deadline_working_days: int = 15
    correction_deadline_days: int = 20
    repair_deadline_working_days: int = 3
    holidays: tuple[dt.date, ...] = ()
    extra_workdays: tuple[dt.date, ...] = ()
    notify_before_negative: bool = True
    free_reports_per_year: int = 2
    human_review: bool = True


@dataclass(frozen=True)
class Security:
    """Security measures (PIPL Art. 9, 51, 57) and pseudonymisation (Art. 4, 73)."""

    transport: str
    at_rest: str
    registry_separate: bool
    incident_contact: str
    incident_plan: str


@dataclass(frozen=True)
class Assessment:
    """The impact-assessment artefact on record (PIPL Art. 55-56)."""

    date: dt.date | None
    catalog_hash: str
    artefact: str
    retention_years: int


@dataclass(frozen=True)
class Deployment:
    """A validated deployment description.  Build one with :func:`load_deployment`."""

    name: str
    operator: str
    catalog_ref: str
    catalog: Catalog
    population: int
    min_age: int
    data_residency: str
    last_audit: dt.date | None
    schemes: tuple[SchemeParams, ...]
    committee: Committee
    dp: DpBudget
    security: Security
    consent: ConsentModel
    rights: RightsConfig
    notice: Notice
    assessment: Assessment
    log_retention_months: int
    transfers: tuple[Transfer, ...] = ()
    uses: tuple[GradeUse, ...] = ()
    source: str = "<deployment>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class _Reader:
    """Typed access to nested TOML tables, collecting every problem."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, data: Mapping[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
        v = data.get(key)
        if v is None:
            if required:
                self.problems.append(f"[{key}]: missing table")
            return {}
        if not isinstance(v, dict):
            self.problems.append(f"{key}: must be a table")
            return {}
        return v

    def get(
        self,
        t: Mapping[str, Any],
        where: str,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = ...,
    ) -> Any:
        if key not in t:
            if default is ...:
                self.problems.append(f"{where}.{key}: missing (required)")
                return None
            return default
        v = t[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(v, bool) and bool not in kinds:
            self.problems.append(f"{where}.{key}: expected {_names(kinds)}, got a boolean")
            return None
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        if not isinstance(v, kinds):
            self.problems.append(f"{where}.{key}: expected {_names(kinds)}, got {type(v).__name__}")
            return None
        return v

    def dates(self, t: Mapping[str, Any], where: str, key: str) -> tuple[dt.date, ...]:
        v = t.get(key, [])
        if not isinstance(v, list) or not all(
            isinstance(d, dt.date) and not isinstance(d, dt.datetime) for d in v
        ):
            self.problems.append(f"{where}.{key}: must be a list of dates (YYYY-MM-DD)")
            return ()
        return tuple(v)

    def date(self, t: Mapping[str, Any], where: str, key: str) -> dt.date | None:
        v = t.get(key)
        if v is None:
            return None
        if isinstance(v, dt.datetime) or not isinstance(v, dt.date):
            self.problems.append(f"{where}.{key}: must be a date (YYYY-MM-DD, unquoted)")
            return None
        return v


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def load_deployment(path: str | Path, *, check_sensitive: bool = True) -> Deployment:
    """Load a deployment TOML file, or a built-in one by name (``"demo"``).

    The catalog it names is loaded too (a path is resolved relative to the deployment
    file).  Raises :class:`DeploymentError` listing every problem, or the catalog's
    :class:`~psc.exceptions.CatalogError` / ``SensitiveRuleError``; pass
    ``check_sensitive=False`` (the linter does) to see a refused catalog's findings.
    """
    if isinstance(path, str) and path in BUILTIN_DEPLOYMENTS:
        text = resources.files("psc.policy").joinpath(f"{path}-deployment.toml").read_text("utf-8")
        return parse_deployment(text, source=f"builtin:{path}", check_sensitive=check_sensitive)
    p = Path(path)
    text = read_toml_file(p, DeploymentError, builtin=BUILTIN_DEPLOYMENTS)
    return parse_deployment(text, source=str(p), base_dir=p.parent, check_sensitive=check_sensitive)


def parse_deployment(
    text: str,
    *,
    source: str = "<deployment>",
    base_dir: Path | None = None,
    check_sensitive: bool = True,
) -> Deployment:
    """Parse deployment TOML text; see :func:`load_deployment`."""
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise DeploymentError([f"not valid TOML: {exc}"], source) from exc
    return deployment_from_dict(
        data, source=source, base_dir=base_dir, check_sensitive=check_sensitive
    )


_TOP = {
    "deployment",
    "notice",
    "schemes",
    "committee",
    "dp",
    "security",
    "consent",
    "rights",
    "assessment",
    "retention",
    "transfers",
    "uses",
}


#: the keys each table may hold (protocols/deployment.md); anything else is refused
_KEYS: dict[str, frozenset[str]] = {
    "deployment": frozenset(
        {"name", "operator", "catalog", "population", "min_age", "data_residency", "last_audit"}
    ),
    "notice": frozenset(
        {
            "version",
            "catalog_hash",
            "published",
            "processor",
            "contact",
            "purposes",
            "method",
            "categories",
            "retention",
            "rights",
        }
    ),
    "schemes": frozenset({"name", "key_bits", "poly_modulus_degree", "security_bits"}),
    "committee": frozenset({"k", "n"}),
    "dp": frozenset(
        {"accounting", "epsilon_per_release", "epsilon_total", "delta", "dishonest_fraction"}
    ),
    "security": frozenset(
        {"transport", "at_rest", "registry_separate", "incident_contact", "incident_plan"}
    ),
    "consent": frozenset({"model", "withdrawal", "token_max_days"}),
    "rights": frozenset(
        {
            "deadline_working_days",
            "correction_deadline_days",
            "repair_deadline_working_days",
            "holidays",
            "extra_workdays",
            "notify_before_negative",
            "free_reports_per_year",
            "human_review",
        }
    ),
    "assessment": frozenset({"date", "catalog_hash", "artefact", "retention_years"}),
    "retention": frozenset({"log_months"}),
    "transfers": frozenset(
        {
            "recipient",
            "country",
            "purpose",
            "persons_per_year",
            "sensitive_persons_per_year",
            "mechanism",
            "separate_consent",
        }
    ),
    "uses": frozenset({"relying_party", "purpose", "domain", "consequence", "human_review"}),
}
assert set(_KEYS) == _TOP


def _resolve_catalog(ref: str, base_dir: Path | None, check_sensitive: bool) -> Catalog:
    if ref in BUILTIN_CATALOGS:
        return load_catalog(ref, check_sensitive=check_sensitive)
    p = Path(ref)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return load_catalog(p, check_sensitive=check_sensitive)


def deployment_from_dict(
    data: Mapping[str, Any],
    *,
    source: str = "<deployment>",
    base_dir: Path | None = None,
    check_sensitive: bool = True,
) -> Deployment:
    """Validate a parsed deployment document; see :func:`load_deployment`."""
    r = _Reader()
    r.problems.extend(unknown_keys(data, _TOP, "", what="table"))
    for key in sorted(_TOP & set(data)):
        v = data[key]
        if isinstance(v, dict):
            r.problems.extend(unknown_keys(v, _KEYS[key], key))
        elif isinstance(v, list):
            for i, item in enumerate(v):
                if isinstance(item, dict):
                    r.problems.extend(unknown_keys(item, _KEYS[key], f"{key}[{i}]"))
    d = r.table(data, "deployment")
    name = r.get(d, "deployment", "name", str)
    operator = r.get(d, "deployment", "operator", str, "")
    catalog_ref = r.get(d, "deployment", "catalog", str)
    population = r.get(d, "deployment", "population", int)
    if population is not None and population < 0:
        r.problems.append("deployment.population: must be >= 0")
    min_age = r.get(d, "deployment", "min_age", int, 18)
    residency = r.get(d, "deployment", "data_residency", str, "")
    last_audit = r.date(d, "deployment", "last_audit")

    schemes: list[SchemeParams] = []
    sl = data.get("schemes", [])
    if not isinstance(sl, list) or not sl:
        r.problems.append("[[schemes]]: need at least one scheme table")
        sl = []
    for i, s in enumerate(sl):
        w = f"schemes[{i}]"
        if not isinstance(s, dict):
            r.problems.append(f"{w}: must be a table")
            continue
        sname = r.get(s, w, "name", str)
        if sname is not None and sname not in ("paillier", "ckks", "bfv"):
            r.problems.append(f"{w}.name: must be paillier, ckks or bfv, got {sname!r}")
        schemes.append(
            SchemeParams(
                name=sname or "",
                key_bits=r.get(s, w, "key_bits", int, None),
                poly_modulus_degree=r.get(s, w, "poly_modulus_degree", int, None),
                security_bits=r.get(s, w, "security_bits", int, None),
            )
        )

    c = r.table(data, "committee")
    committee = Committee(
        r.get(c, "committee", "k", int) or 0, r.get(c, "committee", "n", int) or 0
    )

    p = r.table(data, "dp")
    dp = DpBudget(
        accounting=r.get(p, "dp", "accounting", str, "zcdp"),
        epsilon_per_release=r.get(p, "dp", "epsilon_per_release", float) or 0.0,
        epsilon_total=r.get(p, "dp", "epsilon_total", float) or 0.0,
        delta=r.get(p, "dp", "delta", float, 0.0),
        dishonest_fraction=r.get(p, "dp", "dishonest_fraction", float, 0.0),
    )

    s = r.table(data, "security")
    security = Security(
        transport=r.get(s, "security", "transport", str, ""),
        at_rest=r.get(s, "security", "at_rest", str, ""),
        registry_separate=r.get(s, "security", "registry_separate", bool, False),
        incident_contact=r.get(s, "security", "incident_contact", str, ""),
        incident_plan=r.get(s, "security", "incident_plan", str, ""),
    )

    cm = r.table(data, "consent")
    consent = ConsentModel(
        model=r.get(cm, "consent", "model", str, ""),
        withdrawal=r.get(cm, "consent", "withdrawal", bool, False),
        token_max_days=r.get(cm, "consent", "token_max_days", int, 0),
    )

    rt = r.table(data, "rights", required=False)
    rights = RightsConfig(
        deadline_working_days=r.get(rt, "rights", "deadline_working_days", int, 15),
        correction_deadline_days=r.get(rt, "rights", "correction_deadline_days", int, 20),
        repair_deadline_working_days=r.get(rt, "rights", "repair_deadline_working_days", int, 3),
        holidays=r.dates(rt, "rights", "holidays"),
        extra_workdays=r.dates(rt, "rights", "extra_workdays"),
        notify_before_negative=r.get(rt, "rights", "notify_before_negative", bool, False),
        free_reports_per_year=r.get(rt, "rights", "free_reports_per_year", int, 0),
        human_review=r.get(rt, "rights", "human_review", bool, False),
    )

    n = r.table(data, "notice")
    notice = Notice(
        version=r.get(n, "notice", "version", str, ""),
        catalog_hash=r.get(n, "notice", "catalog_hash", str, ""),
        published=r.date(n, "notice", "published"),
        fields={k: v for k, v in n.items() if k not in ("version", "catalog_hash", "published")},
    )

    a = r.table(data, "assessment", required=False)
    assessment = Assessment(
        date=r.date(a, "assessment", "date"),
        catalog_hash=r.get(a, "assessment", "catalog_hash", str, ""),
        artefact=r.get(a, "assessment", "artefact", str, ""),
        retention_years=r.get(a, "assessment", "retention_years", int, 0),
    )

    ret = r.table(data, "retention", required=False)
    log_months = r.get(ret, "retention", "log_months", int, 0)

    transfers: list[Transfer] = []
    tl = data.get("transfers", [])
    if not isinstance(tl, list):
        r.problems.append("transfers: must be an array of [[transfers]] tables")
        tl = []
    for i, t in enumerate(tl):
        w = f"transfers[{i}]"
        if not isinstance(t, dict):
            r.problems.append(f"{w}: must be a table")
            continue
        mech = r.get(t, w, "mechanism", str, "none")
        if mech is not None and mech not in MECHANISMS:
            r.problems.append(f"{w}.mechanism: must be one of {list(MECHANISMS)}, got {mech!r}")
        transfers.append(
            Transfer(
                recipient=r.get(t, w, "recipient", str) or "",
                country=r.get(t, w, "country", str) or "",
                purpose=r.get(t, w, "purpose", str, ""),
                persons_per_year=r.get(t, w, "persons_per_year", int) or 0,
                sensitive_persons_per_year=r.get(t, w, "sensitive_persons_per_year", int, 0),
                mechanism=mech or "none",
                separate_consent=r.get(t, w, "separate_consent", bool, False),
            )
        )

    uses: list[GradeUse] = []
    ul = data.get("uses", [])
    if not isinstance(ul, list):
        r.problems.append("uses: must be an array of [[uses]] tables")
        ul = []
    for i, u in enumerate(ul):
        w = f"uses[{i}]"
        if not isinstance(u, dict):
            r.problems.append(f"{w}: must be a table")
            continue
        uses.append(
            GradeUse(
                relying_party=r.get(u, w, "relying_party", str) or "",
                purpose=r.get(u, w, "purpose", str) or "",
                domain=r.get(u, w, "domain", str) or "",
                consequence=r.get(u, w, "consequence", str, ""),
                human_review=r.get(u, w, "human_review", bool, False),
            )
        )

    if r.problems:
        raise DeploymentError(r.problems, source)
    assert name is not None and catalog_ref is not None and population is not None
    try:
        catalog = _resolve_catalog(catalog_ref, base_dir, check_sensitive)
    except CatalogError as exc:
        if type(exc) is CatalogError:
            raise DeploymentError(
                [
                    f"deployment.catalog: {catalog_ref!r} cannot be loaded: {p}"
                    for p in exc.problems
                ],
                source,
            ) from exc
        raise
    return Deployment(
        name=name,
        operator=operator,
        catalog_ref=catalog_ref,
        catalog=catalog,
        population=population,
        min_age=min_age,
        data_residency=residency,
        last_audit=last_audit,
        schemes=tuple(schemes),
        committee=committee,
        dp=dp,
        security=security,
        consent=consent,
        rights=rights,
        notice=notice,
        assessment=assessment,
        log_retention_months=log_months,
        transfers=tuple(transfers),
        uses=tuple(uses),
        source=source,
        raw=data,
    )
