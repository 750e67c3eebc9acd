"""Template fields: where each number of the report comes from, and how it is printed.

A field is written ``{{ EXPR | FORMAT }}`` in ``papers/psc.md``.  ``EXPR`` is one reference,
or an arithmetic expression over references and numeric constants (``+ - * /``, unary minus,
parentheses; references separated from operators by spaces).  A reference is ``SOURCE:PATH``:

* ``SOURCE`` names a results file ``benchmarks/results/SOURCE.json`` (``aggregate-quick``,
  ``reveal-quick``, ...) or ``anchors``, the published numbers in ``papers/anchors.toml``
  (each with its citation);
* ``PATH`` walks the document: ``.key`` (a leading key needs no dot), ``[3]`` or ``[-1]``
  (list index), ``[key=value]`` or ``[key=value,key2=value2]`` (the one record of a list whose
  fields equal those values; values compare as text; ``[?key=value]`` takes the first of
several), ``[len]`` (the length of a list).

``FORMAT`` is a Python format spec (``.2f``, ``,.0f``, ``.3g``) or one of ``auto`` (what the
benchmark tables print), ``int`` (rounded, thousands separated), ``pct`` (times 100, one
decimal, with ``%``), ``pct0`` (no decimal), ``log2`` (``2^-x`` of a base-2 logarithm that is
already stored as an exponent), ``str`` (text as it is) and ``yesno``.  Without ``| FORMAT``
the field prints ``auto``.

Errors: :class:`FieldError` names the field and says what to fix (unknown source, missing
results file, a path that does not resolve, a selector matching zero or several records).
"""

from __future__ import annotations

import ast
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
ANCHORS = ROOT / "papers" / "anchors.toml"

FIELD_RE = re.compile(r"\{\{(.+?)\}\}")
_SOURCE_RE = re.compile(r"^([a-z][a-z0-9-]*):(.+)$")
_STEP_RE = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_-]*)|\[([^\]]+)\]")
_REF_RE = re.compile(r"[a-z][a-z0-9-]*:[^\s()]+")


class FieldError(ValueError):
    """A template field that cannot be filled; the message names it and what to do."""


@dataclass(frozen=True)
class Field:
    """One ``{{ ... }}`` occurrence: its text, expression, format and place in the template."""

    raw: str
    expr: str
    fmt: str
    line: int

    @property
    def sources(self) -> list[str]:
        """The results files (or ``anchors``) this field reads."""
        return [r.split(":", 1)[0] for r in _REF_RE.findall(self.expr)]


def parse_field(raw: str, line: int) -> Field:
    body = raw[2:-2].strip()
    expr, _, fmt = body.partition("|")
    expr, fmt = expr.strip(), (fmt.strip() or "auto")
    if not expr:
        raise FieldError(f"line {line}: empty field {raw!r}: write {{{{ source:path | format }}}}")
    return Field(raw=raw, expr=expr, fmt=fmt, line=line)


class Sources:
    """Loads each results file once; ``Sources(results_dir, anchors_path)``."""

    def __init__(self, results: Path = RESULTS, anchors: Path = ANCHORS) -> None:
        self.results = results
        self.anchors = anchors
        self._cache: dict[str, Any] = {}

    def path_of(self, source: str) -> Path:
        """The file a source name stands for (it may not exist)."""
        if source == "anchors":
            return self.anchors
        return self.results / f"{source}.json"

    def load(self, source: str) -> Any:
        if source not in self._cache:
            path = self.path_of(source)
            if not path.exists():
                raise FieldError(
                    f"the report cites {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}, "
                    "which does not exist: run the benchmark that writes it "
                    "(benchmarks/README.md) or remove the fields that cite it"
                )
            text = path.read_text("utf-8")
            self._cache[source] = (
                tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
            )
        return self._cache[source]

    def exists(self, source: str) -> bool:
        return self.path_of(source).exists()


