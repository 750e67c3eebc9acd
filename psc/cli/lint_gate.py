"""Lint before running: every runner refuses a catalog (or deployment) with lint errors.

``psc demo`` and the benchmark runners call :func:`lint_gate` before any work.  With error
findings the run is refused (the caller exits 2, "input refused") and every finding is
printed to standard error with what to change.  ``allow=True`` (``--allow-lint-errors``,
for research runs) proceeds, but prints the findings first, framed, so they cannot be
missed in a log.
"""

from __future__ import annotations

import sys
from typing import TextIO

from psc.catalog import Catalog
from psc.policy.clock import SystemClock, today
from psc.policy.deployment import Deployment
from psc.policy.linter import lint

BANNER = "!" * 78


def lint_gate(
    catalog: Catalog,
    *,
    command: str,
    allow: bool,
    deployment: Deployment | None = None,
    stream: TextIO | None = None,
) -> bool:
    """Lint ``catalog`` (and ``deployment``); return whether the run may go on.

    Prints nothing when there is no error finding.  Never raises on a policy problem.
    """
    out = stream or sys.stderr
    report = lint(catalog, deployment, today=today(SystemClock()))
    errors = [f for f in report.findings if f.severity == "error"]
    if not errors:
        return True
    head = (
        f"{command}: RUNNING DESPITE {len(errors)} LINT ERROR(S) (--allow-lint-errors): "
        "research use only; this catalog must not score anyone"
        if allow
        else f"{command}: refused: {catalog.source} has {len(errors)} lint error(s); "
        "fix them (psc lint shows every check) or pass --allow-lint-errors for a research run"
    )
    print(BANNER, file=out)
    print(head, file=out)
    for f in errors:
        print(f.line(), file=out)
    print(BANNER, file=out)
    return allow
