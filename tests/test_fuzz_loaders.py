"""Fuzzed loaders: catalogs and deployments, mutated at random (issue 12, build item 6).

Property: whatever the bytes, loading either succeeds or raises the loader's own error
(``CatalogError`` / ``DeploymentError``, with every problem listed), and ``psc lint``
exits 0, 1 or 2 without a traceback.  Never a silent default: a key renamed to one the
format does not know is always reported, by its new name.

Derandomized with bounded examples, so a run is reproducible and cannot flake.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import tomllib
from importlib import resources
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psc.catalog import parse_catalog
from psc.cli.main import main
from psc.exceptions import CatalogError, DeploymentError
from psc.policy.deployment import deployment_from_dict, parse_deployment

CITY_TEXT = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
DEMO_TEXT = resources.files("psc.policy").joinpath("demo-deployment.toml").read_text("utf-8")
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_SCALARS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: {float("inf"): "inf", float("-inf"): "-inf"}.get(f, "nan" if f != f else repr(f))
    ),
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
    st.sampled_from(
        ["true", "false", "[]", "{}", "[1, 2]", '["a"]', "2026-01-01", "1979-05-27T07:32:00Z"]
    ),
)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    """``text`` with a few line-level mutations: drop, duplicate, retype a value, garble."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "value", "garble", "insert"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "value" and "=" in lines[i] and not lines[i].lstrip().startswith("#"):
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {draw(_SCALARS)}"
        elif op == "garble":
            j = draw(st.integers(min_value=0, max_value=max(len(lines[i]) - 1, 0)))
            lines[i] = lines[i][:j] + draw(st.text(max_size=3)) + lines[i][j + 1 :]
        else:
            lines.insert(i, draw(st.sampled_from(["[[rules]]", "[x]", "a = 1", "[[grades]]", ""])))
        if not lines:
            lines = [""]
    return "\n".join(lines) + "\n"


def _lint_in_process(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


@FUZZ
@given(mutated(CITY_TEXT))
def test_mutated_catalog_loads_or_lists_problems(text: str) -> None:
    try:
        parse_catalog(text, check_sensitive=False)
    except CatalogError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


@FUZZ
@given(mutated(DEMO_TEXT))
def test_mutated_deployment_loads_or_lists_problems(text: str) -> None:
    try:
        parse_deployment(text, check_sensitive=False)
    except (DeploymentError, CatalogError) as exc:
        assert exc.problems


@settings(FUZZ, max_examples=40)
@given(
    st.one_of(
        mutated(CITY_TEXT).map(lambda t: t.encode("utf-8")),
        st.binary(max_size=200),
        mutated(CITY_TEXT).map(lambda t: t.encode("utf-16")),
        mutated(CITY_TEXT).map(lambda t: b"\xef\xbb\xbf" + t.encode("utf-8")),
        st.sampled_from(["gb18030", "big5", "latin-1", "utf-32"]).map(
            lambda enc: CITY_TEXT.replace(
                "Traffic", "交通" if enc != "latin-1" else "Trafïc", 1
            ).encode(enc, errors="replace")
        ),
    )
)
def test_lint_on_any_bytes_exits_0_1_or_2_without_traceback(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_bytes(data)
        code, output = _lint_in_process(["lint", str(path), "--today", "2026-11-25"])
    assert code in (0, 1, 2), output
    assert "Traceback" not in output and "internal error" not in output, output


def _tables(data: dict[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    out: list[tuple[tuple[str | int, ...], str]] = []
    for top, v in data.items():
        if isinstance(v, dict):
            out += [((top,), k) for k in v if not isinstance(v[k], dict)]
            out += [((top, k), kk) for k in v if isinstance(v[k], dict) for kk in v[k]]
        elif isinstance(v, list):
            out += [((top, i), k) for i, t in enumerate(v) if isinstance(t, dict) for k in t]
    return out


CATALOG_KEYS = _tables(tomllib.loads(CITY_TEXT))
DEPLOYMENT_KEYS = _tables(tomllib.loads(DEMO_TEXT))
_NEW_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=14)


def _rename(doc: dict[str, object], path: tuple[str | int, ...], key: str, new: str) -> None:
    table: object = doc
    for p in path:
        table = table[p]  # type: ignore[index]
    assert isinstance(table, dict)
    table[new] = table.pop(key)


@FUZZ
@given(st.sampled_from(CATALOG_KEYS), _NEW_NAME)
def test_a_renamed_catalog_key_is_never_silently_ignored(
    where: tuple[tuple[str | int, ...], str], new: str
) -> None:
    from psc.catalog import catalog_from_dict

    path, key = where
    doc = tomllib.loads(CITY_TEXT)
    parent: object = doc
    for p in path:
        parent = parent[p]  # type: ignore[index]
    if new == key or new in parent:  # type: ignore[operator]
        return
    _rename(doc, path, key, new)
    try:
        catalog_from_dict(doc, check_sensitive=False)
    except CatalogError as exc:
        assert any(f".{new}: unknown key" in p or f"{new}: unknown" in p for p in exc.problems), (
            exc.problems
        )
    else:
        raise AssertionError(f"{path}.{key} renamed to {new!r} was accepted")


@FUZZ
@given(st.sampled_from(DEPLOYMENT_KEYS), _NEW_NAME)
def test_a_renamed_deployment_key_is_never_silently_ignored(
    where: tuple[tuple[str | int, ...], str], new: str
) -> None:
    path, key = where
    doc = tomllib.loads(DEMO_TEXT)
    parent: object = doc
    for p in path:
        parent = parent[p]  # type: ignore[index]
    if new == key or new in parent:  # type: ignore[operator]
        return
    _rename(doc, path, key, new)
    try:
        deployment_from_dict(doc, check_sensitive=False)
    except DeploymentError as exc:
        assert any(f"{new}: unknown key" in p for p in exc.problems), exc.problems
    else:
        raise AssertionError(f"{path}.{key} renamed to {new!r} was accepted")
