"""Deployment descriptions: loading, validation errors, catalog resolution."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

import pytest

from psc.exceptions import DeploymentError, SensitiveRuleError
from psc.policy.deployment import load_deployment, parse_deployment

DEMO_TEXT = resources.files("psc.policy").joinpath("demo-deployment.toml").read_text("utf-8")


def test_demo_loads() -> None:
    d = load_deployment("demo")
    assert d.name == "demo-city" and d.catalog.scheme.name == "city-resident-credit"
    assert d.population == 740_000 and d.committee.k == 3 and d.schemes[0].key_bits == 3072
    assert d.rights.holidays[0] == dt.date(2026, 1, 1) and d.assessment.retention_years == 3
    assert d.notice.fields["processor"] and len(d.uses) == 2 and d.transfers == ()


def test_catalog_path_relative_to_the_file(tmp_path: Path) -> None:
    cat = resources.files("psc.catalogs").joinpath("company.toml").read_text("utf-8")
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "co.toml").write_text(cat, "utf-8")
    f = tmp_path / "dep.toml"
    f.write_text(DEMO_TEXT.replace('catalog = "city"', 'catalog = "cats/co.toml"'), "utf-8")
    assert load_deployment(f).catalog.scheme.name == "market-entity-credit"


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("population = 740000", 'population = "many"', r"deployment\.population: expected int"),
        (
            "[committee]\nk = 3",
            "[committee]\nk = true",
            r"committee\.k: expected int, got a boolean",
        ),
        ('name = "paillier"', 'name = "rsa"', r"schemes\[0\]\.name: must be paillier"),
        ("last_audit = 2026-03-31", 'last_audit = "2026-03-31"', "must be a date"),
        ("[dp]", "[dpp]\n[dp]", "unknown table"),
        ('catalog = "city"', 'catalog = "nope.toml"', "cannot be loaded"),
        ("population = 740000", "population = -1", "must be >= 0"),
        ("holidays = [", "holidays = [1, ", "list of dates"),
    ],
)
def test_problems_are_reported_with_location(old: str, new: str, match: str) -> None:
    assert old in DEMO_TEXT
    with pytest.raises(DeploymentError, match=match):
        parse_deployment(DEMO_TEXT.replace(old, new, 1), base_dir=Path("/nonexistent"))


def test_every_problem_at_once() -> None:
    text = DEMO_TEXT.replace("population = 740000", 'population = "x"').replace(
        "[committee]\nk = 3", "[committee]\nk = 1.5"
    )
    with pytest.raises(DeploymentError) as exc:
        parse_deployment(text)
    assert len(exc.value.problems) == 2


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="cannot read file"):
        load_deployment(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("this is = = not toml", "utf-8")
    with pytest.raises(DeploymentError, match="not valid TOML"):
        load_deployment(tmp_path / "bad.toml")


def test_sensitive_catalog_refused_unless_linting(tmp_path: Path) -> None:
    cat = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
    (tmp_path / "c.toml").write_text(
        cat.replace("Traffic ticket confirmed", "Petitioned higher authorities; ticket confirmed"),
        "utf-8",
    )
    f = tmp_path / "d.toml"
    f.write_text(DEMO_TEXT.replace('catalog = "city"', 'catalog = "c.toml"'), "utf-8")
    with pytest.raises(SensitiveRuleError, match=r"traffic\.violation"):
        load_deployment(f)
    assert load_deployment(f, check_sensitive=False).catalog.rules[0].id == "traffic.violation"
