"""``benchmarks/README.md`` defines every field the suites write, and its Results section is
the results files' (issue 12, item 8: undocumented fields and a stale Results section)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks import readme_results

HERE = Path(__file__).resolve().parent.parent / "benchmarks"
README = (HERE / "README.md").read_text("utf-8")
FILES = sorted((HERE / "results").glob("*.json"))


def _suite_section(suite: str) -> str:
    """The README text from ``## `suite``` to the next level-2 heading."""
    start = README.index(f"## `{suite}`")
    nxt = README.find("\n## ", start + 1)
    return README[start : nxt if nxt != -1 else None]


def _keys(doc: dict[str, Any]) -> set[str]:
    keys = set(doc) - {"env"}
    for k, v in doc.items():
        if k == "env":
            continue
        if isinstance(v, dict):
            keys |= set(v)
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    keys |= set(item)
                    for sub in item.values():
                        if isinstance(sub, dict) and k == "results":
                            keys |= {kk for d in sub.values() if isinstance(d, dict) for kk in d}
    return keys


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_field_is_defined_in_its_suite_section(path: Path) -> None:
    doc = json.loads(path.read_text("utf-8"))
    section = _suite_section(doc["suite"])
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_.-]*)`", section))
    # the aggregate section also defines the record fields the other suites share
    if doc["suite"] != "aggregate":
        documented |= set(re.findall(r"`([A-Za-z_][A-Za-z0-9_.-]*)`", _suite_section("aggregate")))
    missing = sorted(_keys(doc) - documented)
    assert not missing, f"{path.name}: fields not defined in benchmarks/README.md: {missing}"


def test_results_section_is_generated_from_the_files() -> None:
    assert readme_results.rewritten(README) == README, (
        "stale: run python -m benchmarks.readme_results"
    )
    for path in FILES:
        assert f"`results/{path.name}`" in README


def test_environment_fields_are_defined_where_they_are_made() -> None:
    env_doc = (HERE / "env.py").read_text("utf-8")
    doc = json.loads(FILES[0].read_text("utf-8"))
    missing = [k for k in doc["env"] if k not in env_doc and k not in README]
    assert not missing
