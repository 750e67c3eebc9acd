"""``psc catalog``: describe a valid catalog, report every problem of a broken one."""

from __future__ import annotations

from pathlib import Path

import pytest

from psc.catalog import load_catalog
from psc.cli.main import main


@pytest.mark.parametrize("name", ["city", "company"])
def test_catalog_command_describes_a_builtin_catalog(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["catalog", name]) == 0
    out, err = capsys.readouterr()
    cat = load_catalog(name)
    assert err == ""
    assert f"{cat.scheme.name} v{cat.scheme.version}" in out
    assert f"version hash {cat.version_hash}" in out
    for rule in cat.rules:
        assert rule.id in out
    assert all(f"{g.label} >= {float(g.min)}" in out for g in cat.grades if g.min is not None)


def test_catalog_command_shows_the_city_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "city"]) == 0
    out = capsys.readouterr().out
    assert "city-resident-credit" in out and "base 1000, bounds [0, 1200]" in out
    assert "AAA >= 1049.5" in out and "D below" in out
    assert "caps at C" in out


def test_a_broken_catalog_exits_2_with_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (Path(__file__).parent.parent / "psc" / "catalogs" / "city.toml").read_text("utf-8")
    text = text.replace("min = 959.5", "min = 960", 1).replace(
        'legal_basis = "contract"', 'legal_basis = "whim"', 1
    )
    text = text.replace('retention = "judgment"', 'retention = "forever"', 1)
    bad = tmp_path / "broken.toml"
    bad.write_text(text, "utf-8")
    assert main(["catalog", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{bad}: 3 problem(s) in catalog" in err
    assert "grades[2].min: threshold 960 is not a half-integer" in err
    assert "rules[5] (utility.arrears).legal_basis" in err
    assert "rules[2] (court.judgment-default).retention: no retention class 'forever'" in err


def test_a_sensitive_catalog_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).parent.parent / "psc" / "catalogs" / "city.toml").read_text("utf-8")
    text = text.replace(
        'data_categories = ["tax-record"]', 'data_categories = ["tax-record", "religion"]'
    )
    bad = tmp_path / "sensitive.toml"
    bad.write_text(text, "utf-8")
    assert main(["catalog", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "sensitive category 'religion'" in err and "tax.arrears" in err


def test_a_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read file" in capsys.readouterr().err
