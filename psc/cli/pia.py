"""``psc pia DEPLOYMENT --out DIR``: write a PIPL Art. 55-56 impact assessment.

Writes ``DIR/pia.md`` and ``DIR/pia.html`` (self-contained).  The report is written even
when checks fail (the failures are what the reader must see); the exit status is then 1.
Exit 2 when the deployment or its catalog cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from psc.cli.argtypes import iso_date
from psc.cli.output import OutputError, check_writable
from psc.exceptions import CatalogError, DeploymentError
from psc.policy.clock import SystemClock, today
from psc.policy.deployment import load_deployment
from psc.policy.linter import lint
from psc.policy.pia import build_pia, write_pia


def register(sub: Any) -> None:
    """Add the ``pia`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser(
        "pia", help="write an impact-assessment report (markdown and HTML) for a deployment"
    )
    p.add_argument("deployment", help="a deployment TOML file, or 'demo'")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for pia.md and pia.html")
    p.add_argument(
        "--date",
        metavar="YYYY-MM-DD",
        type=iso_date,
        help="assessment date (default: today, UTC+8); checks are evaluated as of it",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        check_writable(args.out, flag="--out", directory=True)
    except OutputError as exc:
        print(f"psc pia: {exc}", file=sys.stderr)
        return 2
    try:
        dep = load_deployment(args.deployment, check_sensitive=False)
    except (CatalogError, DeploymentError) as exc:
        print(f"psc pia: cannot read input: {exc}", file=sys.stderr)
        return 2
    day = args.date or today(SystemClock())
    report = lint(dep.catalog, dep, today=day)
    try:
        md, page = write_pia(build_pia(dep, report, generated=day), args.out)
    except OSError as exc:
        print(f"psc pia: cannot write to {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {page}")
    errors = report.count("error")
    if errors:
        print(
            f"{errors} error-level finding(s): the deployment must not proceed (see the Findings section)"
        )
    return report.exit_code
