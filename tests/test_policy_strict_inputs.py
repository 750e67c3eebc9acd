"""Strict inputs: unknown keys refused with location and nearest key; encodings detected.

Issue 12, items 1 and 4: a typo in a deployment must not pass the linter with a default,
and a catalog saved as GBK or with a BOM must give a clear error (exit 2) or be read, never
a traceback.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

from psc.catalog import load_catalog, parse_catalog
from psc.cli.main import main
from psc.exceptions import CatalogError, DeploymentError
from psc.policy.deployment import load_deployment, parse_deployment
from psc.policy.toml_input import EncodingRefused, decode_toml_bytes, nearest, unknown_keys

CITY_TEXT = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
DEMO_TEXT = resources.files("psc.policy").joinpath("demo-deployment.toml").read_text("utf-8")


def _deployment_in(tmp: Path, text: str) -> Path:
    (tmp / "city.toml").write_text(CITY_TEXT, "utf-8")
    p = tmp / "dep.toml"
    p.write_text(text.replace('catalog = "city"', 'catalog = "city.toml"'), "utf-8")
    return p


def test_minimum_age_typo_is_refused_with_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dep = _deployment_in(tmp_path, DEMO_TEXT.replace("min_age = 18", "minimum_age = 12"))
    with pytest.raises(DeploymentError) as info:
        load_deployment(dep)
    assert any(
        "deployment.minimum_age: unknown key; did you mean 'min_age'?" in p
        for p in info.value.problems
    )
    assert main(["lint", str(tmp_path / "city.toml"), "--deployment", str(dep)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'min_age'" in err


def test_transfer_key_typo_is_refused(tmp_path: Path) -> None:
    text = DEMO_TEXT + (
        '\n[[transfers]]\nrecipient = "r"\ncountry = "SG"\npersons_per_year = 10\n'
        "sensitive_person_per_year = 50000\nmechanism = 'none'\nseparate_consent = true\n"
    )
    with pytest.raises(DeploymentError) as info:
        parse_deployment(text)
    assert any(
        p.startswith(
            "transfers[0].sensitive_person_per_year: unknown key; did you mean "
            "'sensitive_persons_per_year'?"
        )
        for p in info.value.problems
    )


def _tables(data: dict[str, object]) -> list[tuple[str, str]]:
    """Every (table path, key) of the demo deployment, array tables by index."""
    out: list[tuple[str, str]] = []
    for top, v in data.items():
        if isinstance(v, dict):
            out += [(top, k) for k in v]
        elif isinstance(v, list):
            for i, t in enumerate(v):
                if isinstance(t, dict):
                    out += [(f"{top}[{i}]", k) for k in t]
    return out


def test_every_key_of_every_deployment_table_is_checked() -> None:
    """Append a misspelt copy of each key, in each table: every one is refused, by name."""
    data = tomllib.loads(DEMO_TEXT)
    for where, key in _tables(data):
        top, _, idx = where.partition("[")
        doc = tomllib.loads(DEMO_TEXT)
        table = doc[top] if not idx else doc[top][int(idx[:-1])]
        table[key + "x"] = table[key]
        from psc.policy.deployment import deployment_from_dict

        with pytest.raises(DeploymentError) as info:
            deployment_from_dict(doc)
        assert any(
            p.startswith(f"{where}.{key}x: unknown key; did you mean {key!r}?")
            for p in info.value.problems
        ), (where, key, info.value.problems)


def test_unknown_top_level_table_suggests_nearest() -> None:
    with pytest.raises(DeploymentError) as info:
        parse_deployment(DEMO_TEXT + "\n[transfer]\nx = 1\n")
    assert any(
        "transfer: unknown table; did you mean 'transfers'?" in p for p in info.value.problems
    )


def test_catalog_unknown_key_suggests_nearest() -> None:
    text = CITY_TEXT.replace("max_per_period =", "max_per_periods =", 1)
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    assert any(
        "max_per_periods: unknown key; did you mean 'max_per_period'?" in p
        for p in info.value.problems
    )


def test_nearest_and_unknown_keys() -> None:
    assert nearest("minimum_age", ["min_age", "name"]) == "min_age"
    assert nearest("MIN-AGE", ["min_age"]) == "min_age"
    assert nearest("zzzz", ["min_age"]) is None
    assert unknown_keys({"a": 1, "min_age": 2}, ["min_age"], "d") == [
        "d.a: unknown key; (known: min_age)"
    ]


# -- encodings ---------------------------------------------------------------------------

GBK_CATALOG = CITY_TEXT.replace(
    'description = "Traffic ticket', 'description = "交通违法处罚决定书 Traffic ticket', 1
)


def test_gbk_catalog_is_refused_naming_the_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "own.toml"
    p.write_bytes(GBK_CATALOG.encode("gbk"))
    with pytest.raises(CatalogError) as info:
        load_catalog(p)
    msg = str(info.value)
    assert "GBK" in msg and "iconv -f GB18030 -t UTF-8" in msg
    assert main(["lint", str(p)]) == 2  # unreadable, not "an error finding"
    err = capsys.readouterr().err
    assert "GBK" in err and "Traceback" not in err


def test_utf8_bom_catalog_is_read(tmp_path: Path) -> None:
    p = tmp_path / "bom.toml"
    p.write_bytes(b"\xef\xbb\xbf" + GBK_CATALOG.encode("utf-8"))
    plain = parse_catalog(GBK_CATALOG)
    assert load_catalog(p).version_hash == plain.version_hash


def test_utf8_bom_deployment_is_read(tmp_path: Path) -> None:
    dep = _deployment_in(tmp_path, DEMO_TEXT)
    dep.write_bytes(b"\xef\xbb\xbf" + dep.read_bytes())
    assert load_deployment(dep).min_age == 18


@pytest.mark.parametrize(
    ("encoding", "named"),
    [("utf-16", "UTF-16"), ("utf-16-le", "UTF-16LE"), ("utf-32", "UTF-32"), ("big5", "Big5")],
)
def test_other_encodings_refused(tmp_path: Path, encoding: str, named: str) -> None:
    text = CITY_TEXT.replace('description = "Traffic ticket', 'description = "交通違規 Traffic', 1)
    p = tmp_path / "c.toml"
    p.write_bytes(text.encode(encoding))
    with pytest.raises(CatalogError) as info:
        load_catalog(p)
    assert named in str(info.value) and "iconv" in str(info.value)


def test_latin1_refused_with_hint() -> None:
    with pytest.raises(EncodingRefused) as info:
        decode_toml_bytes("name = 'Zürich'".encode("latin-1"), name="x.toml")
    assert "Windows-1252" in str(info.value) and "x-utf8.toml" in str(info.value)


def test_binary_refused() -> None:
    with pytest.raises(EncodingRefused, match="NUL bytes"):
        decode_toml_bytes(b"a = 1\n\x00\x01\x02 more text here", name="x.toml")


def test_sqlite_database_passed_as_toml_is_named(tmp_path: Path) -> None:
    """A rights database given where a deployment is expected: named, not called UTF-16."""
    import sqlite3

    db = tmp_path / "requests.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(EncodingRefused, match="a SQLite database") as info:
        decode_toml_bytes(db.read_bytes(), name="requests.db")
    assert "UTF-16" not in str(info.value)


def test_deployment_gbk_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dep = _deployment_in(tmp_path, DEMO_TEXT.replace('name = "demo-city"', 'name = "示范城市"'))
    dep.write_bytes(dep.read_text("utf-8").encode("gb18030"))
    assert main(["pia", str(dep), "--out", str(tmp_path / "out")]) == 2
    assert "GBK" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
