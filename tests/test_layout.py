"""The package layout keeps its promises: the README's table matches the tree, modules stay
small, the hazmat layer imports nothing above it, and no party imports the simulation."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PSC = ROOT / "psc"

#: "No module of psc/ over about 600 lines" (issue 13): a little slack, then split by concept.
MAX_LINES = 650

#: What the hazmat layer may import from above it, and why.
HAZMAT_UPWARD = {
    # the slot layout is sized from the catalog's public bounds
    ("psc/hazmat/packing.py", "psc.catalog"),
    ("psc/hazmat/backends/bfv.py", "psc.catalog"),
    # the published circuit reads the grade scale and the raw-score range
    ("psc/hazmat/he/circuit.py", "psc.catalog"),
    ("psc/hazmat/he/circuit.py", "psc.oracle"),
    # the exact grade polynomial interpolates the grade scale over the raw-score range
    ("psc/hazmat/exact/polynomial.py", "psc.catalog"),
    ("psc/hazmat/exact/polynomial.py", "psc.oracle"),
    # flooding noise comes from the exact samplers
    ("psc/hazmat/he/flooding.py", "psc.dp.random"),
    ("psc/hazmat/he/flooding.py", "psc.dp.sampling"),
}

#: Packages that hold protocol code: none of them may import the simulation or the CLI.
PROTOCOL_PACKAGES = ("parties", "protocol", "hazmat", "ledger", "policy", "dp", "scale")


def _modules() -> list[Path]:
    return sorted(p for p in PSC.rglob("*.py") if "__pycache__" not in p.parts)


def _psc_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "psc":
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "psc")
    return out


def _layout_rows() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Layout", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0], cells[1]))
    return rows


def test_every_module_is_small_enough() -> None:
    big = {
        p.relative_to(ROOT).as_posix(): n
        for p in _modules()
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"split these modules by concept: {big}"


def test_every_path_in_the_readme_layout_table_exists() -> None:
    rows = _layout_rows()
    assert rows, "README.md has no layout table under '## Layout'"
    for first, what in rows:
        paths = re.findall(r"`([^`]+)`", first)
        for p in paths:
            assert (ROOT / p.rstrip("/")).exists(), f"README layout names {p}, which is missing"
        # a row for one directory names files in it: each must exist there
        if len(paths) == 1 and paths[0].startswith("psc/") and paths[0].endswith("/"):
            base = ROOT / paths[0]
            for name in re.findall(r"`([a-z_]+(?:\.py|/))`", what):
                assert (base / name.rstrip("/")).exists(), f"{paths[0]} row names {name}"


def test_every_package_and_top_level_module_of_psc_is_in_the_table() -> None:
    listed = " ".join(first for first, _ in _layout_rows())
    entries = [
        p
        for p in sorted(PSC.iterdir())
        if p.name not in {"__pycache__", "__init__.py", "__main__.py", "py.typed"}
    ]
    for p in entries:
        rel = f"psc/{p.name}" + ("/" if p.is_dir() else "")
        assert f"`{rel}`" in listed, f"{rel} is missing from the README layout table"
    for pkg in ("parties", "hazmat"):
        row = next(what for first, what in _layout_rows() if first == f"`psc/{pkg}/`")
        for p in sorted((PSC / pkg).iterdir()):
            if p.name in {"__pycache__", "__init__.py"}:
                continue
            name = p.name + ("/" if p.is_dir() else "")
            in_sub = any(f"`psc/{pkg}/{name}`" in first for first, _ in _layout_rows())
            assert f"`{name}`" in row or in_sub, f"psc/{pkg}/{name} is not in the table"


@pytest.mark.parametrize(
    "path", [p for p in _modules() if "hazmat" in p.parts], ids=lambda p: p.name
)
def test_the_hazmat_layer_imports_nothing_above_it(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    for mod in _psc_imports(path):
        if mod.startswith("psc.hazmat") or mod == "psc.exceptions":
            continue
        assert (rel, mod) in HAZMAT_UPWARD, f"{rel} imports {mod} from above the hazmat layer"


def test_no_protocol_package_imports_the_simulation_or_the_cli() -> None:
    for pkg in PROTOCOL_PACKAGES:
        for path in (PSC / pkg).rglob("*.py"):
            bad = {
                m for m in _psc_imports(path) if m.startswith(("psc.sim", "psc.cli", "psc.testing"))
            }
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
