"""The rule catalog: scheme metadata, grade scale, retention classes, rules and grade caps.

The normative format is ``protocols/catalog.md``; this module is its loader (field-level
validators and the official-finding vocabulary live in :mod:`psc.catalog_fields`).  Loading
validates everything and reports *every* problem at once, each with its location
(``rules[3].delta: ...``), in one :class:`~psc.exceptions.CatalogError`.  A rule that
scores a sensitive category is refused outright with
:class:`~psc.exceptions.SensitiveRuleError` (PIPL Art. 28-32; see :mod:`psc.policy.sensitive`).

Grades are indexed from 0 (the lowest band, e.g. ``D``) upwards.  With ascending
half-integer thresholds ``t_1 < ... < t_{G-1}`` the grade of a score ``s`` is
``#{j : s > t_j}``, which is exactly what an encrypted path computes as a sum of sign
tests; a grade cap then lowers it to ``min(grade, cap)``.

Periods are calendar months, indexed ``year * 12 + (month - 1)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from psc.catalog_fields import (
    _RULE_KEYS,
    _SCHEME_KEYS,
    OfficialFinding,
    _finding,
    _get,
    _half_integer,
    _Problems,
    _unknown,
    decimal,
)
from psc.catalog_fields import FINDING_DOCUMENTS as FINDING_DOCUMENTS  # re-exported
from psc.exceptions import CatalogError, SensitiveRuleError
from psc.policy.toml_input import read_toml_file

#: The seven legal bases of PIPL Art. 13 (P5), as the catalog spells them.
LEGAL_BASES = frozenset(
    {
        "consent",
        "contract",
        "statutory-duty",
        "health-emergency",
        "news-reporting",
        "public-data",
        "other-law",
    }
)
#: How serious the conduct behind a rule is; the policy linter checks deltas against it.
SEVERITIES = ("positive", "minor", "moderate", "serious")
SUBJECT_KINDS = frozenset({"person", "company"})
#: how reports name the subjects of a scheme
PLURAL: Mapping[str, str] = {"person": "persons", "company": "companies"}
PUBLICATIONS = frozenset({"none", "blacklist", "redlist"})
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

BUILTIN_CATALOGS = ("city", "company")


@dataclass(frozen=True)
class Grade:
    """One band of the grade scale.  ``min`` is the half-integer lower threshold (None: lowest)."""

    label: str
    min: Fraction | None
    description: str = ""


@dataclass(frozen=True)
class RetentionClass:
    """How long a contribution counts: ``months`` whole periods from the event's period."""

    name: str
    months: int
    description: str = ""


@dataclass(frozen=True)
class Rule:
    """A scoring rule: an agency's official record of some conduct moves the score by ``delta``.

    ``grade_cap`` (a grade label) forces the grade to at most that band while an event of
    this rule is within retention.  ``max_per_period`` bounds how many events of this rule
    one subject can have in one period; it is what makes slot overflow impossible.
    """

    id: str
    agency: str
    description: str
    delta: int
    domain: str
    purpose: str
    legal_basis: str
    legal_authority: str
    evidence_required: bool
    retention: str
    data_categories: tuple[str, ...]
    severity: str
    max_per_period: int = 1
    grade_cap: str | None = None
    publication: str = "none"
    publication_basis: str | None = None
    finding: OfficialFinding | None = None


@dataclass(frozen=True)
class Scheme:
    """Scheme metadata.  ``domain`` is the only domain a grade may be used in."""

    name: str
    version: str
    domain: str
    subject_kind: str
    base_score: int
    min_score: int
    max_score: int
    purposes: tuple[str, ...]
    rule_domains: tuple[str, ...]
    operator: str = ""
    contact: str = ""
    data_residency: str = "CN"


