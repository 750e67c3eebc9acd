"""Entry point of the ``psc`` command.

Each subcommand lives in its own module with ``register(subparsers)``, which adds a parser
and sets ``func`` to a callable taking the parsed arguments and returning an exit code.

Exit codes, the same for every command: 0 success; 1 a check failed (an error-level lint
finding, a failed end-to-end check); 2 the command was used wrongly or its input is
unreadable, invalid or refused (bad arguments, a catalog that is not UTF-8, an unknown key,
a catalog with lint errors given to a runner, an unwritable output path); 130 interrupted.
An unknown flag shows the usage of the subcommand it was given to.  A bug inside psc is
reported in one line (exit 1); ``PSC_TRACEBACK=1`` shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from psc.exceptions import PscError

#: subcommand modules, in help order
COMMANDS: tuple[str, ...] = (
    "psc.cli.catalog_cmd",
    "psc.cli.log_cmd",
    "psc.cli.lint",
    "psc.cli.pia",
    "psc.cli.rights",
    "psc.cli.demo",
    "psc.cli.service_cmd",
)

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def version() -> str:
    """The installed psc version (``unknown`` when run from a tree that is not installed)."""
    try:
        return metadata.version("psc")
    except metadata.PackageNotFoundError:
        return "unknown"


def _mark_parsers(parser: argparse.ArgumentParser) -> None:
    """Record in every (sub)parser's defaults which parser it is, so the deepest one the
    command line reached can report an unknown flag with its own usage; and refuse
    abbreviated flags, which would otherwise pass a misspelling as another flag."""
    parser.set_defaults(_psc_parser=parser)
    parser.allow_abbrev = False  # "--subject 5" must not silently mean --subjects
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_parsers(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psc",
        description="psc: privacy-preserving scoring core (encrypted aggregation, thresholded grades, PIPL checks)",
        epilog="exit codes: 0 success, 1 a check failed, 2 bad arguments or unreadable/refused input",
    )
    parser.add_argument("--version", action="version", version=f"psc {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    _mark_parsers(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``psc`` command line; returns its exit code.

    Argument errors raise ``SystemExit(2)`` after printing the usage of the subcommand
    concerned (argparse's convention).
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        deepest: argparse.ArgumentParser = getattr(args, "_psc_parser", parser)
        deepest.error(f"unrecognized arguments: {' '.join(extras)}")
    name = f"psc {args.command}"
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except PscError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{name}:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if os.environ.get("PSC_TRACEBACK"):
            raise
        print(
            f"{name}: internal error: {type(exc).__name__}: {exc}. This is a bug in psc; "
            "rerun with PSC_TRACEBACK=1 and report the traceback.",
            file=sys.stderr,
        )
        return EXIT_CHECK_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
