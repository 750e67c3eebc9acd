"""Replay ``protocols/vectors/catalog.json`` (catalog format 1.1, good and ``bad_*``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from psc.catalog import parse_catalog
from psc.exceptions import CatalogError

VECTORS = json.loads(
    (Path(__file__).parent.parent / "protocols" / "vectors" / "catalog.json").read_text("utf-8")
)


def test_vector_file_header() -> None:
    assert VECTORS["version"] == 1
    names = [c["name"] for c in VECTORS["cases"]]
    assert len(names) == len(set(names))
    assert any(n.startswith("good") for n in names) and any(n.startswith("bad_") for n in names)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector(case: dict[str, Any]) -> None:
    if case["success"]:
        assert parse_catalog(case["catalog"]).version_hash == case["version_hash"]
    else:
        with pytest.raises(CatalogError) as info:
            parse_catalog(case["catalog"])
        assert any(p.startswith(case["problem"]) for p in info.value.problems)


def test_format_1_0_catalog_keeps_its_hash() -> None:
    """Adding ``finding`` to the format did not change the hash of catalogs without one."""
    case = next(c for c in VECTORS["cases"] if c["name"] == "good_format_1_0_without_finding")
    # the hash the 1.0 spec published for its example (a rule without finding)
    assert case["version_hash"] == parse_catalog(case["catalog"]).version_hash