@dataclass(frozen=True)
class Catalog:
    """A validated catalog.  Build one with :func:`load_catalog` or :func:`parse_catalog`."""

    scheme: Scheme
    grades: tuple[Grade, ...]  # highest band first, as written
    retention: Mapping[str, RetentionClass]
    rules: tuple[Rule, ...]
    source: str = "<catalog>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- derived views -------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        """Grade labels in ascending order (index 0 is the lowest band)."""
        return tuple(g.label for g in reversed(self.grades))

    @property
    def thresholds(self) -> tuple[Fraction, ...]:
        """Ascending half-integer thresholds; ``len(labels) - 1`` of them."""
        return tuple(g.min for g in reversed(self.grades) if g.min is not None)

    def grade_index(self, label: str) -> int:
        """Index of a grade label (0 = lowest).  Raises ``KeyError`` if unknown."""
        return self.labels.index(label) if label in self.labels else _raise_key(label)

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id.  Raises ``KeyError`` naming the id if there is none."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"no rule {rule_id!r} in catalog {self.scheme.name!r}")

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    @property
    def agencies(self) -> tuple[str, ...]:
        """Agencies named by the rules, sorted."""
        return tuple(sorted({r.agency for r in self.rules}))

    @property
    def retention_classes(self) -> tuple[str, ...]:
        """Retention class names, sorted (the accumulator layout order)."""
        return tuple(sorted(self.retention))

    @property
    def max_abs_delta(self) -> int:
        """The largest absolute delta one event can cause: the DP sensitivity."""
        return max(abs(r.delta) for r in self.rules)

    @property
    def max_retention_months(self) -> int:
        return max(c.months for c in self.retention.values())

    def agency_period_bound(self, agency: str, retention: str | None = None) -> int:
        """Largest |sum of deltas| one agency can add to one subject in one period.

        ``sum over the agency's rules (in ``retention`` if given) of |delta| * max_per_period``.
        """
        return sum(
            abs(r.delta) * r.max_per_period
            for r in self.rules
            if r.agency == agency and (retention is None or r.retention == retention)
        )

    def cap_labels(self) -> tuple[str, ...]:
        """Distinct cap levels used by rules, ascending by grade."""
        caps = {r.grade_cap for r in self.rules if r.grade_cap is not None}
        return tuple(sorted(caps, key=self.grade_index))

    @property
    def version_hash(self) -> str:
        """SHA-256 over the canonical JSON of the parsed catalog: what envelopes cite."""
        canon = json.dumps(_canonical(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()


def _raise_key(label: str) -> int:
    raise KeyError(f"unknown grade label {label!r}")


def _canonical(catalog: Catalog) -> dict[str, Any]:
    def conv(o: Any) -> Any:
        if isinstance(o, Fraction):
            return str(o)
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [conv(v) for v in o]
        return o

    return {
        "scheme": conv(asdict(catalog.scheme)),
        "grades": [conv(asdict(g)) for g in catalog.grades],
        "retention": {k: conv(asdict(v)) for k, v in sorted(catalog.retention.items())},
        "rules": [_canonical_rule(conv(asdict(r))) for r in catalog.rules],
    }


def _canonical_rule(rule: dict[str, Any]) -> dict[str, Any]:
    # ``finding`` (format 1.1) is omitted when absent, so a 1.0 catalog keeps its hash
    if rule.get("finding") is None:
        rule.pop("finding", None)
    return rule


def period_index(day: dt.date) -> int:
    """The period (calendar month) a date falls in: ``year * 12 + month - 1``."""
    return day.year * 12 + day.month - 1


def period_start(period: int) -> dt.date:
    """First day of a period index."""
    return dt.date(period // 12, period % 12 + 1, 1)


def period_label(period: int) -> str:
    """``YYYY-MM`` for a period index."""
    return f"{period // 12:04d}-{period % 12 + 1:02d}"


def parse_period(label: str) -> int:
    """Inverse of :func:`period_label`.  Raises ``ValueError`` on anything but ``YYYY-MM``."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", label)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"period {label!r} is not of the form YYYY-MM")
    return int(m.group(1)) * 12 + int(m.group(2)) - 1


# ----------------------------------------------------------------------------------------
# loading