def resolve_path(doc: Any, path: str, where: str) -> Any:
    """Walk ``path`` (see the module docstring) through ``doc``."""
    cur = doc
    pos = 0
    while pos < len(path):
        m = _STEP_RE.match(path, pos)
        if not m or m.end() == pos:
            raise FieldError(f"{where}: cannot parse the path at {path[pos:]!r}")
        pos = m.end()
        key, sel = m.group(1), m.group(2)
        if key is not None:
            if not isinstance(cur, dict) or key not in cur:
                have = ", ".join(sorted(cur)) if isinstance(cur, dict) else type(cur).__name__
                raise FieldError(f"{where}: no key {key!r} here (have: {have})")
            cur = cur[key]
        elif sel == "len":
            if not isinstance(cur, list | dict):
                raise FieldError(f"{where}: [len] of a {type(cur).__name__}")
            cur = len(cur)
        elif re.fullmatch(r"-?\d+", sel):
            if not isinstance(cur, list) or not -len(cur) <= int(sel) < len(cur):
                raise FieldError(f"{where}: index [{sel}] out of range")
            cur = cur[int(sel)]
        else:
            first = sel.startswith("?")
            conds = [c.split("=", 1) for c in sel.lstrip("?").split(",")]
            if any(len(c) != 2 for c in conds) or not isinstance(cur, list):
                raise FieldError(f"{where}: selector [{sel}] needs a list and key=value pairs")
            hits = [
                r
                for r in cur
                if isinstance(r, dict)
                and all(_text(r.get(k.strip())) == v.strip() for k, v in conds)
            ]
            if first and hits:
                hits = hits[:1]
            if len(hits) != 1:
                raise FieldError(
                    f"{where}: selector [{sel}] matches {len(hits)} records; it must match one"
                )
            cur = hits[0]
    return cur


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def evaluate(field: Field, sources: Sources) -> Any:
    """The value of ``field``'s expression (a number, or text for a lone reference)."""
    where = f"line {field.line}: {field.raw}"
    refs = _REF_RE.findall(field.expr)
    if len(refs) == 1 and refs[0] == field.expr:
        source, path = refs[0].split(":", 1)
        return resolve_path(sources.load(source), path, where)
    names: dict[str, Any] = {}
    code = _REF_RE.sub(lambda m: names.setdefault(m.group(0), f"_v{len(names)}"), field.expr)
    values = {
        var: resolve_path(sources.load(ref.split(":", 1)[0]), ref.split(":", 1)[1], where)
        for ref, var in names.items()
    }
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        raise FieldError(f"{where}: not an arithmetic expression") from None
    return _arith(tree.body, values, where)


def _arith(node: ast.AST, values: dict[str, Any], where: str) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name) and node.id in values:
        v = values[node.id]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise FieldError(f"{where}: arithmetic on {v!r}, which is not a number")
        return v
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arith(node.operand, values, where)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        a, b = _arith(node.left, values, where), _arith(node.right, values, where)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if b == 0:
            raise FieldError(f"{where}: division by zero")
        return a / b
    raise FieldError(f"{where}: only + - * /, parentheses, numbers and references are allowed")


def auto(v: Any) -> str:
    """How the benchmark tables print a value (the appendix uses the same rule)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def format_value(v: Any, fmt: str, where: str = "") -> str:
    """``v`` printed with ``fmt`` (see the module docstring)."""
    if fmt == "auto":
        return auto(v)
    if fmt == "str":
        return str(v)
    if fmt == "yesno":
        return "yes" if v else "no"
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FieldError(f"{where}: format {fmt!r} needs a number, the value is {v!r}")
    if fmt == "int":
        return f"{round(v):,}"
    if fmt in ("pct", "pct0"):
        return f"{100 * v:.{1 if fmt == 'pct' else 0}f}%"
    if fmt == "log2":
        return f"2^{v:.1f}"
    if fmt == "log2abs":
        return f"2^{math.log2(v):.1f}" if v > 0 else "0"
    try:
        return format(v, fmt)
    except ValueError:
        raise FieldError(
            f"{where}: {fmt!r} is not a format: use a Python format spec, auto, int, pct, pct0, log2, log2abs, str or yesno"
        ) from None


def fill(field: Field, sources: Sources) -> str:
    """The text ``field`` renders to."""
    return format_value(evaluate(field, sources), field.fmt, f"line {field.line}: {field.raw}")
