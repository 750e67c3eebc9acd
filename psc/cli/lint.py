"""``psc lint CATALOG [--deployment FILE] [--json PATH]``: run every PIPL policy check.

Exit status: 0 when no error-level finding, 1 when there is one (a sensitive rule, a
disproportionate delta...), 2 when an input cannot be read or is not a valid catalog or
deployment.  Findings go to stdout, each with check id, rule or field, what is wrong, what
to change and the article, separated by blank lines; ``--json PATH`` also writes the whole
report (every check, its status and evidence) to a file, ``--json -`` to stdout (the
findings then go to stderr, so stdout is JSON only).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from psc.catalog import Catalog, load_catalog
from psc.cli.argtypes import iso_date
from psc.cli.output import STDOUT, OutputError, check_writable, write_text
from psc.exceptions import CatalogError, DeploymentError
from psc.policy.clock import SystemClock, today
from psc.policy.deployment import Deployment, load_deployment
from psc.policy.linter import lint

EXIT_UNREADABLE = 2


def register(sub: Any) -> None:
    """Add the ``lint`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "lint", help="check a catalog (and a deployment) against PIPL and related rules"
    )
    p.add_argument("catalog", help="a catalog TOML file, or a built-in name: city, company")
    p.add_argument("--deployment", metavar="FILE", help="a deployment TOML file, or 'demo'")
    p.add_argument(
        "--json", metavar="PATH", help="also write the full report as JSON (- for stdout)"
    )
    p.add_argument(
        "--today",
        metavar="YYYY-MM-DD",
        type=iso_date,
        help="evaluate dates as of this day (default: today, UTC+8)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also list every check and its status"
    )
    p.set_defaults(func=run)


def load_inputs(catalog: str, deployment: str | None) -> tuple[Catalog, Deployment | None]:
    """Load both inputs for linting (sensitive rules become findings, not exceptions)."""
    cat = load_catalog(catalog, check_sensitive=False)
    dep = load_deployment(deployment, check_sensitive=False) if deployment else None
    return cat, dep


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        try:
            check_writable(args.json, flag="--json")
        except OutputError as exc:
            print(f"psc lint: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    try:
        cat, dep = load_inputs(args.catalog, args.deployment)
    except (CatalogError, DeploymentError) as exc:
        print(f"psc lint: cannot read input: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    day = args.today or today(SystemClock())
    report = lint(cat, dep, today=day)
    text_out = sys.stderr if args.json == STDOUT else sys.stdout
    for line in report.text_lines(verbose=args.verbose):
        print(line, file=text_out)
    if args.json is not None:
        try:
            write_text(args.json, report.dumps())
        except OSError as exc:
            print(f"psc lint: cannot write {args.json}: {exc.strerror}", file=sys.stderr)
            return EXIT_UNREADABLE
    return report.exit_code
