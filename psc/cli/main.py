"""Entry point of the ``psc`` command.

Each subcommand lives in its own module with ``register(subparsers)``, which adds a parser
and sets ``func`` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: subcommand modules, in help order
COMMANDS: tuple[str, ...] = (
    "psc.cli.catalog_cmd",
    "psc.cli.log_cmd",
    "psc.cli.lint",
    "psc.cli.pia",
    "psc.cli.rights",
    "psc.cli.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psc",
        description="psc: privacy-preserving scoring core (encrypted aggregation, thresholded grades, PIPL checks)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
