"""Build the technical report ``papers/psc.md`` (the template) into ``papers/psc.built.md``,
``papers/psc.html`` and ``papers/psc.pdf``, with figures under ``papers/figures/``:
``python -m papers.build`` (or ``make paper``).  ``--check`` writes nothing and exits 1 when
the built report disagrees with the results files, the README or the tests it cites.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from papers.build import checks, figures, tables, template
from papers.build.fields import ROOT, FieldError, Sources

PAPERS = ROOT / "papers"
TEMPLATE = PAPERS / "psc.md"
BUILT = PAPERS / "psc.built.md"
HTML = PAPERS / "psc.html"
PDF = PAPERS / "psc.pdf"
TITLE = "psc: privacy-preserving scoring under active adversaries (technical report)"

__all__ = ["BUILT", "HTML", "PDF", "TEMPLATE", "Build", "FieldError", "Sources", "build", "check"]


@dataclass(frozen=True)
class Build:
    expanded: str
    markdown: str
    figures: list[tuple[str, str]]


def build(sources: Sources | None = None, template_text: str | None = None) -> Build:
    """The expanded template and the built markdown (nothing written)."""
    sources = sources or Sources()
    text = TEMPLATE.read_text("utf-8") if template_text is None else template_text
    exp = template.expand(text, sources, tables.TABLES, tables.appendix)
    return Build(exp.text, template.fill(exp.text, sources), exp.figures)


def check(
    built: str,
    sources: Sources | None = None,
    template_text: str | None = None,
    readme: str | None = None,
) -> list[str]:
    """Every inconsistency of ``built`` with the template, results, README and tests."""
    sources = sources or Sources()
    text = TEMPLATE.read_text("utf-8") if template_text is None else template_text
    errors = checks.literal_errors(text)
    try:
        exp = template.expand(text, sources, tables.TABLES, tables.appendix)
    except FieldError as exc:
        return [*errors, str(exc)]
    errors += template.check(exp.text, built, sources)
    errors += checks.claims_errors(
        checks.README.read_text("utf-8") if readme is None else readme, built, checks.load_claims()
    )
    errors += checks.test_name_errors(built)
    for name, _ in exp.figures:
        if name not in figures.FIGURE_FUNCTIONS:
            errors.append(
                f"the report asks for figure {name!r}, which papers/build/figures.py does not draw"
            )
    return errors


def write(
    out_dir: Path = PAPERS, *, pdf: bool = True, sources: Sources | None = None
) -> list[Path]:
    """Build, draw the figures, write markdown, HTML and (unless ``pdf`` is false) PDF."""
    from papers.build import render

    sources = sources or Sources()
    b = build(sources)
    written: list[Path] = []
    for name, _ in b.figures:
        figures.draw(name, sources, out_dir / "figures")
        written.append(out_dir / "figures" / f"{name}.png")
    md = out_dir / BUILT.name
    md.write_text(b.markdown, "utf-8")
    html = render.to_html(b.markdown, TITLE)
    (out_dir / HTML.name).write_text(html, "utf-8")
    written += [md, out_dir / HTML.name]
    if pdf:
        render.to_pdf(html, out_dir, out_dir / PDF.name, TITLE)
        written.append(out_dir / PDF.name)
    return written
