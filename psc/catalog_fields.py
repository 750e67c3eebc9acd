"""Field-level validation of the catalog loader, and the official-finding vocabulary.

Moved out of :mod:`psc.catalog` (which re-exports the public names) so that the loader
module stays one concept: :func:`psc.catalog.catalog_from_dict` walks the document, these
helpers check one value each and collect every problem with its location.  Nothing here
imports :mod:`psc.catalog`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from psc.policy.toml_input import unknown_keys

#: Kinds of official document that can prove an event, and who issues each kind:
#: ``court``, ``administrative`` (an administrative organ acting on its statutory powers),
#: ``arbitration`` (an arbitration commission's award), or ``private`` (a party's own
#: record: not an official finding, and flagged by the linter on a negative rule).
FINDING_DOCUMENTS: Mapping[str, str] = {
    "court-judgment": "court",
    "court-ruling": "court",
    "court-mediation-statement": "court",
    "administrative-penalty-decision": "administrative",
    "administrative-decision": "administrative",
    "tax-processing-decision": "administrative",
    "arbitration-award": "arbitration",
    "certificate": "administrative",
    "creditor-record": "private",
    "complaint": "private",
    "informant-report": "private",
}


@dataclass(frozen=True)
class OfficialFinding:
    """The official document that proves an event of a rule, and who is competent to issue it.

    ``document`` is a key of :data:`FINDING_DOCUMENTS`; ``authority`` names the court,
    administrative organ or arbitration commission that issues it.
    """

    document: str
    authority: str


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, what: str) -> None:
        self.items.append(f"{where}: {what}")


def _get(
    probs: _Problems,
    table: Mapping[str, Any],
    where: str,
    key: str,
    kind: type | tuple[type, ...],
    default: Any = ...,
) -> Any:
    if key not in table:
        if default is ...:
            probs.add(f"{where}.{key}", "missing (required)")
            return None
        return default
    value = table[key]
    if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
        probs.add(f"{where}.{key}", f"expected {_kind_name(kind)}, got a boolean")
        return None
    if not isinstance(value, kind):
        probs.add(f"{where}.{key}", f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return None
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def _unknown(probs: _Problems, table: Mapping[str, Any], where: str, known: set[str]) -> None:
    probs.items.extend(unknown_keys(table, known, where))


def _half_integer(probs: _Problems, where: str, value: Any) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        probs.add(where, "threshold must be a number ending in .5, e.g. 959.5")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        probs.add(where, f"threshold {value} is not a number; use e.g. 959.5")
        return None
    f = Fraction(value)
    if f.denominator != 2:
        # ``min`` reads as the band's lowest score: the integers s >= value stay in the band
        lowest = math.ceil(f)
        probs.add(
            where,
            f"threshold {value} is not a half-integer; use {decimal(Fraction(2 * lowest - 1, 2))} "
            f"(the band then starts at score {lowest}) so that |score - threshold| >= 0.5 "
            "for every integer score",
        )
        return None
    return f


def decimal(value: Fraction) -> str:
    """A threshold as people write it: ``959.5``, never ``1919/2``."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.1f}" if value.denominator == 2 else f"{float(value):g}"


_SCHEME_KEYS = {
    "name",
    "version",
    "domain",
    "subject_kind",
    "base_score",
    "min_score",
    "max_score",
    "purposes",
    "rule_domains",
    "operator",
    "contact",
    "data_residency",
}
_RULE_KEYS = {
    "id",
    "agency",
    "description",
    "delta",
    "domain",
    "purpose",
    "legal_basis",
    "legal_authority",
    "evidence_required",
    "retention",
    "data_categories",
    "severity",
    "max_per_period",
    "grade_cap",
    "publication",
    "publication_basis",
    "finding",
}


def _finding(probs: _Problems, rule: Mapping[str, Any], where: str) -> OfficialFinding | None:
    if "finding" not in rule:
        return None
    fd = rule["finding"]
    w = f"{where}.finding"
    if not isinstance(fd, dict):
        probs.add(w, 'must be a table, e.g. { document = "court-judgment", authority = "AGENCY" }')
        return None
    probs.items.extend(unknown_keys(fd, {"document", "authority"}, w))
    doc = _get(probs, fd, w, "document", str)
    if doc is not None and doc not in FINDING_DOCUMENTS:
        probs.add(f"{w}.document", f"must be one of {', '.join(sorted(FINDING_DOCUMENTS))}")
        doc = None
    authority = _get(probs, fd, w, "authority", str)
    if authority is not None and not authority.strip():
        probs.add(f"{w}.authority", "must name the authority that issues the document")
        authority = None
    if doc is None or authority is None:
        return None
    return OfficialFinding(doc, authority)
