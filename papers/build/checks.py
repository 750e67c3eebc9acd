"""Checks of the report that are not about one number: README claims, literals, test names.

* :func:`claims_errors`: the README's first section and the report back each other, through
  ``papers/claims.toml`` (see its header), in both directions.
* :func:`literal_errors`: the template's prose holds no number of its own: every digit outside
  a field, a code span, a link target or a comment must be one of the few kinds of label
  listed in :data:`ALLOWED` (section and article numbers, years, issue numbers, names such as
  ``SHA-256`` or ``CKK20``).  A measurement typed into the prose fails here.
* :func:`test_name_errors`: every ``tests/...py::name`` the report cites exists, so a security
  argument cannot point at a test that was renamed or deleted.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from papers.build.fields import FIELD_RE, ROOT

README = ROOT / "README.md"
CLAIMS = ROOT / "papers" / "claims.toml"

_HEADING_RE = re.compile(r"^(#{2,3}) (?:[0-9A-Z]+(?:\.[0-9]+)*\.? )?(.+?)\s*$")
_BACKS_RE = re.compile(r"<!--\s*backs:\s*(.*?)\s*-->")


def readme_first_section(text: str) -> str:
    """The README from its start to its first ``## `` heading."""
    m = re.search(r"^## ", text, flags=re.M)
    return text[: m.start()] if m else text


def readme_units(section: str) -> list[str]:
    """Paragraphs and bullets of ``section`` (the title line dropped), whitespace folded."""
    units: list[str] = []
    for block in re.split(r"\n\s*\n", section):
        block = block.strip()
        if not block or block.startswith("# "):
            continue
        items = re.split(r"\n(?=- )", block)
        units += [" ".join(i.split()) for i in items]
    return units


def sections_of(report: str) -> dict[str, list[str]]:
    """Report sections (level-2 headings, number dropped) -> the claim ids they back."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in report.splitlines():
        m = _HEADING_RE.match(line)
        if m and len(m.group(1)) == 2:
            current = m.group(2)
            out[current] = []
        for b in _BACKS_RE.findall(line):
            if current is None:
                out.setdefault("", []).extend(x.strip() for x in b.split(","))
            else:
                out[current].extend(x.strip() for x in b.split(","))
    return out


def claims_errors(readme: str, report: str, claims: dict[str, dict[str, object]]) -> list[str]:
    """Both directions of README claim <-> report section; empty when they agree."""
    errors: list[str] = []
    first = " ".join(readme_first_section(readme).split())
    for unit in readme_units(readme_first_section(readme)):
        if not any(" ".join(str(c["readme"]).split()) in unit for c in claims.values()):
            errors.append(
                f"README claim not backed by any report section: {unit[:90]!r}: add it to papers/claims.toml with the section that backs it"
            )
    secs = sections_of(report)
    for cid, c in claims.items():
        phrase = " ".join(str(c["readme"]).split())
        if phrase not in first:
            errors.append(
                f"papers/claims.toml [{cid}]: {phrase!r} is no longer in the README's first section"
            )
        names = c.get("sections")
        if not isinstance(names, list) or not names:
            errors.append(f"papers/claims.toml [{cid}]: sections must be a non-empty list")
            continue
        for s in names:
            if s not in secs:
                errors.append(f"papers/claims.toml [{cid}]: the report has no section {s!r}")
            elif cid not in secs[s]:
                errors.append(
                    f"report section {s!r} lacks <!-- backs: {cid} --> for the README claim it is said to back"
                )
    for s, ids in secs.items():
        for cid in ids:
            if cid not in claims:
                errors.append(
                    f"report section {s!r} backs {cid!r}, which papers/claims.toml does not define"
                )
            elif s not in claims[cid].get("sections", []):  # type: ignore[operator]
                errors.append(
                    f"report section {s!r} backs {cid!r}, but papers/claims.toml does not list that section for it"
                )
    return errors


def load_claims(path: Path = CLAIMS) -> dict[str, dict[str, object]]:
    return tomllib.loads(path.read_text("utf-8"))


#: digits the template's prose may hold: labels, not measurements
ALLOWED = [
    r"^#{1,6} [0-9A-Z]+(\.[0-9]+)*\.? ",  # a heading's section number
    r"Art(?:icles?|s?\.)\s?\d+(?:[-–, ]+(?:and )?\d+)*",  # PIPL article numbers
    r"§\s?\d+(?:\.\d+)*",  # spec section references
    r"(?:section|sections|Section)s? \d+(?:\.\d+)*(?:(?:,| and| to) \d+(?:\.\d+)*)*",
    r"[Ii]ssues? \d+(?:(?:,| and| or) \d+)*",  # issue numbers
    r"\b(?:19|20)\d\d\b",  # years
    r"\b[A-Za-z][A-Za-z]*\d+\b",  # CKK20, CKS20, DJ01, AKL21, gmpy2
    r"\b(?:SHA|SHAKE|Ed|RFC|GB/T|No\.)[- ]?\d+(?:[-.]\d+)*",
    r"\bTLS ?1\.3\b",
    r"\bk-1\b",
    r"\b[A-Za-z]+-of-[a-z]\b",
    r"2\^-?\d+",  # powers of two named as security levels (2^-40 target of issue 9)
    r"\b(?:one|zero)\b",
]


def _blank(m: re.Match[str]) -> str:
    return " " + "\n" * m.group(0).count("\n")


def _strip(text: str) -> str:
    """``text`` without fields, code, comments and link targets; line numbers kept."""
    text = re.sub(r"```.*?```", _blank, text, flags=re.S)
    text = FIELD_RE.sub(_blank, text)
    text = re.sub(r"<!--.*?-->", _blank, text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)  # link targets


def literal_errors(template: str) -> list[str]:
    """Digits in the template's prose that are not an allowed label (see :data:`ALLOWED`)."""
    errors: list[str] = []
    for no, line in enumerate(_strip(template).splitlines(), 1):
        rest = line
        for pat in ALLOWED:
            rest = re.sub(pat, " ", rest)
        for m in re.finditer(r"\d[\d,.]*", rest):
            errors.append(
                f"papers/psc.md line {no}: the number {m.group(0)!r} is typed into the prose; "
                "write it as a {{ source:path }} field (results or papers/anchors.toml)"
            )
    return errors


_TEST_RE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
_BARE_RE = re.compile(r"`::(\w+)`")


def test_name_errors(text: str, root: Path = ROOT) -> list[str]:
    """Every ``tests/x.py::name`` (and a following bare ``::name``, which means the same file)
    cited in ``text`` names an existing test function."""
    errors: list[str] = []
    last: str | None = None
    for m in re.finditer(r"(tests/[\w/]+\.py)::(\w+)|`::(\w+)`|(tests/[\w/]+\.py)", text):
        path = m.group(1) or m.group(4)
        name = m.group(2) or m.group(3)
        if path:
            last = path
            if not (root / path).exists():
                errors.append(f"the report cites {path}, which does not exist")
                continue
        if name is None:
            continue
        if last is None:
            errors.append(f"the report cites ::{name} before naming its test file")
            continue
        source = (root / last).read_text("utf-8") if (root / last).exists() else ""
        if not re.search(rf"^\s*(?:async )?def {name}\(", source, flags=re.M):
            errors.append(f"the report cites {last}::{name}, which is not a test in that file")
    return errors
