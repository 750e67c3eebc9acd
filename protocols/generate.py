"""Regenerate every test-vector file: ``python -m protocols.generate [NAME ...]``.

Each ``protocols/gen_<name>.py`` has ``main() -> None`` that writes
``protocols/vectors/<name>.json`` deterministically (fixed seeds), so regenerating leaves
the files byte-identical unless the protocol changed.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def generators() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[4:] for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("gen_")
    )


def main(argv: list[str]) -> int:
    names = argv or generators()
    for name in names:
        importlib.import_module(f"protocols.gen_{name}").main()
        print(f"wrote protocols/vectors/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
