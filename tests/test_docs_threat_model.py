"""Every test ``protocols/threat-model.md`` names as an attack exists (a claim needs its test).

The threat model ties each privacy and integrity claim to the test that attacks it.  A
renamed or deleted test would leave a claim without its attack: this fails first.  Bare
file names (``test_agency.py``) are looked up under ``tests/attacks/``; ``file::name``
references must name a test function of that module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "protocols" / "threat-model.md"
REF = re.compile(r"(?<![\w/.])((?:tests/(?:attacks/)?)?test_\w+\.py)(?:::(\w+))?")


def _references(text: str) -> set[tuple[Path, str | None]]:
    out = set()
    for m in REF.finditer(text):
        name, func = m.group(1), m.group(2)
        path = ROOT / name if name.startswith("tests/") else ROOT / "tests" / "attacks" / name
        out.add((path, func))
    return out


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_named_attack_test_exists() -> None:
    refs = _references(DOC.read_text("utf-8"))
    assert len(refs) >= 10, "the threat model names its attack tests"
    missing = [f"{p.relative_to(ROOT)}::{f}" if f else str(p) for p, f in refs if not p.is_file()]
    assert not missing, f"threat-model.md names tests that do not exist: {missing}"
    gone = [f"{p.relative_to(ROOT)}::{f}" for p, f in refs if f and f not in _functions(p)]
    assert not gone, f"threat-model.md names test functions that do not exist: {gone}"


def test_the_check_catches_a_renamed_test() -> None:
    refs = _references("see `tests/attacks/test_agency.py::test_no_such_attack` and test_nope.py")
    (named,) = [(p, f) for p, f in refs if f]
    assert named[1] not in _functions(named[0])
    assert any(not p.is_file() for p, _ in refs)
