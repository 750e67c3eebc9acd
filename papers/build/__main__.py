"""``python -m papers.build [--check] [--no-pdf] [--pages DIR]``: see :mod:`papers.build`.

Exit codes: 0 built (or consistent with ``--check``); 1 ``--check`` found the built report
inconsistent (each finding on stderr, with what to do); 2 bad arguments, a missing results
file or a template field that cannot be filled.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from papers import build_report
from papers.build import BUILT, FieldError, Sources, build, check, write


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m papers.build",
        description="Build the technical report (papers/psc.md) from benchmarks/results/*.json: "
        "papers/psc.built.md, papers/psc.html, papers/psc.pdf, papers/figures/*.png, and the "
        "benchmark appendix papers/report.md.",
        allow_abbrev=False,
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the built report is inconsistent",
    )
    p.add_argument(
        "--no-pdf", action="store_true", help="skip the PDF (markdown, HTML and figures only)"
    )
    p.add_argument(
        "--pages", type=Path, help="also write each PDF page as a PNG into this directory"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    sources = Sources()
    try:
        if args.check:
            built = BUILT.read_text("utf-8") if BUILT.exists() else ""
            errors = check(built, sources)
            if build_report.main(["--check"]) != 0:
                errors.append("papers/report.md is stale: run make paper")
            for e in errors:
                print(f"papers.build: {e}", file=sys.stderr)
            if errors:
                print(
                    f"papers.build: {len(errors)} finding(s); rebuild with make paper after fixing the template or results",
                    file=sys.stderr,
                )
                return 1
            print(
                f"{BUILT.relative_to(BUILT.parents[1])} is consistent with the results, the README and the tests"
            )
            return 0
        build(sources)  # fail on a bad field before writing anything
        paths = write(pdf=not args.no_pdf, sources=sources)
        build_report.main([])
        if args.pages and not args.no_pdf:
            from papers.build import PDF
            from papers.build.render import pages_to_png

            paths += pages_to_png(PDF, args.pages)
    except FieldError as exc:
        print(f"papers.build: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
