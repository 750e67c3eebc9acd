"""Refusal of rules that score sensitive categories (PIPL Art. 28-32; project policy P11).

A rule is refused when its declared ``data_categories`` name a sensitive category, or when
its id, description or purpose contains a term from the vocabulary below.  The vocabulary
is deliberately broad: a false refusal costs a rename, a missed one scores people on their
religion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psc.catalog import Rule

#: category -> (article, vocabulary terms).  Terms match case-insensitively on word starts.
SENSITIVE: dict[str, tuple[str, tuple[str, ...]]] = {
    "religion": (
        "PIPL Art. 28",
        ("religio", "worship", "church", "mosque", "temple", "faith", "宗教"),
    ),
    "political": (
        "PIPL Art. 28 (specific identity); GB/T 35273",
        ("petition", "protest", "political", "demonstrat", "上访", "信访", "抗议"),
    ),
    "ethnicity": ("PIPL Art. 28 (specific identity)", ("ethnic", "race", "racial", "民族")),
    "health": (
        "PIPL Art. 28 (medical health)",
        ("health", "medical", "illness", "disease", "健康", "疾病"),
    ),
    "biometrics": (
        "PIPL Art. 26, 28",
        ("biometric", "face", "facial", "fingerprint", "iris", "camera", "人脸", "指纹"),
    ),
    "reproduction": (
        "PIPL Art. 28 (specific identity)",
        ("family planning", "birth", "pregnan", "contracept", "计划生育", "生育"),
    ),
    "minors": (
        "PIPL Art. 28, 31 (minors under 14)",
        ("minors", "underage", "child", "juvenile", "未成年"),
    ),
    "whereabouts": (
        "PIPL Art. 28 (whereabouts)",
        ("whereabout", "location", "gps", "行踪", "位置"),
    ),
    "family": ("project policy (family relationships)", ("filial", "family relation", "孝")),
}


@dataclass(frozen=True)
class SensitiveHit:
    """One reason a rule is refused."""

    rule_id: str
    category: str
    article: str
    evidence: str

    def message(self) -> str:
        return (
            f"rule {self.rule_id!r} scores the sensitive category {self.category!r} "
            f"({self.evidence}); refused under {self.article}. Remove the rule: psc never "
            "scores sensitive personal information."
        )


def _term_pattern(term: str) -> re.Pattern[str]:
    if re.search(r"[\u4e00-\u9fff]", term):
        return re.compile(re.escape(term))
    return re.compile(r"\b" + re.escape(term).replace(r"\ ", r"[\s_.-]+"), re.IGNORECASE)


_PATTERNS = {cat: [(t, _term_pattern(t)) for t in terms] for cat, (_, terms) in SENSITIVE.items()}


def find_sensitive(rules: Iterable[Rule]) -> list[SensitiveHit]:
    """Every sensitive hit in ``rules`` (declared category or vocabulary match)."""
    hits: list[SensitiveHit] = []
    for rule in rules:
        for cat in rule.data_categories:
            if cat in SENSITIVE:
                hits.append(
                    SensitiveHit(rule.id, cat, SENSITIVE[cat][0], f"declared category {cat!r}")
                )
        text = " ".join((rule.id.replace(".", " "), rule.description, rule.purpose))
        for cat, pats in _PATTERNS.items():
            for term, pat in pats:
                if pat.search(text):
                    hits.append(
                        SensitiveHit(rule.id, cat, SENSITIVE[cat][0], f"text matches {term!r}")
                    )
                    break
    return hits
