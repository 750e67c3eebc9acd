"""Markdown to HTML (Python-Markdown) and HTML to PDF (fpdf2), and PDF pages to PNGs (pypdfium2).

All three are maintained, pip-installable and pure Python or shipped as wheels, so a fresh
clone renders the report with no system package (no pango, no browser).  The PDF uses the
DejaVu fonts matplotlib ships, which cover the report's Greek letters and symbols.  These
imports live here only: the consistency check does not need them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

CSS = """
body { font-family: "DejaVu Sans", sans-serif; max-width: 60em; margin: 2em auto; line-height: 1.45; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #f0f0f0; }
code { font-size: 0.9em; background: #f6f6f6; }
img { max-width: 100%; }
h1, h2, h3 { color: #1f3f5b; }
"""


def to_html(markdown_text: str, title: str) -> str:
    """A standalone HTML page of ``markdown_text`` (tables, fenced code, attribute lists)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code", "sane_lists"])
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _pdf_html(html: str, base: Path, width_mm: float, measure: Callable[[str], float]) -> str:
    """The HTML body adapted to fpdf2's subset: absolute image paths sized to the page, plain
    text in table cells, and column widths from ``measure`` (a string's width in mm)."""
    body = html.split("<body>", 1)[-1].split("</body>", 1)[0]

    def img(m: re.Match[str]) -> str:
        src = (base / m.group(1)).resolve()
        return f'<img src="{src}" width="{int(width_mm * 3)}">'

    body = re.sub(r'<img alt="[^"]*" src="([^"]+)"\s*/?>', img, body)

    def cell(m: re.Match[str]) -> str:  # fpdf2 takes plain text in table cells only
        tag = m.group(1)
        if tag.startswith("<td"):  # fpdf2 reads align=, not CSS, and justifies by default
            side = "right" if "text-align: right" in tag else "left"
            tag = f'<td align="{side}">'
        return tag + re.sub(r"<[^>]+>", "", m.group(2)) + m.group(3)

    body = re.sub(r"(<t[dh](?:\s[^>]*)?>)(.*?)(</t[dh]>)", cell, body, flags=re.S)
    return re.sub(
        r"<table>.*?</table>",
        lambda m: _column_widths(m.group(0), width_mm, measure),
        body,
        flags=re.S,
    )


def _column_widths(table: str, width_mm: float, measure: Callable[[str], float]) -> str:
    """Width of each column in proportion to the widest of its data cells and of its header's
    words (fpdf2 splits evenly otherwise; data cells wrap badly, headers wrap at spaces)."""
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, flags=re.S) for r in rows]
    ncol = max((len(c) for c in cells), default=0)
    if ncol == 0:
        return table

    def need(i: int) -> float:
        data = max((measure(unescape(c[i])) for c in cells[1:] if i < len(c)), default=0.0)
        head = re.split(r"[\s/]+", cells[0][i]) if i < len(cells[0]) else []
        words = max((1.25 * measure(unescape(w)) for w in head), default=0.0)  # bold
        return min(max(data, words, 5.0) + 4.5, 0.45 * width_mm)

    weights = [need(i) for i in range(ncol)]
    shares = [max(1, round(100 * w / sum(weights))) for w in weights]
    header = iter(shares)
    return re.sub(
        r"<th(?:\s[^>]*)?>", lambda _: f'<th width="{next(header, 1)}%">', table, count=ncol
    )


def to_pdf(html: str, base: Path, out: Path, title: str) -> None:
    """Render ``html`` (from :func:`to_html`, images relative to ``base``) to ``out``."""
    import matplotlib
    from fpdf import FPDF, FontFace, TextStyle

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_creation_date(datetime(2000, 1, 1, tzinfo=UTC))  # a fixed date: same inputs, same bytes
    pdf.set_title(title)
    pdf.set_author("psc")
    for family, stem in (("DejaVu", "DejaVuSans"), ("DejaVuMono", "DejaVuSansMono")):
        for style, suffix in (("", ""), ("B", "-Bold"), ("I", "-Oblique"), ("BI", "-BoldOblique")):
            pdf.add_font(family, style, ttf / f"{stem}{suffix}.ttf")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("DejaVu", size=9)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    heading = "#1f3f5b"
    styles = {
        "code": FontFace(family="DejaVuMono"),
        "pre": TextStyle(font_family="DejaVuMono", t_margin=2),
        "h1": TextStyle(color=heading, font_size_pt=18, t_margin=4, b_margin=2),
        "h2": TextStyle(color=heading, font_size_pt=14, t_margin=5, b_margin=1),
        "h3": TextStyle(color=heading, font_size_pt=11, t_margin=4, b_margin=1),
        "p": TextStyle(t_margin=2),
    }
    body = _pdf_html(html, base, width, pdf.get_string_width)
    # one write_html call per table and per run of text between tables: fpdf2 keeps some text
    # style state across a long document (a table once came out bold), a fresh call does not
    for part in re.split(r"(<table>.*?</table>)", body, flags=re.S):
        if part.strip():
            pdf.set_font("DejaVu", "", 9)
            pdf.write_html(
                part, font_family="DejaVu", table_line_separators=True, tag_styles=styles
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(out))


def pages_to_png(pdf_path: Path, out_dir: Path, scale: float = 1.2) -> list[Path]:
    """Each page of ``pdf_path`` as ``out_dir/page-NN.png`` (to look at what a reader sees)."""
    import pypdfium2 as pdfium

    out_dir.mkdir(parents=True, exist_ok=True)
    doc = pdfium.PdfDocument(str(pdf_path))
    paths = []
    for i in range(len(doc)):
        p = out_dir / f"page-{i + 1:02d}.png"
        doc[i].render(scale=scale).to_pil().save(p)
        paths.append(p)
    doc.close()
    return paths
