"""Catalog loading: the shipped catalogs, every-problem-at-once validation, sensitive
refusal and the version hash."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from psc.catalog import (
    BUILTIN_CATALOGS,
    LEGAL_BASES,
    Catalog,
    catalog_from_dict,
    load_catalog,
    parse_catalog,
    parse_period,
    period_index,
    period_label,
    period_start,
)
from psc.exceptions import CatalogError, SensitiveRuleError
from psc.policy.sensitive import category_names, find_sensitive
from psc.testing import catalog_documents, catalogs

Doc = dict[str, Any]


def city_doc() -> Doc:
    text = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
    return tomllib.loads(text)


def problems_of(doc: Doc) -> list[str]:
    with pytest.raises(CatalogError) as info:
        catalog_from_dict(doc)
    assert not isinstance(info.value, SensitiveRuleError)
    return info.value.problems


# ----------------------------------------------------------------------------------------
# shipped catalogs


@pytest.mark.parametrize("name", BUILTIN_CATALOGS)
def test_shipped_catalogs_load_and_are_well_formed(name: str) -> None:
    cat = load_catalog(name)
    assert cat.source == f"builtin:{name}"
    assert len(cat.thresholds) == len(cat.labels) - 1
    assert all(t.denominator == 2 for t in cat.thresholds)
    assert list(cat.thresholds) == sorted(cat.thresholds)
    assert cat.scheme.min_score < cat.thresholds[0] and cat.thresholds[-1] < cat.scheme.max_score
    assert find_sensitive(cat.rules) == []
    assert all(r.evidence_required for r in cat.rules)
    assert {r.retention for r in cat.rules} <= set(cat.retention)
    assert any(r.delta > 0 for r in cat.rules) and any(r.delta < 0 for r in cat.rules)
    assert any(r.grade_cap is not None for r in cat.rules)


def test_city_catalog_matches_the_reported_scheme(city: Catalog) -> None:
    assert city.scheme.base_score == 1000
    assert city.labels == ("D", "C", "B", "A", "AA", "AAA")
    assert city.thresholds[:4] == (
        Fraction(1199, 2),
        Fraction(1699, 2),
        Fraction(1919, 2),
        Fraction(2059, 2),
    )
    assert city.rule("traffic.drunk-driving").grade_cap == "C"
    assert city.grade_index("C") == 1
    with pytest.raises(KeyError, match="no rule 'nope'"):
        city.rule("nope")
    with pytest.raises(KeyError, match="unknown grade label"):
        city.grade_index("Z")


def test_loading_a_file_and_text_agree(tmp_path: Path, city: Catalog) -> None:
    text = resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
    f = tmp_path / "city.toml"
    f.write_text(text, "utf-8")
    from_file = load_catalog(f)
    assert from_file.source == str(f)
    assert from_file.version_hash == city.version_hash == parse_catalog(text).version_hash


def test_unreadable_file_and_bad_toml_are_catalog_errors(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read file"):
        load_catalog(tmp_path / "missing.toml")
    with pytest.raises(CatalogError, match="not valid TOML"):
        parse_catalog("[scheme\nname = 1")


# ----------------------------------------------------------------------------------------
# every problem at once, each with its location


def test_every_problem_is_reported_at_once_with_its_location() -> None:
    doc = city_doc()
    doc["scheme"]["base_score"] = 5000  # outside [min_score, max_score]
    doc["scheme"]["colour"] = "red"  # unknown key
    doc["grades"][2]["min"] = 960  # not a half-integer
    doc["retention"]["short"]["months"] = 0
    doc["rules"][0]["weight"] = 3  # unknown key
    doc["rules"][1]["retention"] = "forever"  # no such class
    doc["rules"][2]["legal_basis"] = "because"  # not a PIPL Art. 13 basis
    doc["rules"][3]["id"] = doc["rules"][0]["id"]  # duplicate id
    doc["rules"][4]["delta"] = "ten"  # wrong type
    doc["rules"][5]["grade_cap"] = "Z"  # unknown label
    probs = problems_of(doc)
    expected = [
        "scheme:",
        "scheme.colour:",
        "grades[2].min:",
        "retention.short.months:",
        "rules[0].weight:",
        "rules[1] (traffic.drunk-driving).retention:",
        "rules[2] (court.judgment-default).legal_basis:",
        "rules[3] (traffic.violation).id: duplicate rule id",
        "rules[4] (admin.unpaid-fine).delta:",
        "rules[5] (utility.arrears).grade_cap:",
    ]
    for where in expected:
        assert any(p.startswith(where) for p in probs), (where, probs)
    assert len(probs) == len(expected)
    with pytest.raises(CatalogError) as info:
        catalog_from_dict(doc, source="city-broken.toml")
    assert str(info.value).startswith(f"city-broken.toml: {len(expected)} problem(s)")


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _delete(path: tuple[Any, ...]) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return apply


SINGLE_PROBLEMS: list[tuple[str, Callable[[Doc], None], str, str]] = [
    ("threshold 959.25", _set(("grades", 2, "min"), 959.25), "grades[2].min", "half-integer"),
    ("threshold as text", _set(("grades", 2, "min"), "959.5"), "grades[2].min", "ending in .5"),
    ("thresholds not decreasing", _set(("grades", 3, "min"), 1000.5), "grades[3].min", "decrease"),
    (
        "threshold outside bounds",
        _set(("grades", 0, "min"), 1300.5),
        "grades[0].min",
        "strictly inside",
    ),
    ("min on lowest band", _set(("grades", 5, "min"), 0.5), "grades[5].min", "remove min"),
    ("missing min", _delete(("grades", 1, "min")), "grades[1].min", "missing"),
    ("duplicate label", _set(("grades", 1, "label"), "AAA"), "grades[1].label", "duplicate"),
    ("one grade", _set(("grades",), [{"label": "A"}]), "grades", "at least two"),
    ("unknown top-level table", _set(("extras",), {}), "catalog.extras", "unknown key"),
    (
        "unknown rule key",
        _set(("rules", 0, "weight"), 1),
        "rules[0].weight",
        "unknown key",
    ),
    (
        "bad retention ref",
        _set(("rules", 0, "retention"), "forever"),
        "rules[0] (traffic.violation).retention",
        "no retention class",
    ),
    (
        "bad legal basis",
        _set(("rules", 0, "legal_basis"), "whim"),
        "rules[0] (traffic.violation).legal_basis",
        "PIPL Art. 13",
    ),
    (
        "duplicate id",
        _set(("rules", 1, "id"), "traffic.violation"),
        "rules[1] (traffic.violation).id",
        "duplicate",
    ),
    (
        "bad id",
        _set(("rules", 0, "id"), "Traffic Violation"),
        "rules[0] (Traffic Violation).id",
        "lowercase",
    ),
    (
        "missing delta",
        _delete(("rules", 0, "delta")),
        "rules[0] (traffic.violation).delta",
        "missing",
    ),
    (
        "boolean delta",
        _set(("rules", 0, "delta"), True),
        "rules[0] (traffic.violation).delta",
        "boolean",
    ),
    (
        "huge delta",
        _set(("rules", 1, "delta"), -10_001),
        "rules[1] (traffic.drunk-driving).delta",
        "at most 10000",
    ),
    (
        "inert rule",
        _set(("rules", 0, "delta"), 0),
        "rules[0] (traffic.violation).delta",
        "does nothing",
    ),
    (
        "positive penalty",
        _set(("rules", 0, "delta"), 5),
        "rules[0] (traffic.violation).severity",
        "positive delta",
    ),
    (
        "negative reward",
        _set(("rules", 6, "delta"), -5),
        "rules[6] (civic.volunteering).severity",
        "negative delta",
    ),
    (
        "bad severity",
        _set(("rules", 0, "severity"), "awful"),
        "rules[0] (traffic.violation).severity",
        "must be one of",
    ),
    (
        "domain outside scheme",
        _set(("rules", 0, "domain"), "lifestyle"),
        "rules[0] (traffic.violation).domain",
        "rule_domains",
    ),
    (
        "max_per_period 0",
        _set(("rules", 0, "max_per_period"), 0),
        "rules[0] (traffic.violation).max_per_period",
        "between 1 and 1000",
    ),
    (
        "unknown cap",
        _set(("rules", 0, "grade_cap"), "Z"),
        "rules[0] (traffic.violation).grade_cap",
        "unknown grade",
    ),
    (
        "cap at top",
        _set(("rules", 0, "grade_cap"), "AAA"),
        "rules[0] (traffic.violation).grade_cap",
        "no effect",
    ),
    (
        "bad publication",
        _set(("rules", 0, "publication"), "billboard"),
        "rules[0] (traffic.violation).publication",
        "must be one of",
    ),
    (
        "categories not strings",
        _set(("rules", 0, "data_categories"), [1]),
        "rules[0] (traffic.violation).data_categories",
        "strings",
    ),
    (
        "evidence as text",
        _set(("rules", 0, "evidence_required"), "yes"),
        "rules[0] (traffic.violation).evidence_required",
        "expected bool",
    ),
    ("no rules", _set(("rules",), []), "rules", "at least one"),
    ("no retention", _set(("retention",), {}), "retention", "at least one"),
    (
        "retention months too long",
        _set(("retention", "short", "months"), 601),
        "retention.short.months",
        "between 1 and 600",
    ),
    (
        "bad retention name",
        _set(("retention", "Short Term"), {"months": 3}),
        "retention.Short Term",
        "lowercase",
    ),
    (
        "bad subject kind",
        _set(("scheme", "subject_kind"), "robot"),
        "scheme.subject_kind",
        "must be one of",
    ),
    ("empty purposes", _set(("scheme", "purposes"), []), "scheme.purposes", "non-empty"),
    ("missing scheme", _delete(("scheme",)), "scheme", "missing table"),
    ("operator not text", _set(("scheme", "operator"), 5), "scheme.operator", "expected str"),
    (
        "residency not text",
        _set(("scheme", "data_residency"), ["CN"]),
        "scheme.data_residency",
        "expected str",
    ),
    ("base below min", _set(("scheme", "base_score"), -1), "scheme", "min_score <= base_score"),
]


@pytest.mark.parametrize(
    ("mutate", "where", "what"),
    [pytest.param(m, w, x, id=name) for name, m, w, x in SINGLE_PROBLEMS],
)
def test_each_problem_is_located(mutate: Callable[[Doc], None], where: str, what: str) -> None:
    doc = city_doc()
    mutate(doc)
    probs = problems_of(doc)
    hits = [p for p in probs if p.startswith(f"{where}:")]
    assert hits, (where, probs)
    assert any(what in p for p in hits), (what, hits)


def test_all_single_problems_together_are_all_reported() -> None:
    """Independent problems in distinct places do not hide one another."""
    doc = city_doc()
    picked = [
        "threshold 959.25",
        "unknown rule key",
        "bad legal basis",
        "huge delta",
        "negative reward",
        "bad subject kind",
        "retention months too long",
    ]
    table = {name: (m, w) for name, m, w, _ in SINGLE_PROBLEMS}
    for name in picked:
        table[name][0](doc)
    probs = problems_of(doc)
    for name in picked:
        where = table[name][1]
        assert any(p.startswith(f"{where}:") for p in probs), (name, probs)


# ----------------------------------------------------------------------------------------
# sensitive categories are refused, never warned about


@pytest.mark.parametrize("category", category_names())
def test_a_declared_sensitive_category_is_refused(category: str) -> None:
    doc = city_doc()
    doc["rules"][3]["data_categories"] = ["tax-record", category]
    with pytest.raises(SensitiveRuleError) as info:
        catalog_from_dict(doc)
    assert any("tax.arrears" in p and repr(category) in p for p in info.value.problems)
    # a linter may look at the findings, but such a catalog is never used for scoring
    assert catalog_from_dict(doc, check_sensitive=False).rule("tax.arrears")


SENSITIVE_TEXTS = [
    ("religion", "Record of religious activity"),
    ("political", "Repeated petitioning of higher authorities"),
    ("ethnicity", "Ethnic origin recorded by the agency"),
    ("health", "Medical history of the subject"),
    ("biometrics", "Facial recognition match"),
    ("reproduction", "Family planning violation"),
    ("minors", "Conduct of minors under 14"),
    ("whereabouts", "GPS location history"),
    ("family", "Failure to visit elderly parents"),
]


@pytest.mark.parametrize(("category", "text"), SENSITIVE_TEXTS)
def test_sensitive_rule_text_is_refused(category: str, text: str) -> None:
    doc = city_doc()
    doc["rules"][5]["description"] = text
    with pytest.raises(SensitiveRuleError) as info:
        catalog_from_dict(doc)
    assert any("utility.arrears" in p and repr(category) in p for p in info.value.problems)


def test_petitioning_rule_is_refused_even_with_a_neutral_category() -> None:
    doc = city_doc()
    doc["rules"].append(
        dict(
            doc["rules"][4],
            id="admin.repeated-petitioning",
            description="Petitioning higher authorities",
        )
    )
    with pytest.raises(SensitiveRuleError, match="political"):
        catalog_from_dict(doc)


@settings(max_examples=40)
@given(catalogs())
def test_generated_catalogs_are_valid_and_never_sensitive(cat: Catalog) -> None:
    assert find_sensitive(cat.rules) == []
    thr = cat.thresholds
    assert len(thr) == len(cat.labels) - 1
    assert all(t.denominator == 2 for t in thr) and list(thr) == sorted(set(thr))
    assert cat.scheme.min_score < thr[0] and thr[-1] < cat.scheme.max_score
    for r in cat.rules:
        assert r.delta != 0 or r.grade_cap is not None
        assert r.grade_cap is None or r.grade_cap != cat.labels[-1]


# ----------------------------------------------------------------------------------------
# version hash


def _rule_mutations(doc: Doc, i: int) -> dict[str, Callable[[Doc], None]]:
    """One valid change per rule field (and a few scheme/grade/retention ones)."""
    rule = doc["rules"][i]
    delta = rule["delta"]
    classes = sorted(doc["retention"])
    labels = [g["label"] for g in doc["grades"]]

    def new_delta(d: Doc) -> None:
        r = d["rules"][i]
        if delta > 0:
            r["delta"] = delta + 1 if delta < 10_000 else delta - 1
        else:
            r["delta"] = delta - 1 if delta > -10_000 else delta + 1

    def new_retention(d: Doc) -> None:
        other = [c for c in classes if c != rule["retention"]]
        if other:
            d["rules"][i]["retention"] = other[0]
        else:
            d["retention"]["extra"] = {"months": 1}
            d["rules"][i]["retention"] = "extra"

    def toggle_cap(d: Doc) -> None:
        r = d["rules"][i]
        if "grade_cap" in r:
            del r["grade_cap"]
            if delta == 0:  # a pure cap rule needs a delta once uncapped
                r["delta"], r["severity"] = -1, "minor"
        else:
            r["grade_cap"] = labels[-1]

    def new_severity(d: Doc) -> None:
        r = d["rules"][i]
        if delta > 0:
            r["delta"] = -delta
            r["severity"] = "minor"
        else:
            r["severity"] = "serious" if r["severity"] != "serious" else "minor"

    def edit(key: str, fn: Callable[[Any], Any]) -> Callable[[Doc], None]:
        return lambda d: d["rules"][i].__setitem__(key, fn(d["rules"][i].get(key)))

    def move_threshold(d: Doc) -> None:
        # thresholds sit on hi - lo >= len(grades) half-integer positions, more than there
        # are thresholds, so some threshold can move by one to a free neighbour
        lo, hi = d["scheme"]["min_score"], d["scheme"]["max_score"]
        taken = [g["min"] for g in d["grades"][:-1]]
        for g in d["grades"][:-1]:
            for step in (-1, 1):
                new = g["min"] + step
                if lo < new < hi and new not in taken:
                    g["min"] = new
                    return
        raise AssertionError(f"no threshold can move in {taken} within ({lo}, {hi})")

    return {
        "id": edit("id", lambda v: v + "x"),
        "agency": edit("agency", lambda v: v + "-2"),
        "description": edit("description", lambda v: v + " (amended)"),
        "delta": new_delta,
        "domain": edit("domain", lambda v: "credit-b" if v == "credit-a" else "credit-a"),
        "purpose": edit("purpose", lambda v: v + " (amended)"),
        "legal_basis": edit("legal_basis", lambda v: sorted(LEGAL_BASES - {v})[0]),
        "legal_authority": edit("legal_authority", lambda v: v + ", para. 2"),
        "evidence_required": edit("evidence_required", lambda v: not v),
        "retention": new_retention,
        "data_categories": edit("data_categories", lambda v: [*v, "tax-record"]),
        "severity": new_severity,
        "max_per_period": edit("max_per_period", lambda v: v + 1 if v < 1000 else v - 1),
        "grade_cap": toggle_cap,
        "publication": edit("publication", lambda v: "blacklist" if v != "blacklist" else "none"),
        "publication_basis": edit("publication_basis", lambda v: (v or "") + "Art. 9"),
        "scheme.version": _set(("scheme", "version"), doc["scheme"]["version"] + ".1"),
        "scheme.base_score": _set(
            ("scheme", "base_score"),
            doc["scheme"]["base_score"]
            + (1 if doc["scheme"]["base_score"] < doc["scheme"]["max_score"] else -1),
        ),
        "grades.threshold": move_threshold,
        "grades.description": _set(("grades", 0, "description"), "amended"),
        "retention.months": _set(
            ("retention", classes[0], "months"),
            doc["retention"][classes[0]]["months"] % 600 + 1,
        ),
    }


MUTATION_NAMES = sorted(_rule_mutations(city_doc(), 0))


@settings(max_examples=60)
@given(doc=catalog_documents(), field=st.sampled_from(MUTATION_NAMES), data=st.data())
def test_version_hash_changes_when_any_field_changes(
    doc: Doc, field: str, data: st.DataObject
) -> None:
    before = catalog_from_dict(doc)
    i = data.draw(st.integers(0, len(doc["rules"]) - 1), label="rule index")
    changed = copy.deepcopy(doc)
    _rule_mutations(changed, i)[field](changed)
    after = catalog_from_dict(changed, check_sensitive=False)
    assert after != before
    assert after.version_hash != before.version_hash


@settings(max_examples=30)
@given(catalog_documents())
def test_version_hash_is_stable(doc: Doc) -> None:
    first = catalog_from_dict(doc, source="a.toml")
    # key order inside tables and the source name do not matter
    shuffled = {k: doc[k] for k in reversed(list(doc))}
    shuffled["retention"] = {
        k: dict(reversed(list(v.items()))) for k, v in reversed(list(doc["retention"].items()))
    }
    shuffled["rules"] = [dict(reversed(list(r.items()))) for r in doc["rules"]]
    second = catalog_from_dict(copy.deepcopy(shuffled), source="b.toml")
    assert first.version_hash == second.version_hash
    assert len(first.version_hash) == 64 and int(first.version_hash, 16) >= 0


# ----------------------------------------------------------------------------------------
# periods


@given(st.dates())
def test_periods_round_trip(day: Any) -> None:
    p = period_index(day)
    assert period_start(p) == day.replace(day=1)
    assert parse_period(period_label(p)) == p


@pytest.mark.parametrize("bad", ["2025-13", "2025-00", "25-01", "2025/01", "2025-1"])
def test_parse_period_rejects_malformed_labels(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period(bad)


# ----------------------------------------------------------------------------------------
# the worked example of protocols/catalog.md


def spec_example() -> tuple[str, str]:
    spec = (Path(__file__).parent.parent / "protocols" / "catalog.md").read_text("utf-8")
    toml_text = spec.split("```toml\n", 1)[1].split("```", 1)[0]
    digest = spec.split("version hash: `", 1)[1].split("`", 1)[0]
    return toml_text, digest


def test_the_spec_example_loads_with_the_published_hash() -> None:
    text, digest = spec_example()
    cat = parse_catalog(text)
    assert cat.version_hash == digest
    # spelling, defaults written out and comments do not change the hash
    same = text.replace("min = 119.5", "min = 1.195e2").replace(
        'severity = "moderate"', 'severity = "moderate"\nmax_per_period = 1  # the default'
    )
    assert parse_catalog(same).version_hash == digest
    assert parse_catalog(text.replace("Art. 32", "Art. 33")).version_hash != digest


def test_the_spec_example_scores_as_described() -> None:
    from psc import oracle
    from psc.events import Event, EventTable

    cat = parse_catalog(spec_example()[0])
    ev = "cd" * 32
    one = EventTable.from_events(
        cat, [Event(0, "tax.arrears", parse_period_date("2025-03"), ev)], 1
    )
    for label, want in [
        ("2025-02", (100, "B")),
        ("2025-03", (80, "B")),
        ("2026-02", (80, "B")),
        ("2026-03", (100, "B")),
    ]:
        s = oracle.score(one, parse_period(label))
        assert (int(s.score[0]), s.labels(cat)[0]) == want, label
    three = EventTable.from_events(
        cat,
        [
            Event(0, "tax.arrears", parse_period_date(m), ev)
            for m in ("2025-01", "2025-05", "2025-09")
        ],
        1,
    )
    s = oracle.score(three, parse_period("2025-09"))
    assert (int(s.score[0]), s.labels(cat)[0]) == (40, "C")


def parse_period_date(label: str) -> Any:
    return period_start(parse_period(label))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_rules": 0}, "max_rules must be in 1..64"),
        ({"min_rules": 5, "max_rules": 2}, "min_rules=5 must not exceed max_rules=2"),
        ({"max_abs_delta": 10_001}, "max_abs_delta must be in 1..10000"),
        ({"max_grades": 1}, "max_grades must be in 2..8"),
        ({"grade_caps": "yes"}, "grade_caps must be a bool"),
    ],
)
def test_catalog_strategies_check_their_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        catalogs(**kwargs)


# ----------------------------------------------------------------------------------------
# advice on thresholds (issue 12, items 5 and 8)


@pytest.mark.parametrize(
    ("written", "advice"),
    [
        ("120", "use 119.5 (the band then starts at score 120)"),
        ("120.3", "use 120.5 (the band then starts at score 121)"),
        ("-3", "use -3.5 (the band then starts at score -3)"),
    ],
)
def test_whole_threshold_advice_keeps_the_lowest_score_in_the_band(
    written: str, advice: str
) -> None:
    """``min = 120`` reads as "120 and above": the advice must keep 120 in the band."""
    text = spec_example()[0].replace("min = 119.5", f"min = {written}")
    if written == "-3":
        text = text.replace("min_score = 0", "min_score = -100")
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    assert any(p.startswith("grades[0].min:") and advice in p for p in info.value.problems)


def test_threshold_messages_print_decimals_not_fractions() -> None:
    text = (
        spec_example()[0]
        .replace("min = 79.5", "min = 129.5")
        .replace("max_score = 200", "max_score = 110")
    )
    with pytest.raises(CatalogError) as info:
        parse_catalog(text)
    joined = "\n".join(info.value.problems)
    assert "129.5 >= 119.5" in joined and "threshold 119.5 must lie strictly inside" in joined
    assert "/2" not in joined


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_threshold_is_a_problem_not_a_traceback(value: str) -> None:
    with pytest.raises(CatalogError, match="is not a number"):
        parse_catalog(spec_example()[0].replace("min = 119.5", f"min = {value}"))


def test_describe_pluralises_company() -> None:
    from psc.catalog import describe

    assert "(companies, " in describe(load_catalog("company"))[0]
    assert "(persons, " in describe(load_catalog("city"))[0]
