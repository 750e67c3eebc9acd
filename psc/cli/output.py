"""Where command output goes: files checked before a long run, ``-`` for standard output.

A command that will write a file at the end of a long run calls :func:`check_writable`
first, so an unwritable ``--json`` or ``--out`` is refused before any work is done, with
exit 2.  ``-`` as a ``--json`` path means standard output (the human-readable lines then
go to standard error, so standard output is JSON only).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

STDOUT = "-"


class OutputError(ValueError):
    """An output path cannot be written; the message names it and says why."""


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: str, *, flag: str, directory: bool = False) -> None:
    """Raise :class:`OutputError` unless ``path`` (a file, or a directory) can be written.

    Nothing is created.  ``-`` is always writable (standard output) for a file.
    """
    if "\x00" in path:
        raise OutputError(f"{flag} {path!r}: a path cannot contain a NUL byte")
    if path == STDOUT and not directory:
        return
    if path == "":
        raise OutputError(f"{flag}: empty path; give a file name (or - for standard output)")
    p = Path(path)
    if p.exists():
        if directory and not p.is_dir():
            raise OutputError(f"{flag} {path}: exists and is not a directory")
        if not directory and p.is_dir():
            raise OutputError(f"{flag} {path}: is a directory; give a file name")
        if not os.access(p, os.W_OK | os.X_OK if directory else os.W_OK):
            raise OutputError(f"{flag} {path}: not writable (permission denied)")
        return
    base = _nearest_existing(p.parent if not directory else p)
    if not base.is_dir():
        raise OutputError(f"{flag} {path}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: cannot create it in {base} (permission denied)")


def write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` (``-``: standard output); returns where it went."""
    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return "standard output"
    p = Path(path)
    if p.parent != Path(""):
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, "utf-8")
    return str(p)
