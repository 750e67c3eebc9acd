"""Hard refusal of sensitive rules: every vocabulary entry, rewordings, and no false positives."""

from __future__ import annotations

import copy
import re
import tomllib
from importlib import resources
from typing import Any

import pytest

from psc.catalog import catalog_from_dict, load_catalog
from psc.exceptions import SensitiveRuleError
from psc.policy.sensitive import (
    Term,
    Vocabulary,
    default_vocabulary,
    find_sensitive,
    normalise,
    scan_text,
    stem,
)

VOCAB = default_vocabulary()
CITY: dict[str, Any] = tomllib.loads(
    resources.files("psc.catalogs").joinpath("city.toml").read_text("utf-8")
)

BASE_RULE: dict[str, Any] = {
    "id": "test.rule",
    "agency": "city-administration",
    "description": "Administrative fine unpaid after the statutory payment period",
    "delta": -10,
    "domain": "administrative",
    "purpose": "enforcement of administrative penalties",
    "legal_basis": "statutory-duty",
    "legal_authority": "Administrative Penalty Law of the PRC, Art. 67",
    "evidence_required": True,
    "retention": "short",
    "data_categories": ["administrative-penalty"],
    "severity": "moderate",
}


def city_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(CITY)
    data["rules"].append(BASE_RULE | changes)
    return data


def sample_text(term: str) -> str:
    """A text the vocabulary term must match: markers removed, a filler word at each '~'."""
    return " ".join("for the" if w == "~" else w.lstrip("=").rstrip("*") for w in term.split())


def vocabulary_cases() -> list[Any]:
    cases = []
    for cat in VOCAB.categories.values():
        for t in cat.matcher.terms:
            cases.append(
                pytest.param(
                    cat.name, f"Record of {sample_text(t.text)} reported", id=f"{cat.name}:{t.text}"
                )
            )
        for r in cat.matcher.roots:
            cases.append(pytest.param(cat.name, f"code zz{r}zz", id=f"{cat.name}:root:{r}"))
        for z in cat.matcher.zh:
            cases.append(pytest.param(cat.name, f"记录{z}情况", id=f"{cat.name}:zh:{z}"))
    return cases


@pytest.mark.parametrize(("category", "text"), vocabulary_cases())
def test_every_vocabulary_entry_is_refused_at_load(category: str, text: str) -> None:
    with pytest.raises(SensitiveRuleError) as exc:
        catalog_from_dict(city_with(description=text))
    msg = str(exc.value)
    assert "'test.rule'" in msg
    assert f"'{category}'" in msg
    assert VOCAB.categories[category].article in msg


REWORDINGS = [
    ("political", "petitioned higher authorities"),
    ("political", "visits to the letters-and-calls office"),
    ("political", "Repeated Petitioning of the county government"),
    ("political", "took part in a street protest"),
    ("political", "skip-level visits to Beijing"),
    ("political", "上访"),
    ("political", "信访"),
    ("political", "越级上访三次"),
    ("political", "Organised a demonstration"),
    ("religion", "attended mosque"),
    ("religion", "宗教活动"),
    ("religion", "unregistered church gatherings"),
    ("religion", "practised Falun Gong"),
    ("religion", "Praying in public places"),
    ("religion", "religious_activity"),
    ("family", "failure to care for elderly parents"),
    ("family", "did not visit his parents at the festival"),
    ("family", "lack of filial piety"),
    ("family", "不赡养老人"),
    ("family", "divorce proceedings"),
    ("reproduction", "unauthorised second child"),
    ("reproduction", "unauthorized births"),
    ("reproduction", "violation of family-planning policy"),
    ("reproduction", "超生"),
    ("reproduction", "pregnancy outside the quota"),
    ("minors", "misconduct of the subject's children at school"),
    ("minors", "juvenile record"),
    ("minors", "未成年人"),
    ("ethnicity", "ethnic minority status"),
    ("ethnicity", "民族"),
    ("health", "history of mental illness"),
    ("health", "HIV status"),
    ("health", "hospitalised twice"),
    ("health", "健康状况"),
    ("biometrics", "facial recognition match at the station"),
    ("biometrics", "fingerprints on file"),
    ("biometrics", "人脸识别"),
    ("surveillance", "captured by CCTV"),
    ("surveillance", "traffic-camera snapshot"),
    ("surveillance", "监控录像"),
    ("whereabouts", "GPS trajectory of the vehicle"),
    ("whereabouts", "visits to internet cafes"),
    ("whereabouts", "行踪轨迹"),
    ("financial-accounts", "bank account balance below threshold"),
    ("sexuality", "sexual orientation"),
]