def load_catalog(path: str | Path, *, check_sensitive: bool = True) -> Catalog:
    """Load and validate a catalog TOML file, or a built-in one by name (``"city"``).

    Raises :class:`CatalogError` listing every problem, :class:`SensitiveRuleError` if a
    rule scores a sensitive category (always, unless a linter asks to see the findings
    with ``check_sensitive=False``; such a catalog must never be used for scoring).
    """
    if isinstance(path, str) and path in BUILTIN_CATALOGS:
        text = resources.files("psc.catalogs").joinpath(f"{path}.toml").read_text("utf-8")
        source = f"builtin:{path}"
    else:
        p = Path(path)
        source = str(p)
        text = read_toml_file(p, CatalogError, builtin=BUILTIN_CATALOGS)
    return parse_catalog(text, source=source, check_sensitive=check_sensitive)


def parse_catalog(text: str, *, source: str = "<catalog>", check_sensitive: bool = True) -> Catalog:
    """Parse catalog TOML text; see :func:`load_catalog`."""
    try:
        data = tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([f"not valid TOML: {exc}"], source) from exc
    return catalog_from_dict(data, source=source, check_sensitive=check_sensitive)


def catalog_from_dict(
    data: Mapping[str, Any], *, source: str = "<catalog>", check_sensitive: bool = True
) -> Catalog:
    """Validate a parsed TOML document; see :func:`load_catalog`."""
    probs = _Problems()
    _unknown(probs, data, "catalog", {"scheme", "grades", "retention", "rules"})

    # -- scheme ------------------------------------------------------------------------
    st = data.get("scheme")
    if not isinstance(st, dict):
        probs.add("scheme", "missing table [scheme]")
        st = {}
    _unknown(probs, st, "scheme", _SCHEME_KEYS)
    name = _get(probs, st, "scheme", "name", str)
    version = _get(probs, st, "scheme", "version", str)
    domain = _get(probs, st, "scheme", "domain", str)
    kind = _get(probs, st, "scheme", "subject_kind", str)
    if kind is not None and kind not in SUBJECT_KINDS:
        probs.add("scheme.subject_kind", f"must be one of {sorted(SUBJECT_KINDS)}, got {kind!r}")
    base = _get(probs, st, "scheme", "base_score", int)
    lo = _get(probs, st, "scheme", "min_score", int)
    hi = _get(probs, st, "scheme", "max_score", int)
    if None not in (base, lo, hi) and not lo <= base <= hi:
        probs.add(
            "scheme", f"need min_score <= base_score <= max_score, got {lo} <= {base} <= {hi}"
        )
    purposes = _get(probs, st, "scheme", "purposes", list)
    if purposes is not None and (not purposes or not all(isinstance(p, str) for p in purposes)):
        probs.add("scheme.purposes", "must be a non-empty list of strings")
        purposes = None
    rule_domains = _get(probs, st, "scheme", "rule_domains", list)
    if rule_domains is not None and (
        not rule_domains or not all(isinstance(p, str) for p in rule_domains)
    ):
        probs.add("scheme.rule_domains", "must be a non-empty list of strings")
        rule_domains = None
    operator = _get(probs, st, "scheme", "operator", str, "")
    contact = _get(probs, st, "scheme", "contact", str, "")
    residency = _get(probs, st, "scheme", "data_residency", str, "CN")

    # -- grades ------------------------------------------------------------------------
    grades: list[Grade] = []
    gt = data.get("grades")
    if not isinstance(gt, list) or len(gt) < 2:
        probs.add("grades", "need an array of at least two [[grades]] tables, highest first")
        gt = []
    seen_labels: set[str] = set()
    prev: Fraction | None = None
    for i, g in enumerate(gt):
        where = f"grades[{i}]"
        if not isinstance(g, dict):
            probs.add(where, "must be a table")
            continue
        _unknown(probs, g, where, {"label", "min", "description"})
        label = _get(probs, g, where, "label", str)
        desc = _get(probs, g, where, "description", str, "")
        last = i == len(gt) - 1
        thr: Fraction | None = None
        if last:
            if "min" in g:
                probs.add(
                    f"{where}.min",
                    "the lowest band takes every score below the one above; remove min",
                )
        elif "min" not in g:
            probs.add(f"{where}.min", "missing (required on every band but the lowest)")
        else:
            thr = _half_integer(probs, f"{where}.min", g["min"])
            if thr is not None and prev is not None and not thr < prev:
                probs.add(
                    f"{where}.min",
                    f"thresholds must decrease (highest band first): {decimal(thr)} >= {decimal(prev)}",
                )
            if thr is not None and None not in (lo, hi) and not lo < thr < hi:
                probs.add(
                    f"{where}.min",
                    f"threshold {decimal(thr)} must lie strictly inside [{lo}, {hi}]",
                )
            if thr is not None:
                prev = thr
        if label is not None:
            if label in seen_labels:
                probs.add(f"{where}.label", f"duplicate label {label!r}")
            seen_labels.add(label)
            grades.append(Grade(label, thr, desc or ""))

    # -- retention ---------------------------------------------------------------------
    retention: dict[str, RetentionClass] = {}
    rt = data.get("retention")
    if not isinstance(rt, dict) or not rt:
        probs.add("retention", "need at least one [retention.NAME] table")
        rt = {}
    for rname, rc in rt.items():
        where = f"retention.{rname}"
        if not _ID.match(rname):
            probs.add(where, "name must be lowercase letters, digits, '.', '_' or '-'")
        if not isinstance(rc, dict):
            probs.add(where, "must be a table with months = N")
            continue
        _unknown(probs, rc, where, {"months", "description"})
        months = _get(probs, rc, where, "months", int)
        if months is not None and not 1 <= months <= 600:
            probs.add(f"{where}.months", f"must be between 1 and 600, got {months}")
            months = None
        if months is not None:
            retention[rname] = RetentionClass(
                rname, months, _get(probs, rc, where, "description", str, "")
            )

    # -- rules -------------------------------------------------------------------------
    rules: list[Rule] = []
    rl = data.get("rules")
    if not isinstance(rl, list) or not rl:
        probs.add("rules", "need at least one [[rules]] table")
        rl = []
    seen_ids: set[str] = set()
    for i, r in enumerate(rl):
        where = f"rules[{i}]"
        if not isinstance(r, dict):
            probs.add(where, "must be a table")
            continue
        _unknown(probs, r, where, _RULE_KEYS)
        rid = _get(probs, r, where, "id", str)
        if rid is not None:
            where = f"rules[{i}] ({rid})"
            if not _ID.match(rid):
                probs.add(
                    f"{where}.id", "must be lowercase letters, digits, '.', '_' or '-' (max 64)"
                )
            if rid in seen_ids:
                probs.add(f"{where}.id", "duplicate rule id")
            seen_ids.add(rid)
        agency = _get(probs, r, where, "agency", str)
        desc = _get(probs, r, where, "description", str)
        delta = _get(probs, r, where, "delta", int)
        rdomain = _get(probs, r, where, "domain", str)
        if rdomain is not None and rule_domains is not None and rdomain not in rule_domains:
            probs.add(
                f"{where}.domain", f"{rdomain!r} is not in scheme.rule_domains {rule_domains}"
            )
        purpose = _get(probs, r, where, "purpose", str)
        basis = _get(probs, r, where, "legal_basis", str)
        if basis is not None and basis not in LEGAL_BASES:
            probs.add(
                f"{where}.legal_basis", f"must be one of {sorted(LEGAL_BASES)} (PIPL Art. 13)"
            )
        authority = _get(probs, r, where, "legal_authority", str)
        evidence = _get(probs, r, where, "evidence_required", bool)
        ret = _get(probs, r, where, "retention", str)
        if ret is not None and ret not in rt:
            probs.add(f"{where}.retention", f"no retention class {ret!r} (have {sorted(rt)})")
        cats = _get(probs, r, where, "data_categories", list)
        if cats is not None and not all(isinstance(c, str) for c in cats):
            probs.add(f"{where}.data_categories", "must be a list of strings")
            cats = None
        sev = _get(probs, r, where, "severity", str)
        if sev is not None and sev not in SEVERITIES:
            probs.add(f"{where}.severity", f"must be one of {list(SEVERITIES)}")
        mpp = _get(probs, r, where, "max_per_period", int, 1)
        if mpp is not None and not 1 <= mpp <= 1000:
            probs.add(f"{where}.max_per_period", f"must be between 1 and 1000, got {mpp}")
        cap = _get(probs, r, where, "grade_cap", str, None)
        if cap is not None and cap not in seen_labels:
            probs.add(f"{where}.grade_cap", f"unknown grade label {cap!r}")
        if cap is not None and grades and cap == grades[0].label:
            probs.add(f"{where}.grade_cap", "a cap at the top grade has no effect")
        if delta is not None and delta == 0 and cap is None:
            probs.add(f"{where}.delta", "a rule with delta 0 and no grade_cap does nothing")
        if delta is not None and abs(delta) > 10_000:
            probs.add(f"{where}.delta", f"|delta| must be at most 10000, got {delta}")
        if sev is not None and delta is not None:
            if sev == "positive" and delta < 0:
                probs.add(f"{where}.severity", "a positive rule cannot have a negative delta")
            if sev != "positive" and delta > 0:
                probs.add(
                    f"{where}.severity",
                    "a rule with a positive delta must have severity 'positive'",
                )
        pub = _get(probs, r, where, "publication", str, "none")
        if pub is not None and pub not in PUBLICATIONS:
            probs.add(f"{where}.publication", f"must be one of {sorted(PUBLICATIONS)}")
        pub_basis = _get(probs, r, where, "publication_basis", str, None)
        finding = _finding(probs, r, where)
        if None not in (
            rid,
            agency,
            desc,
            delta,
            rdomain,
            purpose,
            basis,
            authority,
            evidence,
            ret,
            cats,
            sev,
            mpp,
            pub,
        ):
            rules.append(
                Rule(
                    id=rid,
                    agency=agency,
                    description=desc,
                    delta=delta,
                    domain=rdomain,
                    purpose=purpose,
                    legal_basis=basis,
                    legal_authority=authority,
                    evidence_required=evidence,
                    retention=ret,
                    data_categories=tuple(cats),
                    severity=sev,
                    max_per_period=mpp,
                    grade_cap=cap,
                    publication=pub,
                    publication_basis=pub_basis,
                    finding=finding,
                )
            )

    if probs.items:
        raise CatalogError(probs.items, source)

    scheme = Scheme(
        name=name,
        version=version,
        domain=domain,
        subject_kind=kind,
        base_score=base,
        min_score=lo,
        max_score=hi,
        purposes=tuple(purposes),
        rule_domains=tuple(rule_domains),
        operator=operator,
        contact=contact,
        data_residency=residency,
    )
    catalog = Catalog(scheme, tuple(grades), retention, tuple(rules), source, data)
    if check_sensitive:
        refuse_sensitive(catalog)
    return catalog


