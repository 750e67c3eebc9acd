"""Template fields and directives of the report (``papers/build/fields.py``, ``template.py``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from papers.build import tables, template
from papers.build.fields import (
    ANCHORS,
    RESULTS,
    FieldError,
    Sources,
    evaluate,
    format_value,
    parse_field,
    resolve_path,
)

DOC = {
    "results": [
        {"backend": "numpy", "epsilon": 1.0, "x": 2},
        {"backend": "packed", "epsilon": 1.0, "x": 6, "nested": {"v": 0.5}},
        {"backend": "packed", "epsilon": 2.0, "x": 7},
    ],
    "name": "city",
}


def _sources(tmp_path: Path, doc: object = DOC) -> Sources:
    (tmp_path / "demo.json").write_text(json.dumps(doc))
    return Sources(tmp_path, ANCHORS)


def test_paths_walk_keys_indices_selectors_and_lengths() -> None:
    assert resolve_path(DOC, "name", "t") == "city"
    assert resolve_path(DOC, "results[0].x", "t") == 2
    assert resolve_path(DOC, "results[-1].x", "t") == 7
    assert resolve_path(DOC, "results[backend=packed,epsilon=1].nested.v", "t") == 0.5
    assert resolve_path(DOC, "results[?backend=packed].x", "t") == 6
    assert resolve_path(DOC, "results[len]", "t") == 3


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope", "no key 'nope'"),
        ("results[7]", "out of range"),
        ("results[backend=packed]", "matches 2 records"),
        ("results[backend=bfv]", "matches 0 records"),
        ("name[len]", r"\[len\] of a str"),
        ("results[0]!", "cannot parse"),
    ],
)
def test_paths_that_do_not_resolve_say_why(path: str, message: str) -> None:
    with pytest.raises(FieldError, match=message):
        resolve_path(DOC, path, "t")


def test_expressions_are_arithmetic_over_references(tmp_path: Path) -> None:
    s = _sources(tmp_path)
    f = parse_field(
        "{{ (demo:results[0].x + demo:results[-1].x) * 2 / demo:results[1].x | .1f }}", 1
    )
    assert evaluate(f, s) == 3.0 and f.sources == ["demo", "demo", "demo"] and f.fmt == ".1f"
    with pytest.raises(FieldError, match="division by zero"):
        evaluate(parse_field("{{ demo:results[0].x / 0 }}", 1), s)
    with pytest.raises(FieldError, match="not a number"):
        evaluate(parse_field("{{ demo:name * 2 }}", 1), s)
    with pytest.raises(FieldError, match="only"):
        evaluate(parse_field("{{ demo:results[0].x ** 2 }}", 1), s)
    with pytest.raises(FieldError, match=r"demo2\.json, which does not exist"):
        evaluate(parse_field("{{ demo2:x }}", 1), s)


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        (258.36, "auto", "258"),
        (1.8391, "auto", "1.84"),
        (0.00573, "auto", "0.00573"),
        (None, "auto", "-"),
        (12345.6, "int", "12,346"),
        (0.765, "pct0", "76%"),
        (0.017, "pct", "1.7%"),
        (-7.7884, "log2", "2^-7.8"),
        (20.0, "g", "20"),
        (True, "yesno", "yes"),
        ("AMD EPYC", "str", "AMD EPYC"),
    ],
)
def test_formats(value: object, fmt: str, text: str) -> None:
    assert format_value(value, fmt) == text


def test_bad_formats_are_refused_with_the_list_of_good_ones() -> None:
    with pytest.raises(FieldError, match="not a format"):
        format_value(1.0, "nonsense")
    with pytest.raises(FieldError, match="needs a number"):
        format_value("x", ".2f")


def test_if_else_directives_follow_the_records_present(tmp_path: Path) -> None:
    s = _sources(tmp_path)
    text = (
        "a\n<!-- if: demo:results[?backend=packed] -->\nyes {{demo:results[1].x}}\n<!-- else -->\nno\n<!-- endif -->\n"
        "<!-- if: demo:results[?backend=exact] -->\nexact\n<!-- else -->\nnot yet\n<!-- endif -->\nz\n"
    )
    exp = template.expand(text, s, {}, lambda _: "")
    assert template.fill(exp.text, s) == "a\nyes 6\nnot yet\nz\n"
    for bad, message in [
        ("<!-- endif -->\n", "without <!-- if -->"),
        ("<!-- if: demo:name -->\n", "without <!-- endif -->"),
        ("<!-- table: nope -->\n", "no table 'nope'"),
    ]:
        with pytest.raises(FieldError, match=message):
            template.expand(bad, s, {}, lambda _: "")


def test_reveal_table_and_prose_include_threshold_exact_records_when_present(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    path = results / "reveal-quick.json"
    doc = json.loads(path.read_text())
    base = Sources(results, ANCHORS)
    from papers.build import build

    without = build(base).markdown
    assert "threshold-exact" not in without and "is not in\nthe results yet" in without
    doc["results"].append(
        {
            "protocol": "threshold-exact",
            "mode": "batch",
            "subjects": 680,
            "k": 3,
            "n": 5,
            "ms_per_subject": 12.5,
            "misgrade_rate": 0.0,
        }
    )
    path.write_text(json.dumps(doc))
    with_exact = build(Sources(results, ANCHORS)).markdown
    assert "| threshold-exact | batch | 680 | 3 | 5 |" in with_exact
    assert "12.50\nms per subject in its first record" in with_exact
    from papers.build import figures

    figures.draw("reveal", Sources(results, ANCHORS), tmp_path / "figures")
    assert (tmp_path / "figures" / "reveal.png").stat().st_size > 1000


def test_generated_tables_are_fields_not_literals(tmp_path: Path) -> None:
    s = Sources(RESULTS, ANCHORS)
    text = tables.TABLES["reveal-quick"](s)
    rows = [line for line in text.splitlines()[2:]]
    assert rows and all("{{reveal-quick:results[" in r for r in rows)
    # a cell whose value is null prints "-" rather than a field
    assert "| - |" in text
