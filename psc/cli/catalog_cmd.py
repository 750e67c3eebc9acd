"""``psc catalog CATALOG``: load, validate and describe a catalog.

Exit status: 0 valid; 1 refused because a rule scores a sensitive category (a policy
finding: ``psc lint`` lists it with every other); 2 unreadable or invalid (every problem
listed with its location).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from psc.catalog import describe, load_catalog
from psc.exceptions import CatalogError, SensitiveRuleError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "catalog", help="validate and describe a rule catalog"
    )
    p.add_argument("catalog", help="a catalog TOML file, or a built-in name: city, company")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cat = load_catalog(args.catalog)
    except SensitiveRuleError as exc:
        print(exc, file=sys.stderr)
        return 1
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 2
    for line in describe(cat):
        print(line)
    print(f"version hash {cat.version_hash}")
    for r in cat.rules:
        cap = f", caps at {r.grade_cap}" if r.grade_cap else ""
        found = f", found by {r.finding.document} of {r.finding.authority}" if r.finding else ""
        print(f"  {r.id:28s} {r.delta:+5d}  {r.agency:28s} retention {r.retention}{cap}{found}")
    return 0
