"""Rendering of an impact assessment: a document of sections, paragraphs, lists and tables.

:class:`PiaReport` holds the document :func:`psc.policy.pia.build_pia` assembles;
:meth:`PiaReport.to_markdown` and :meth:`PiaReport.to_html` render the same content, the
HTML self-contained (inline style, no external assets, no scripts, every text escaped).
Nothing here decides what a section says.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bullet list of plain-text items."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


Block = Paragraph | Bullets | Table


@dataclass(frozen=True)
class Section:
    """A numbered section of the report."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class PiaReport:
    """A rendered-on-demand impact assessment."""

    title: str
    generated: dt.date
    retain_until: dt.date
    catalog_hash: str
    sections: tuple[Section, ...]

    def to_markdown(self) -> str:
        """The report as GitHub-flavoured markdown."""
        out = [f"# {self.title}", ""]
        for i, s in enumerate(self.sections, 1):
            out += [f"## {i}. {s.title}", ""]
            for b in s.blocks:
                if isinstance(b, Paragraph):
                    out += [b.text, ""]
                elif isinstance(b, Bullets):
                    out += [f"- {it}" for it in b.items] + [""]
                else:
                    out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
                    out.append("|" + "---|" * len(b.headers))
                    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
                    out.append("")
        return "\n".join(out).rstrip() + "\n"

    def to_html(self) -> str:
        """The report as one self-contained HTML page (inline CSS, no external assets)."""
        e = html.escape
        out = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="generator" content="psc pia">',
            f"<title>{e(self.title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        for i, s in enumerate(self.sections, 1):
            out.append(f'<section id="s{i}"><h2>{i}. {e(s.title)}</h2>')
            for b in s.blocks:
                if isinstance(b, Paragraph):
                    out.append(f"<p>{e(b.text)}</p>")
                elif isinstance(b, Bullets):
                    out.append("<ul>" + "".join(f"<li>{e(it)}</li>" for it in b.items) + "</ul>")
                else:
                    head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
                    rows = "".join(
                        "<tr>"
                        + "".join(f'<td class="{_cls(c)}">{e(c)}</td>' for c in row)
                        + "</tr>"
                        for row in b.rows
                    )
                    out.append(
                        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
                    )
            out.append("</section>")
        out += ["</body>", "</html>"]
        return "\n".join(out) + "\n"


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;"
    "line-height:1.45;color:#222}table{border-collapse:collapse;margin:1em 0;width:100%}"
    "th,td{border:1px solid #bbb;padding:.3em .5em;vertical-align:top;text-align:left;font-size:.92em}"
    "th{background:#eee}td.pass{color:#1a6b1a;font-weight:bold}td.fail{color:#a00;font-weight:bold}"
    "td.warn{color:#a60;font-weight:bold}h2{border-bottom:1px solid #ccc;margin-top:2em}"
)


def _cls(cell: str) -> str:
    return cell if cell in ("pass", "fail", "warn") else ""


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_pia(pia: PiaReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``pia.md`` and ``pia.html`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "pia.md"
    page = out / "pia.html"
    md.write_text(pia.to_markdown(), "utf-8")
    page.write_text(pia.to_html(), "utf-8")
    return md, page
