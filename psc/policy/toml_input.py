"""Strict reading of the TOML files psc takes from people: catalogs, deployments, vocabularies.

Two things every loader needs and must do the same way:

* :func:`decode_toml_bytes`: TOML is UTF-8 (TOML 1.0).  UTF-8 with or without a byte-order
  mark is accepted (the mark is dropped).  Anything else is refused with a message naming
  the encoding the bytes most likely are (UTF-16, GBK/GB18030, Big5, Shift-JIS or an
  8-bit code page) and the command that converts the file, e.g.
  ``iconv -f GBK -t UTF-8 in.toml > in-utf8.toml``.  Nothing is guessed into the data: a
  file that is not UTF-8 is never decoded with another codec and used.
* :func:`unknown_keys`: one problem per key a table does not know, with its location and
  the nearest known key (``deployment.minimum_age: unknown key; did you mean 'min_age'?``),
  so that a typo is refused instead of silently replaced by a default.

Both return or raise plain strings and ``ValueError``; each loader wraps them in its own
error type (:class:`~psc.exceptions.CatalogError`, :class:`~psc.exceptions.DeploymentError`).
Nothing here reads a file: callers pass bytes, so the seam is testable without a disk.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_UTF8_BOM = b"\xef\xbb\xbf"
#: file signatures of binaries a user may pass by mistake (checked before the UTF-16 guess)
_BINARY_MAGIC = (
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
    (b"\x1f\x8b", "gzip-compressed"),
)
_UTF16_BOMS = ((b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE"))
_UTF32_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"))

#: (codec, name shown, name for iconv) of the double-byte encodings a CJK file is likely in
_CJK_CODECS = (
    ("gb18030", "GBK/GB18030 (simplified Chinese)", "GB18030"),
    ("big5", "Big5 (traditional Chinese)", "BIG5"),
    ("shift_jis", "Shift-JIS (Japanese)", "SHIFT-JIS"),
)


class EncodingRefused(ValueError):
    """Bytes that are not UTF-8 (with or without BOM).  The message names the likely
    encoding and how to convert; ``encoding`` is that name for iconv (or ``None``)."""

    def __init__(self, message: str, encoding: str | None) -> None:
        self.encoding = encoding
        super().__init__(message)


def _paired_high_bytes(data: bytes) -> float:
    """Share of bytes >= 0x80 that sit next to another such byte.

    Double-byte encodings (GBK, Big5, Shift-JIS) write each CJK character as two high
    bytes; 8-bit code pages write an accented letter as one high byte between ASCII
    letters.  This tells the two families apart; it does not tell GBK from Big5.
    """
    high = [i for i, b in enumerate(data) if b >= 0x80]
    if not high:
        return 0.0
    marks = set(high)
    paired = sum(1 for i in high if i - 1 in marks or i + 1 in marks)
    return paired / len(high)


def _convert_hint(encoding: str, name: str) -> str:
    stem = name[:-5] if name.endswith(".toml") else name
    return f"convert it to UTF-8, e.g. `iconv -f {encoding} -t UTF-8 {name} > {stem}-utf8.toml`"


def decode_toml_bytes(data: bytes, *, name: str = "file.toml") -> str:
    """Decode TOML file bytes: UTF-8, with or without a BOM; refuse anything else.

    ``name`` is the file name used in the conversion hint.  Raises
    :class:`EncodingRefused` naming the likely encoding and the ``iconv`` command; a
    file with NUL bytes (binary, or UTF-16 without a mark) is refused the same way.
    """
    for bom, enc in _UTF32_BOMS:
        if data.startswith(bom):
            raise EncodingRefused(
                f"the file is {enc} (byte-order mark), not UTF-8; {_convert_hint(enc, name)}", enc
            )
    for bom, enc in _UTF16_BOMS:
        if data.startswith(bom):
            raise EncodingRefused(
                f"the file is {enc} (byte-order mark), not UTF-8; {_convert_hint(enc, name)}", enc
            )
    for magic, kind in _BINARY_MAGIC:
        if data.startswith(magic):
            raise EncodingRefused(
                f"the file is {kind}, not a UTF-8 TOML text; check that you passed the right file",
                None,
            )
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if b"\x00" in data:
        zeros = data.count(b"\x00")
        if zeros * 3 >= len(data) and len(data) >= 2:
            enc = "UTF-16LE" if data[1:2] == b"\x00" else "UTF-16BE"
            raise EncodingRefused(
                f"the file looks like {enc} without a byte-order mark, not UTF-8; "
                f"{_convert_hint(enc, name)}",
                enc,
            )
        first = data.index(b"\x00")
        raise EncodingRefused(
            f"the file contains NUL bytes (offset {first}): it is binary, not a "
            "UTF-8 TOML text; check that you passed the right file",
            None,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        if _paired_high_bytes(data) >= 0.5:
            fits = []
            for codec, shown, iconv in _CJK_CODECS:
                try:
                    data.decode(codec)
                except UnicodeDecodeError:
                    continue
                fits.append((shown, iconv))
            if fits:
                shown = " or ".join(s for s, _ in fits)
                raise EncodingRefused(
                    f"the file is not UTF-8 ({where}); it looks like {shown}; "
                    f"{_convert_hint(fits[0][1], name)} (with -f {fits[0][1]} replaced by the "
                    "encoding it was saved in, if you know it)",
                    fits[0][1],
                ) from None
        raise EncodingRefused(
            f"the file is not UTF-8 ({where}); it looks like an 8-bit code page such as "
            f"Windows-1252 or Latin-1; {_convert_hint('WINDOWS-1252', name)} "
            "(with the encoding it was saved in)",
            "WINDOWS-1252",
        ) from None


def nearest(key: str, known: Iterable[str]) -> str | None:
    """The known key closest to ``key`` (difflib ratio >= 0.6), or ``None``."""
    folded = {k.casefold().replace("-", "_"): k for k in known}
    probe = key.casefold().replace("-", "_").replace(" ", "_")
    if probe in folded:
        return folded[probe]
    hits = difflib.get_close_matches(probe, list(folded), n=1, cutoff=0.6)
    return folded[hits[0]] if hits else None


def unknown_keys(
    table: Mapping[str, Any], known: Iterable[str], where: str, *, what: str = "key"
) -> list[str]:
    """One ``"where.key: unknown key; did you mean 'x'? ..."`` line per unknown key.

    ``where`` is the table's location (``deployment``, ``transfers[0]``); an empty
    ``where`` means the top level of the file.  ``what`` names the thing (``table``).
    """
    known_set = sorted(set(known))
    out: list[str] = []
    for key in table:
        if key in known_set:
            continue
        loc = f"{where}.{key}" if where else str(key)
        near = nearest(str(key), known_set)
        hint = f"did you mean {near!r}? " if near is not None else ""
        out.append(f"{loc}: unknown {what}; {hint}(known: {', '.join(known_set)})")
    return out


def read_toml_file(
    path: Path,
    error: Callable[[list[str], str], Exception],
    *,
    builtin: Sequence[str] = (),
) -> str:
    """Read and decode one TOML file, raising ``error(problems, str(path))`` on failure.

    A missing file, a directory, an unreadable file or bytes that are not UTF-8 each give
    one problem saying what to do; a missing file whose name is close to a built-in name
    (``citty``) suggests it.  Never returns partially decoded text.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        hint = ""
        if isinstance(exc, FileNotFoundError) and builtin:
            near = nearest(str(path), builtin)
            hint = (
                f"; did you mean the built-in {near!r}?"
                if near is not None
                else f"; give a TOML file path or a built-in name ({', '.join(builtin)})"
            )
        raise error([f"cannot read file: {why}{hint}"], str(path)) from exc
    except ValueError as exc:  # e.g. an embedded NUL in the path
        raise error([f"cannot read file: {exc}"], str(path)) from exc
    try:
        return decode_toml_bytes(data, name=path.name or "file.toml")
    except EncodingRefused as exc:
        raise error([str(exc)], str(path)) from exc
