"""Argument checks shared by the benchmark runners: flags validated, catalogs linted first.

Exit codes of every suite (``benchmarks/README.md``): 0 the run completed; 1 a correctness
check or an acceptance target failed; 2 the suite was used wrongly (a bad flag value, an
unreadable catalog, a catalog with lint errors without ``--allow-lint-errors``).  The
argument types are psc's own (:mod:`psc.cli.argtypes`), so a bad value names its flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from psc.catalog import Catalog, load_catalog
from psc.cli.argtypes import int_at_least, positive_int
from psc.cli.lint_gate import lint_gate
from psc.cli.output import OutputError, check_writable
from psc.exceptions import CatalogError
from psc.hazmat.paillier import MIN_KEY_BITS

EXIT_USAGE = 2

__all__ = [
    "EXIT_USAGE",
    "MIN_KEY_BITS",
    "add_lint_flag",
    "int_at_least",
    "linted_catalog",
    "parse",
    "positive_int",
    "writable_json",
]


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    """Parse ``argv``; an exit code instead of raising (``--help`` 0, a bad flag 2).

    Abbreviated flags are refused (``--key 512`` is not ``--key-bits 512``)."""
    parser.allow_abbrev = False
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE


def add_lint_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-lint-errors`` (research runs on a catalog that fails lint)."""
    parser.add_argument(
        "--allow-lint-errors",
        action="store_true",
        help="run a catalog with lint errors anyway (the errors are printed first)",
    )


def linted_catalog(name: str, *, suite: str, allow: bool) -> Catalog | None:
    """Load and lint a catalog; ``None`` (after printing why) when the run must not start."""
    try:
        catalog = load_catalog(name)
    except CatalogError as exc:
        print(f"{suite}: --catalog: {exc}", file=sys.stderr)
        return None
    if not lint_gate(catalog, command=suite, allow=allow):
        return None
    return catalog


def writable_json(path: str | None, *, suite: str) -> bool:
    """Whether ``--json PATH`` can be written (printing why not); checked before the run."""
    if path is None:
        return True
    try:
        check_writable(str(path), flag="--json")
    except OutputError as exc:
        print(f"{suite}: {exc}", file=sys.stderr)
        return False
    return True