def refuse_sensitive(catalog: Catalog) -> None:
    """Raise :class:`SensitiveRuleError` if any rule scores a sensitive category.

    Detection is delegated to :func:`psc.policy.sensitive.find_sensitive`, which checks
    declared categories *and* rule text against a maintained vocabulary.
    """
    from psc.policy.sensitive import find_sensitive

    hits = find_sensitive(catalog.rules)
    if hits:
        raise SensitiveRuleError([h.message() for h in hits], catalog.source)


def rules_by_agency(catalog: Catalog) -> dict[str, list[Rule]]:
    """Rules grouped by agency, in catalog order."""
    out: dict[str, list[Rule]] = {}
    for r in catalog.rules:
        out.setdefault(r.agency, []).append(r)
    return out


def describe(catalog: Catalog) -> Sequence[str]:
    """A few human-readable lines about a catalog (for the CLI and reports)."""
    s = catalog.scheme
    bands = ", ".join(
        f"{g.label} >= {decimal(g.min)}" if g.min is not None else f"{g.label} below"
        for g in catalog.grades
    )
    return [
        f"{s.name} v{s.version} ({PLURAL[s.subject_kind]}, domain {s.domain!r})",
        f"base {s.base_score}, bounds [{s.min_score}, {s.max_score}]; bands: {bands}",
        f"{len(catalog.rules)} rules from {len(catalog.agencies)} agencies; "
        f"retention classes {', '.join(f'{c.name}={c.months}mo' for c in catalog.retention.values())}",
    ]
