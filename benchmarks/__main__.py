"""Dispatch ``python -m benchmarks SUITE ...`` to ``benchmarks/<suite>.py:main(argv)``.

Exit codes (every suite): 0 completed, 1 a correctness check or acceptance target failed,
2 bad arguments or a refused input (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import difflib
import importlib
import sys

#: suite name -> module; each module has ``main(argv: list[str]) -> int``.
#: One line per suite, in help order (add yours on its own line).
SUITES: dict[str, str] = {
    "aggregate": "benchmarks.aggregate",
    "grade": "benchmarks.grade",
    "reveal": "benchmarks.reveal",
    "validity": "benchmarks.validity",
    "scale": "benchmarks.scale",
    "compliance": "benchmarks.compliance",
    "service": "benchmarks.service",
}


def usage() -> str:
    return (
        f"usage: python -m benchmarks {{{','.join(SUITES)}}} [--quick] [--json PATH] [options]\n"
        "       python -m benchmarks SUITE --help   (the options of one suite)"
    )


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in SUITES:
        near = difflib.get_close_matches(argv[0], list(SUITES), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        print(f"{usage()}\nunknown suite {argv[0]!r}{hint}", file=sys.stderr)
        return 2
    mod = importlib.import_module(SUITES[argv[0]])
    code: int = mod.main(argv[1:])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
