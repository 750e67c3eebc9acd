"""Figures, the ``python -m papers.build`` command, and (slow) the HTML and PDF rendering."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from papers.build import BUILT, build, figures, write
from papers.build.__main__ import main
from papers.build.fields import ANCHORS, RESULTS, Sources


def test_every_figure_the_report_asks_for_is_drawn_from_results(tmp_path: Path) -> None:
    asked = build().figures
    assert {name for name, _ in asked} == set(figures.FIGURE_FUNCTIONS)
    s = Sources(RESULTS, ANCHORS)
    for name, caption in asked:
        read = figures.draw(name, s, tmp_path)
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and caption
        assert any(src != "anchors" for src in read), name  # every plot shows measurements
    with pytest.raises(KeyError, match="no figure"):
        figures.draw("nope", s, tmp_path)


def test_figures_are_reproducible(tmp_path: Path) -> None:
    s = Sources(RESULTS, ANCHORS)
    figures.draw("reveal", s, tmp_path / "a")
    figures.draw("reveal", s, tmp_path / "b")
    assert (tmp_path / "a" / "reveal.png").read_bytes() == (
        tmp_path / "b" / "reveal.png"
    ).read_bytes()


def test_help_and_bad_flags_write_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    before = (BUILT.read_bytes(), BUILT.stat().st_mtime_ns)
    assert main(["--help"]) == 0
    assert "Build the technical report" in capsys.readouterr().out
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["--bogus"]) == 2
    assert "unrecognized arguments" in err.getvalue()
    assert (BUILT.read_bytes(), BUILT.stat().st_mtime_ns) == before


def test_check_passes_on_the_committed_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "is consistent" in capsys.readouterr().out


@pytest.mark.slow
def test_html_and_pdf_render_every_table_and_figure(tmp_path: Path) -> None:
    pdfium = pytest.importorskip("pypdfium2")  # the paper extra; make test installs it
    from papers.build.render import pages_to_png

    written = write(tmp_path)
    html = (tmp_path / "psc.html").read_text("utf-8")
    md = (tmp_path / "psc.built.md").read_text("utf-8")
    assert md == BUILT.read_text("utf-8")
    assert html.count("<table>") == md.count("\n|---")  # every table
    asked = build().figures
    for name, _ in asked:
        assert f'src="figures/{name}.png"' in html
    pdf = tmp_path / "psc.pdf"
    assert pdf in written and pdf.read_bytes()[:5] == b"%PDF-"
    doc = pdfium.PdfDocument(str(pdf))
    images = sum(
        1 for page in doc for obj in page.get_objects() if obj.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE
    )
    assert images == len(asked)
    text = "".join(page.get_textpage().get_text_range() for page in doc)
    for heading in (
        "1. The problem",
        "5. PIPL mapping",
        "7. Limitations and open problems",
        "Appendix",
    ):
        assert heading in text
    doc.close()
    pngs = pages_to_png(pdf, tmp_path / "pages", scale=0.5)
    assert len(pngs) >= 10 and all(p.stat().st_size > 1000 for p in pngs)


def test_check_reports_a_tampered_report_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from papers.build import __main__ as cli

    forged = tmp_path / "psc.built.md"
    forged.write_text(
        BUILT.read_text("utf-8").replace("## 5. PIPL mapping", "## 5. Politics", 1), "utf-8"
    )
    monkeypatch.setattr(cli, "BUILT", forged)
    assert cli.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "differs from the template" in err and "finding(s)" in err
