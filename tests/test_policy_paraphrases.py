"""Purposes and sensitive categories matched by meaning, not by exact string (issue 12, item 7).

The maintained paraphrase list: for each category, wordings in English and Chinese (other
word order, other inflection, synonyms) that the vocabulary must catch; and specific
purposes and innocent texts it must not.  When a paraphrase slips through in the field,
add it here first (the test fails), then to ``psc/policy/vocabulary.toml``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from psc.catalog import load_catalog
from psc.policy.checks_catalog import explanation_words
from psc.policy.linter import lint
from psc.policy.sensitive import default_vocabulary, scan_text

VOCAB = default_vocabulary()
DAY = dt.date(2026, 11, 25)

#: purposes too vague for PIPL Art. 6, paraphrased
VAGUE_PURPOSES = [
    "social order",
    "maintenance of social order",
    "maintaining social order",
    "order in society",
    "social harmony",
    "a harmonious society",
    "harmony of the community",
    "stability maintenance",
    "maintaining stability",
    "social stability",
    "stabilising society",
    "public order",
    "the public interest",
    "public good",
    "management of society",
    "social governance",
    "governance of society",
    "building the social credit system",
    "promoting civilized behaviour",
    "moral education",
    "general purposes",
    "Other purposes",
    "维护社会秩序",
    "社会和谐",
    "构建和谐社会",
    "维稳",
    "维护社会稳定",
    "公共秩序",
    "社会管理",
    "社会治理创新",
    "公共利益",
    "弘扬正能量",
    "其他",
]

#: specific purposes that must pass (the shipped catalogs' among them)
SPECIFIC_PURPOSES = [
    "road-safety compliance record",
    "enforcement of effective judgments",
    "tax compliance record",
    "enforcement of administrative penalties",
    "utility contract performance",
    "recognition of voluntary service",
    "environmental compliance record",
    "product-safety compliance record",
    "credit-assessment",
    "tenancy-screening",
    "subject-self-access",
    "public-procurement",
    "enforcement of public order offence penalties",
    "执行生效判决",
    "税收征管记录",
]

#: sensitive categories, paraphrased (EN and ZH); complements test_policy_sensitive.REWORDINGS
SENSITIVE_PARAPHRASES: dict[str, list[str]] = {
    "political": [
        "lodging complaints against officials in the capital",
        "complained about local cadres to the provincial government",
        "travelled to Beijing to complain",
        "grievances against officials",
        "appeals to higher-level authorities",
        "repeatedly petitioning",
        "进京上访",
        "赴京投诉",
        "越级上访",
        "投诉官员",
    ],
    "religion": ["worshipping at an unregistered church", "practises Buddhism", "宗教信仰"],
    "family": ["neglect of aged parents", "failure to support his parents", "赡养父母"],
    "reproduction": ["births over the quota", "violating family planning rules", "超生子女"],
    "minors": ["records of juveniles", "conduct of schoolchildren", "未成年子女"],
    "health": ["psychiatric history", "vaccination refusal", "就医记录"],
    "whereabouts": ["travel history of the subject", "location tracking", "行踪记录"],
    "ethnicity": ["ethnic origin", "籍贯"],
    "biometrics": ["face-recognition matches", "指纹"],
}

PARAPHRASE_CASES = [(c, t) for c, ts in SENSITIVE_PARAPHRASES.items() for t in ts]


@pytest.mark.parametrize("purpose", VAGUE_PURPOSES)
def test_vague_purpose_paraphrase_is_caught(purpose: str) -> None:
    assert VOCAB.vague_purpose_term(purpose) is not None, purpose


@pytest.mark.parametrize("purpose", SPECIFIC_PURPOSES)
def test_specific_purpose_passes(purpose: str) -> None:
    assert VOCAB.vague_purpose_term(purpose) is None, purpose


def test_shipped_purposes_are_specific() -> None:
    for name in ("city", "company"):
        cat = load_catalog(name)
        for p in {r.purpose for r in cat.rules} | set(cat.scheme.purposes):
            assert p in SPECIFIC_PURPOSES, f"add {p!r} to SPECIFIC_PURPOSES"


@pytest.mark.parametrize("purpose", ["maintenance of social order", "维护社会稳定"])
def test_lint_flags_a_vague_rule_purpose_and_scheme_purpose(purpose: str) -> None:
    city = load_catalog("city")
    rules = tuple(
        dataclasses.replace(r, purpose=purpose) if r.id == "tax.arrears" else r for r in city.rules
    )
    scheme = dataclasses.replace(city.scheme, purposes=(*city.scheme.purposes, purpose))
    report = lint(dataclasses.replace(city, rules=rules, scheme=scheme), today=DAY)
    assert [f.subject for f in report.by_check("P1.purpose")] == ["rules.tax.arrears.purpose"]
    assert [f.subject for f in report.by_check("P1.scheme-purposes")] == ["scheme.purposes"]


@pytest.mark.parametrize(("category", "text"), PARAPHRASE_CASES)
def test_sensitive_paraphrase_is_caught(category: str, text: str) -> None:
    assert category in {c for c, _ in scan_text(text)}, text


# -- length that counts Chinese fairly --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Unpaid fine", 2),
        ("Traffic ticket confirmed by an administrative penalty decision", 8),
        ("经行政处罚决定书确认的交通违法行为记录", 10),  # 19 characters
        ("逾期未缴纳罚款", 4),
        ("罚款", 1),
        ("Tax 欠税 owed", 3),
    ],
)
def test_explanation_words(text: str, words: int) -> None:
    assert explanation_words(text) == words


@pytest.mark.parametrize(
    ("description", "flagged"),
    [
        ("经行政处罚决定书确认的交通违法记录", False),  # 18 characters: a full explanation
        ("交通违法", True),
        ("Unpaid fine", True),
        ("Traffic ticket confirmed by a penalty decision", False),
    ],
)
def test_explainable_counts_chinese_fairly(description: str, flagged: bool) -> None:
    city = load_catalog("city")
    rules = tuple(
        dataclasses.replace(r, description=description) if r.id == "traffic.violation" else r
        for r in city.rules
    )
    report = lint(dataclasses.replace(city, rules=rules), today=DAY)
    hits = [f for f in report.by_check("SZ29.explainable") if "traffic.violation" in f.subject]
    assert bool(hits) == flagged