FIELDS = ["description", "purpose", "legal_authority", "agency", "id"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# Chinese-only wordings cannot be rule ids (ids are ASCII): every other pair is tested
REWORDING_CASES = [
    pytest.param(cat, text, field, id=f"{field}:{text}")
    for cat, text in REWORDINGS
    for field in FIELDS
    if field != "id" or _slug(text)
]


@pytest.mark.parametrize(("category", "text", "field"), REWORDING_CASES)
def test_rewordings_caught_in_every_field(category: str, text: str, field: str) -> None:
    value: Any = f"x.{_slug(text)}"[:64] if field == "id" else text
    data = city_with(**{field: value})
    with pytest.raises(SensitiveRuleError) as exc:
        catalog_from_dict(data)
    assert category in {
        h.category for h in find_sensitive(catalog_from_dict(data, check_sensitive=False).rules)
    }
    assert VOCAB.categories[category].article in str(exc.value)


@pytest.mark.parametrize(
    "declared",
    [
        "religion",
        "health",
        "biometrics",
        "religious-belief",
        "medical-record",
        "face-image",
        "whereabouts",
        "family-planning",
    ],
)
def test_declared_category_is_refused(declared: str) -> None:
    with pytest.raises(SensitiveRuleError, match="declared category"):
        catalog_from_dict(city_with(data_categories=[declared]))


INNOCENT = [
    "minor traffic violation",
    "Voluntary unpaid blood donation",
    "Registered volunteer service",
    "street racing conviction",
    "Anti-Unfair Competition Law, Art. 2",
    "performed in good faith",
    "Environmental Protection Law of the PRC, Art. 59",
    "guarantee given by the parent company",
    "Tax owed past the due date",
    "facing a fine",
    "a good track record",
    "gather evidence",
    "Failure to perform an effective court judgment despite the ability to do so",
    "relatively trustworthy",
    "strike off the register",
]


@pytest.mark.parametrize("text", INNOCENT)
def test_innocent_wording_is_not_flagged(text: str) -> None:
    assert scan_text(text) == []
    catalog_from_dict(city_with(description=text))  # loads


@pytest.mark.parametrize("name", ["city", "company"])
def test_shipped_catalogs_load_and_have_no_hit(name: str) -> None:
    cat = load_catalog(name)
    assert find_sensitive(cat.rules) == []


def test_hit_message_names_rule_article_and_evidence() -> None:
    cat = catalog_from_dict(city_with(description="attended mosque weekly"), check_sensitive=False)
    (hit,) = find_sensitive(cat.rules)
    assert hit.rule_id == "test.rule" and hit.category == "religion" and hit.field == "description"
    assert (
        "PIPL Art. 28" in hit.message()
        and "'test.rule'" in hit.message()
        and "mosque" in hit.message()
    )


def test_one_hit_per_category_per_rule() -> None:
    cat = catalog_from_dict(
        city_with(description="petitioned; protested; petition", purpose="letters and visits"),
        check_sensitive=False,
    )
    assert [h.category for h in find_sensitive(cat.rules)] == ["political"]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("petitioned", "petition"),
        ("petitions", "petition"),
        ("petitioning", "petition"),
        ("parents", "parent"),
        ("planning", "plan"),
        ("temples", "temple"),
        ("activities", "activity"),
        ("churches", "church"),
    ],
)
def test_stem_meets_inflections(a: str, b: str) -> None:
    assert stem(a) == stem(b)


def test_normalise_separators_and_spelling() -> None:
    assert (
        normalise("Letters_and.Calls-office").stems == normalise("letters and calls office").stems
    )
    assert normalise("unauthorised").tokens == normalise("unauthorized").tokens


def test_exact_prefix_and_gap_syntax() -> None:
    assert Term.compile("=minors").search(normalise("data of minors"))
    assert not Term.compile("=minors").search(normalise("minor conduct"))
    assert Term.compile("religio*").search(normalise("religiosity"))
    assert Term.compile("care ~ parent").search(normalise("care for his elderly parents"))
    assert not Term.compile("care ~ parent").search(
        normalise("care for the roads, the bridges and many parents")
    )


def test_malformed_vocabulary_is_rejected() -> None:
    with pytest.raises(ValueError, match="no letters"):
        Term.compile("***")
    bad = '[categories.x]\narticle = "a"\nterms = "not a list"\n[unrelated_conduct]\narticle="a"\n[unrelated_use]\narticle="a"\n[vague_purpose]\nexact=[]\n'
    with pytest.raises(ValueError, match=r"categories\.x\.terms"):
        Vocabulary.from_toml(bad)
