"""Dispatch ``python -m benchmarks SUITE ...`` to ``benchmarks/<suite>.py:main(argv)``."""

from __future__ import annotations

import importlib
import sys

#: suite name -> module; each module has ``main(argv: list[str]) -> int``
SUITES: dict[str, str] = {
    "aggregate": "benchmarks.aggregate",
    "grade": "benchmarks.grade",
    "reveal": "benchmarks.reveal",
    "validity": "benchmarks.validity",
    "scale": "benchmarks.scale",
    "compliance": "benchmarks.compliance",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SUITES:
        print(f"usage: python -m benchmarks {{{','.join(SUITES)}}} [--quick] [--json PATH]", file=sys.stderr)
        return 2
    mod = importlib.import_module(SUITES[argv[0]])
    code: int = mod.main(argv[1:])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
