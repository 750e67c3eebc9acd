"""Write ``protocols/vectors/catalog.json``: catalog-format vectors, good and ``bad_*``.

Deterministic (no randomness): each case is a catalog TOML text derived from the example
of ``protocols/catalog.md`` §8 by one edit.  Good cases record the version hash; bad
cases record ``"success": false`` and one expected problem (location and message start).
The file only changes when the catalog format (spec: ``protocols/catalog.md``) changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from psc.catalog import parse_catalog
from psc.exceptions import CatalogError

OUT = Path(__file__).parent / "vectors" / "catalog.json"
SPEC = Path(__file__).parent / "catalog.md"
FINDING = 'finding = { document = "tax-processing-decision", authority = "tax-bureau" }\n'


def example() -> str:
    """The TOML example of the spec's section 8."""
    spec = SPEC.read_text("utf-8")
    return spec.split("## 8. Example", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]


def cases() -> list[tuple[str, str, str | None]]:
    """(name, toml text, expected problem or None for a good case)."""
    base = example()
    assert FINDING in base
    return [
        ("good_example", base, None),
        ("good_format_1_0_without_finding", base.replace(FINDING, ""), None),
        (
            "good_arbitration_award",
            base.replace(
                FINDING,
                'finding = { document = "arbitration-award", authority = "tax-arbitration" }\n',
            ),
            None,
        ),
        (
            "bad_finding_document",
            base.replace('"tax-processing-decision"', '"verdict"'),
            "rules[0] (tax.arrears).finding.document: must be one of",
        ),
        (
            "bad_finding_unknown_key",
            base.replace("authority = ", "authorty = "),
            "rules[0] (tax.arrears).finding.authorty: unknown key; did you mean 'authority'?",
        ),
        (
            "bad_finding_missing_authority",
            base.replace(', authority = "tax-bureau"', ""),
            "rules[0] (tax.arrears).finding.authority: missing (required)",
        ),
        (
            "bad_finding_not_a_table",
            base.replace(FINDING, 'finding = "tax-processing-decision"\n'),
            "rules[0] (tax.arrears).finding: must be a table",
        ),
        (
            "bad_thresholds_not_decreasing",
            base.replace("min = 79.5", "min = 129.5"),
            "grades[1].min: thresholds must decrease (highest band first): 129.5 >= 119.5",
        ),
        (
            "bad_rule_key_typo",
            base.replace("grade_cap =", "grade_caps ="),
            "rules[0].grade_caps: unknown key; did you mean 'grade_cap'?",
        ),
        (
            "bad_threshold_not_half_integer",
            base.replace("min = 119.5", "min = 120"),
            "grades[0].min: threshold 120 is not a half-integer; use 119.5 (the band then starts at score 120)",
        ),
    ]


def build() -> dict[str, Any]:
    """The vector document (checked against the loader while it is built)."""
    out: list[dict[str, Any]] = []
    for name, text, problem in cases():
        case: dict[str, Any] = {"name": name, "catalog": text}
        try:
            cat = parse_catalog(text)
        except CatalogError as exc:
            assert problem is not None, (name, exc.problems)
            assert any(p.startswith(problem) for p in exc.problems), (name, exc.problems)
            case |= {"success": False, "problem": problem}
        else:
            assert problem is None, name
            case |= {"success": True, "version_hash": cat.version_hash}
        out.append(case)
    return {"version": 1, "spec": "protocols/catalog.md", "cases": out}


def main() -> None:
    """Regenerate the vector file."""
    OUT.write_text(json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
