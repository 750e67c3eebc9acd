"""Refusal of rules that score sensitive categories (PIPL Art. 26, 28-32; project policy P11).

A rule is refused when anything it says about itself names a sensitive category: its
declared ``data_categories``, and also its id, agency, description, purpose, legal
authority and publication basis.  Detection never relies on the self-declared category
alone; it runs every field through the maintained vocabulary in ``vocabulary.toml``
(English, pinyin roots, simplified and traditional Chinese).

Normalisation (the same for text and for vocabulary terms, so they meet half-way):

1. NFKC, case-folding, curly quotes straightened, possessive ``'s`` dropped, British
   ``-ise/-ised/-ising/-isation`` folded to ``-ize...``;
2. Latin text split into tokens on anything that is not a letter or digit, so ``.``,
   ``_``, ``-`` and spaces are all separators (``letters-and-calls`` == ``letters and calls``);
3. each token reduced by :func:`stem` (plurals, ``-ed``, ``-ing``, final ``-e``, a doubled
   final consonant), so ``petitioned``, ``petitions`` and ``petitioning`` meet ``petition``;
4. ``roots`` are also searched in the text with every separator removed (run-together ids),
   and Chinese terms in the text with whitespace removed.

Term syntax: ``word*`` is a prefix of the unstemmed token, ``=word`` an exact unstemmed
token (so ``=minors`` does not catch the severity word ``minor``), ``a ~ b`` allows up to
four tokens between ``a`` and ``b``.  ``allow`` phrases (``good faith``, ``parent company``)
are blanked before matching.

The vocabulary is deliberately broad: a false refusal costs a rename, a missed one scores
people on their religion.  What this cannot do: understand meaning.  A rule that hides a
sensitive category behind words the vocabulary lacks is not caught; extend the vocabulary
(and its test rewordings) when one is found.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from psc.policy.toml_input import unknown_keys

if TYPE_CHECKING:
    from psc.catalog import Rule

_GAP = 4  # tokens allowed between the two sides of "a ~ b"
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ISE = re.compile(r"(?<=[a-z]{2})is(e|ed|es|ing|ation|ations|er|ers)\b")
_TOKEN = re.compile(r"[0-9a-z\u00c0-\u024f]+")


def stem(token: str) -> str:
    """A small, deterministic suffix stemmer for already case-folded tokens.

    ``stem("petitioned") == stem("petitions") == "petition"``, ``stem("parents") ==
    "parent"``, ``stem("planning") == "plan"``, ``stem("temples") == stem("temple")``.
    Not a linguistic stemmer: it only has to map a term and its obvious inflections to
    the same string.
    """
    w = token
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("ss", "us", "is")):
        pass
    elif w.endswith("s"):
        w = w[:-1]
    if w.endswith("ied") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) >= 6:
        w = _undouble(w[:-3])
    elif w.endswith("ed") and len(w) >= 5:
        w = _undouble(w[:-2])
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    return w


def _undouble(w: str) -> str:
    if len(w) >= 3 and w[-1] == w[-2] and w[-1] not in "aeiouylsz":
        return w[:-1]
    return w


def _fold(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).casefold()
    t = t.replace("\u2019", "'").replace("\u2018", "'")
    t = re.sub(r"'s\b", "", t)
    return _ISE.sub(r"iz\1", t)


@dataclass(frozen=True)
class Normalised:
    """A text in the forms the matcher searches: raw tokens, stems, compact and CJK."""

    tokens: tuple[str, ...]
    stems: tuple[str, ...]
    compact: str  # Latin letters and digits only, separators removed
    cjk: str  # the folded text with whitespace removed

    @functools.cached_property
    def stem_set(self) -> frozenset[str]:
        """The distinct stems, for a quick first-word test."""
        return frozenset(self.stems)

    @functools.cached_property
    def token_set(self) -> frozenset[str]:
        """The distinct raw tokens."""
        return frozenset(self.tokens)

    @functools.cached_property
    def prefix_set(self) -> frozenset[str]:
        """Every prefix of every raw token (tokens are short; this makes prefix terms O(1))."""
        return frozenset(t[:i] for t in self.token_set for i in range(1, len(t) + 1))


def normalise(text: str) -> Normalised:
    """Normalise ``text`` as described in the module docstring."""
    folded = _fold(text)
    tokens = tuple(_TOKEN.findall(folded))
    return Normalised(
        tokens=tokens,
        stems=tuple(stem(t) for t in tokens),
        compact="".join(tokens),
        cjk=re.sub(r"\s+", "", folded),
    )


@dataclass(frozen=True)
class _Word:
    kind: str  # "stem" | "prefix" | "exact"
    value: str
    gap: int  # extra tokens allowed before this word


@dataclass(frozen=True)
class Term:
    """One compiled vocabulary term (see the module docstring for the syntax)."""

    text: str
    words: tuple[_Word, ...]

    @classmethod
    def compile(cls, text: str) -> Term:
        """Compile ``text``; raises ``ValueError`` for a term that normalises to nothing."""
        words: list[_Word] = []
        gap = 0
        for part in text.split():
            if part == "~":
                gap = _GAP
                continue
            if part.startswith("="):
                toks = _TOKEN.findall(_fold(part[1:]))
                words.extend(_Word("exact", t, gap if i == 0 else 0) for i, t in enumerate(toks))
            elif part.endswith("*"):
                toks = _TOKEN.findall(_fold(part[:-1]))
                words.extend(
                    _Word(
                        "prefix" if i == len(toks) - 1 else "stem",
                        t if i == len(toks) - 1 else stem(t),
                        gap if i == 0 else 0,
                    )
                    for i, t in enumerate(toks)
                )
            else:
                toks = _TOKEN.findall(_fold(part))
                words.extend(
                    _Word("stem", stem(t), gap if i == 0 else 0) for i, t in enumerate(toks)
                )
            gap = 0
        if not words:
            raise ValueError(f"vocabulary term {text!r} has no letters or digits")
        return cls(text, tuple(words))

    def _word_at(self, w: _Word, norm: Normalised, i: int) -> bool:
        if w.kind == "stem":
            return norm.stems[i] == w.value
        if w.kind == "prefix":
            return norm.tokens[i].startswith(w.value)
        return norm.tokens[i] == w.value

    def _match_from(self, norm: Normalised, k: int, pos: int) -> bool:
        if k == len(self.words):
            return True
        w = self.words[k]
        for j in range(pos, min(pos + w.gap + 1, len(norm.tokens))):
            if self._word_at(w, norm, j) and self._match_from(norm, k + 1, j + 1):
                return True
        return False

    def search(self, norm: Normalised) -> bool:
        """Whether the term occurs in the normalised text."""
        first = self.words[0]
        index = {"stem": norm.stem_set, "exact": norm.token_set, "prefix": norm.prefix_set}[
            first.kind
        ]
        if first.value not in index:
            return False
        if len(self.words) == 1:
            return True
        return any(
            self._word_at(first, norm, i) and self._match_from(norm, 1, i + 1)
            for i in range(len(norm.tokens))
        )


@dataclass(frozen=True)
class Matcher:
    """Terms, roots, Chinese terms and allow phrases of one vocabulary section."""

    terms: tuple[Term, ...]
    roots: tuple[str, ...]
    zh: tuple[str, ...]
    allow: tuple[Term, ...]

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> Matcher:
        """Build from a vocabulary TOML table; raises ``ValueError`` naming ``where``."""

        def strings(key: str) -> list[str]:
            v = table.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"vocabulary {where}.{key} must be a list of strings")
            return v

        return cls(
            terms=tuple(Term.compile(t) for t in strings("terms")),
            roots=tuple(r.casefold() for r in strings("roots")),
            zh=tuple(_fold(z) for z in strings("zh")),
            allow=tuple(Term.compile(t) for t in strings("allow")),
        )

    def _blank_allowed(self, norm: Normalised) -> Normalised:
        if not any(a.search(norm) for a in self.allow):
            return norm
        tokens = list(norm.tokens)
        stems = list(norm.stems)
        for a in self.allow:
            n = len(a.words)
            for i in range(len(tokens) - n + 1):
                sub = Normalised(tuple(tokens[i : i + n]), tuple(stems[i : i + n]), "", "")
                if a._match_from(sub, 0, 0):
                    for j in range(i, i + n):
                        tokens[j] = stems[j] = ""
        kept = [t for t in tokens if t]
        return Normalised(tuple(tokens), tuple(stems), "".join(kept), norm.cjk)

    def find(self, text: str | Normalised) -> str | None:
        """The first vocabulary entry found in ``text`` (as written in the vocabulary), or None."""
        norm = self._blank_allowed(text if isinstance(text, Normalised) else normalise(text))
        for t in self.terms:
            if t.search(norm):
                return t.text
        for r in self.roots:
            if r in norm.compact:
                return r
        for z in self.zh:
            if z in norm.cjk:
                return z
        return None


@dataclass(frozen=True)
class Category:
    """A sensitive category: its article, the linter check reporting it, and its matcher."""

    name: str
    label: str
    article: str
    lint_id: str
    also: tuple[str, ...]
    matcher: Matcher


_MATCHER_KEYS = frozenset({"article", "terms", "roots", "zh", "allow"})
_CATEGORY_KEYS = _MATCHER_KEYS | {"label", "lint_id", "also"}
_VOCAB_TABLES = frozenset({"categories", "unrelated_conduct", "unrelated_use", "vague_purpose"})


@dataclass(frozen=True)
class Vocabulary:
    """The whole maintained vocabulary (``psc/policy/vocabulary.toml``)."""

    categories: Mapping[str, Category]
    unrelated_conduct: Matcher
    unrelated_conduct_article: str
    unrelated_use: Matcher
    unrelated_use_article: str
    vague_purposes: frozenset[str]
    vague_purpose: Matcher = Matcher((), (), (), ())

    def vague_purpose_term(self, purpose: str) -> str | None:
        """Why ``purpose`` is too vague: the exact vague purpose or the vague phrase it contains.

        ``None`` when it is specific.  Exact entries match the whole normalised purpose;
        phrase entries match anywhere, in any inflection and with the gaps their syntax
        allows (``maintenance of social order``, ``社会稳定``).
        """
        norm = normalise_purpose(purpose)
        if norm in self.vague_purposes:
            return norm or "(empty)"
        return self.vague_purpose.find(purpose)

    @classmethod
    def from_toml(cls, text: str) -> Vocabulary:
        """Parse vocabulary TOML; raises ``ValueError`` saying which entry is malformed.

        Unknown keys are refused with the nearest known key, as in every psc TOML file.
        """
        data = tomllib.loads(text)
        problems = unknown_keys(data, _VOCAB_TABLES, "", what="table")
        for name, t in data.get("categories", {}).items():
            problems += unknown_keys(t, _CATEGORY_KEYS, f"categories.{name}")
        for section in ("unrelated_conduct", "unrelated_use"):
            problems += unknown_keys(data.get(section, {}), _MATCHER_KEYS, section)
        problems += unknown_keys(
            data.get("vague_purpose", {}), _MATCHER_KEYS | {"exact"}, "vague_purpose"
        )
        if problems:
            raise ValueError("vocabulary: " + "; ".join(problems))
        cats: dict[str, Category] = {}
        for name, t in data.get("categories", {}).items():
            where = f"categories.{name}"
            cats[name] = Category(
                name=name,
                label=str(t.get("label", name)),
                article=str(t["article"]),
                lint_id=str(t.get("lint_id", "P11.sensitive")),
                also=tuple(t.get("also", [])),
                matcher=Matcher.from_table(t, where),
            )
        uc = data["unrelated_conduct"]
        uu = data["unrelated_use"]
        vp = data["vague_purpose"]
        vague = vp["exact"]
        return cls(
            categories=cats,
            unrelated_conduct=Matcher.from_table(uc, "unrelated_conduct"),
            unrelated_conduct_article=str(uc["article"]),
            unrelated_use=Matcher.from_table(uu, "unrelated_use"),
            unrelated_use_article=str(uu["article"]),
            vague_purposes=frozenset(normalise_purpose(v) for v in vague),
            vague_purpose=Matcher.from_table(vp, "vague_purpose"),
        )

    def category_of(self, declared: str) -> Category | None:
        """The category a declared ``data_categories`` tag names, by name or vocabulary."""
        key = declared.strip().casefold()
        if key in self.categories:
            return self.categories[key]
        norm = normalise(declared)
        for cat in self.categories.values():
            if cat.matcher.find(norm) is not None:
                return cat
        return None


_PURPOSE_TOKEN = re.compile(r"[0-9a-z\u00c0-\u024f]+|[\u3400-\u9fff\uf900-\ufaff]+")


def normalise_purpose(text: str) -> str:
    """Purpose text reduced to lowercase words (and runs of Chinese) separated by single spaces."""
    return " ".join(_PURPOSE_TOKEN.findall(_fold(text)))


@functools.cache
def default_vocabulary() -> Vocabulary:
    """The packaged vocabulary (parsed once)."""
    text = resources.files("psc.policy").joinpath("vocabulary.toml").read_text("utf-8")
    return Vocabulary.from_toml(text)


@dataclass(frozen=True)
class SensitiveHit:
    """One reason a rule is refused: which field matched which vocabulary entry."""

    rule_id: str
    category: str
    article: str
    evidence: str
    field: str = ""
    term: str = ""
    lint_id: str = "P11.sensitive"
    also: tuple[str, ...] = ()

    def message(self) -> str:
        """A sentence naming the rule, the category, the evidence and the article."""
        return (
            f"rule {self.rule_id!r} scores the sensitive category {self.category!r} "
            f"({self.evidence}); refused under {self.article}. Remove the rule: psc never "
            "scores sensitive personal information, whatever the wording."
        )


#: rule fields scanned, in the order evidence is reported
SCANNED_FIELDS: tuple[str, ...] = (
    "data_categories",
    "id",
    "agency",
    "description",
    "purpose",
    "legal_authority",
    "publication_basis",
)


def _field_texts(rule: Rule) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in SCANNED_FIELDS:
        value = getattr(rule, name)
        if value is None:
            continue
        if isinstance(value, tuple | list):
            out.extend((f"{name}[{i}]", v) for i, v in enumerate(value))
        else:
            out.append((name, str(value)))
    return out


def scan_text(text: str, vocabulary: Vocabulary | None = None) -> list[tuple[str, str]]:
    """Every (category, vocabulary entry) found in a free text."""
    vocab = vocabulary or default_vocabulary()
    norm = normalise(text)
    out: list[tuple[str, str]] = []
    for cat in vocab.categories.values():
        term = cat.matcher.find(norm)
        if term is not None:
            out.append((cat.name, term))
    return out


def find_sensitive(
    rules: Iterable[Rule], vocabulary: Vocabulary | None = None
) -> list[SensitiveHit]:
    """Every (rule, sensitive category) pair in ``rules``, with the first evidence found.

    A declared category counts whether it is spelt as a category name (``"health"``) or in
    words the vocabulary knows (``"religious-belief"``); every scanned field counts too.
    """
    vocab = vocabulary or default_vocabulary()
    return [h for rule in rules for h in _hits(rule, vocab)]


def _hits(rule: Rule, vocab: Vocabulary) -> tuple[SensitiveHit, ...]:
    # catalogs are loaded again and again (every test, every CLI call): cache per rule
    if vocab is default_vocabulary():
        try:
            return _default_rule_hits(rule)
        except TypeError:  # an unhashable field (e.g. a list built by hand): no cache
            pass
    return _rule_hits(rule, vocab)


@functools.lru_cache(maxsize=4096)
def _default_rule_hits(rule: Rule) -> tuple[SensitiveHit, ...]:
    return _rule_hits(rule, default_vocabulary())


def _rule_hits(rule: Rule, vocab: Vocabulary) -> tuple[SensitiveHit, ...]:
    hits: list[SensitiveHit] = []
    seen: set[str] = set()
    for field_name, text in _field_texts(rule):
        found: list[tuple[Category, str]] = []
        if field_name.startswith("data_categories"):
            cat = vocab.category_of(text)
            if cat is not None:
                found.append((cat, text))
        for cname, term in scan_text(text, vocab):
            found.append((vocab.categories[cname], term))
        for cat, term in found:
            if cat.name in seen:
                continue
            seen.add(cat.name)
            evidence = (
                f"declared category {text!r}"
                if field_name.startswith("data_categories") and term == text
                else f"{field_name} {_excerpt(text)!r} matches {term!r}"
            )
            hits.append(
                SensitiveHit(
                    rule_id=rule.id,
                    category=cat.name,
                    article=cat.article,
                    evidence=evidence,
                    field=field_name,
                    term=term,
                    lint_id=cat.lint_id,
                    also=cat.also,
                )
            )
    return tuple(hits)


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def category_names(vocabulary: Vocabulary | None = None) -> Sequence[str]:
    """The category names the vocabulary refuses, in file order."""
    return tuple((vocabulary or default_vocabulary()).categories)
