"""The report template: directives, expansion, filling, and the consistency check.

``papers/psc.md`` is the source.  Besides ``{{ fields }}`` (:mod:`papers.build.fields`) it
holds directives, each alone on its line:

* ``<!-- table: NAME -->``: a generated table (:mod:`papers.build.tables`), itself written
  with fields, so its numbers are checked like the prose's;
* ``<!-- figure: NAME | caption -->``: a plot (:mod:`papers.build.figures`) and its caption;
* ``<!-- if: SOURCE:PATH -->`` ... [``<!-- else -->`` ...] ``<!-- endif -->``: the first
  lines are kept only when the path resolves in an existing file (results that may appear
  later, e.g. issue 10's ``threshold-exact`` records; ``[?k=v]`` selectors make "at least one
  record" a condition), the others otherwise; not nested;
* ``<!-- appendix -->``: the benchmark appendix (one section per results file);
* ``<!-- backs: claim-id, ... -->``: the README claims this section backs (kept as is;
  :mod:`papers.build.claims` checks them).

Building is two steps: :func:`expand` turns the template into text whose only variable
parts are fields (it depends on which results exist and how many records they hold);
:func:`fill` replaces every field by its value.  :func:`check` goes the other way: it
expands the template again from the results as they are now, aligns the built report with
it literal by literal, and re-evaluates every field, so a number edited by hand, a stale
build, a results file that changed or went missing, or edited prose, each gives an error
naming the line and the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from papers.build.fields import (
    FIELD_RE,
    Field,
    FieldError,
    Sources,
    parse_field,
    resolve_path,
)
from papers.build.fields import (
    fill as fill_field,
)

_DIRECTIVE_RE = re.compile(r"^<!--\s*(table|figure|if|else|endif|appendix)\s*:?\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Expansion:
    """The template after directives: text with fields, and the figures it asks for."""

    text: str
    figures: list[tuple[str, str]]


def expand(
    template: str,
    sources: Sources,
    tables: dict[str, Callable[[Sources], str]],
    appendix: Callable[[Sources], str],
) -> Expansion:
    """Apply every directive of ``template`` (see the module docstring)."""
    out: list[str] = []
    figures: list[tuple[str, str]] = []
    keep = True
    in_if = False
    for no, line in enumerate(template.splitlines(), 1):
        m = _DIRECTIVE_RE.match(line.strip())
        if not m:
            if keep:
                out.append(line)
            continue
        kind, arg = m.group(1), m.group(2)
        if kind == "if":
            if in_if:
                raise FieldError(f"line {no}: <!-- if --> blocks do not nest")
            in_if, keep = True, _present(arg, sources)
        elif kind == "else":
            if not in_if:
                raise FieldError(f"line {no}: <!-- else --> without <!-- if -->")
            keep = not keep
        elif kind == "endif":
            if not in_if:
                raise FieldError(f"line {no}: <!-- endif --> without <!-- if -->")
            in_if, keep = False, True
        elif not keep:
            continue
        elif kind == "table":
            if arg not in tables:
                raise FieldError(f"line {no}: no table {arg!r} (have: {', '.join(sorted(tables))})")
            out.append(tables[arg](sources).rstrip("\n"))
        elif kind == "figure":
            name, _, caption = (s.strip() for s in arg.partition("|"))
            figures.append((name, caption))
            out.append(f"![Figure {len(figures)}: {caption}](figures/{name}.png)")
            out.append("")
            out.append(f"Figure {len(figures)}: {caption}")
        else:
            out.append(appendix(sources).rstrip("\n"))
    if in_if:
        raise FieldError("<!-- if --> without <!-- endif --> at the end of the template")
    return Expansion("\n".join(out) + "\n", figures)


def _present(ref: str, sources: Sources) -> bool:
    source, _, path = ref.partition(":")
    if not sources.exists(source):
        return False
    try:
        resolve_path(sources.load(source), path, ref)
    except FieldError:
        return False
    return True


def fields_of(text: str) -> list[Field]:
    """Every field of ``text``, in order, with its line number."""
    return [
        parse_field(m.group(0), text.count("\n", 0, m.start()) + 1) for m in FIELD_RE.finditer(text)
    ]


def fill(text: str, sources: Sources) -> str:
    """``text`` with every field replaced by its value."""
    out: list[str] = []
    pos = 0
    for m in FIELD_RE.finditer(text):
        field = parse_field(m.group(0), text.count("\n", 0, m.start()) + 1)
        out += [text[pos : m.start()], fill_field(field, sources)]
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def check(expanded: str, built: str, sources: Sources) -> list[str]:
    """Every way ``built`` differs from filling ``expanded`` now; empty when consistent.

    Literal text must match exactly; each field's text in ``built`` must equal the field's
    value from the results files as they are now.  Errors cite the expanded template's line.
    """
    errors: list[str] = []
    pieces = FIELD_RE.split(expanded)  # literal, field body, literal, ...
    literals, bodies = pieces[::2], pieces[1::2]
    if not built.startswith(literals[0]):
        return [_prose_error(literals[0], built, 0, expanded, 0)]
    pos = len(literals[0])
    offset = len(literals[0])
    for body, lit in zip(bodies, literals[1:], strict=True):
        raw = "{{" + body + "}}"
        line = expanded.count("\n", 0, offset) + 1
        field = parse_field(raw, line)
        end = built.find(lit, pos) if lit else len(built)
        if end < 0 or "\n" in built[pos:end] or end - pos > 200:
            errors.append(_prose_error(lit, built, pos, expanded, offset + len(raw)))
            return errors
        shown = built[pos:end]
        try:
            want = fill_field(field, sources)
        except FieldError as exc:
            errors.append(str(exc))
            want = None
        if want is not None and shown != want:
            src = ", ".join(sorted({sources.path_of(s).name for s in field.sources})) or "constants"
            errors.append(
                f"line {line}: {raw} reads {shown!r} in the built report, but {src} gives {want!r}"
            )
        pos = end + len(lit)
        offset += len(raw) + len(lit)
    if pos != len(built):
        errors.append(
            f"the built report has text after the template's end: {built[pos : pos + 60]!r}"
        )
    return errors


def _prose_error(lit: str, built: str, pos: int, expanded: str, offset: int) -> str:
    line = expanded.count("\n", 0, offset) + 1
    want = lit.strip().splitlines()[0][:60] if lit.strip() else repr(lit)
    return (
        f"line {line}: the built report's text differs from the template near {want!r} "
        f"(built: {built[pos : pos + 60]!r}); edit papers/psc.md, then rebuild with python -m papers.build"
    )
