"""Fuzzed argument parsing of every ``psc`` command and benchmark runner (issue 12, item 6).

Each example builds a command line from the command's own flags (taken from its parser,
so a new flag is fuzzed without editing this file) with random and hostile values:
negative, zero and huge numbers, fractions with a zero denominator, non-dates, paths that
cannot be written or read, NUL bytes, stray tokens and misspelt flags.  It runs the command
in-process through ``psc.cli.main.main(argv)`` with output captured.

Property: a clear error and an exit code of 0, 1 or 2 (argparse's ``SystemExit`` counts),
never a traceback, never "internal error".  The expensive part of a run that the
arguments would start (the city simulation and protocol run of ``psc demo``, the
benchmark measurements) is replaced by a sentinel that stops the example as "accepted":
what is tested is everything before it.  Derandomized, bounded examples.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from psc.cli.main import build_parser, main
from psc.policy.requests import KINDS

FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: commands whose argument parsing is fuzzed here (``rights demo`` runs the whole protocol
#: and has its own tests; the other rights actions only touch the SQLite file in --db)
COMMANDS = (
    ("catalog",),
    ("lint",),
    ("pia",),
    ("demo",),
    ("log", "verify"),
    ("log", "show"),
    ("rights", "open"),
    ("rights", "list"),
    ("rights", "decide"),
    ("rights", "overdue"),
)


#: flags whose value is a path: drawn from the hostile paths every time
PATH_FLAGS = {"--json", "--out", "--db", "--deployment", "--catalog", "--public-key"}


class Accepted(BaseException):
    """Raised instead of starting the expensive part of a run whose arguments passed."""


def _subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _flags(path: tuple[str, ...]) -> list[tuple[str, bool]]:
    """(flag, takes a value) for every optional flag of the command but --help."""
    out = []
    for a in _subparser(path)._actions:
        for s in a.option_strings:
            if s.startswith("--") and s != "--help":
                out.append((s, a.nargs != 0))
    return out


@contextlib.contextmanager
def _paths() -> Iterator[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        (t / "file").write_text("not toml = = =\n", "utf-8")
        (t / "gbk.toml").write_bytes("名称 = '城市'\n".encode("gb18030"))
        yield [
            str(t / "out"),
            str(t / "file"),
            str(t / "file" / "below"),
            str(t / "gbk.toml"),
            str(t / "missing" / "deep" / "x.json"),
            "-",
            "",
            "city",
            "company",
            "demo",
            str(t),
            "bad\x00path",
        ]


_VALUES = st.one_of(
    st.sampled_from(
        ["1", "2", "3", "5", "40", "512", "2048", "2026-11-25", "1/2", "0.5", "trusted"]
    ),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.sampled_from(["0", "-1", "1/0", "0/0", "1e999", "nan", "2026-13-40", "2026-02-29", "x"]),
    st.text(max_size=10),
)


@st.composite
def command_lines(draw: st.DrawFn, paths: list[str]) -> list[str]:
    path = draw(st.sampled_from(COMMANDS))
    argv = list(path)
    if path[0] in ("catalog", "lint", "pia"):
        argv.append(
            draw(
                st.one_of(
                    st.sampled_from(["city", "company", "demo"]),
                    st.sampled_from(paths),
                    st.text(max_size=8),
                )
            )
        )
    elif path == ("rights", "open"):
        argv.append(draw(st.one_of(st.sampled_from(KINDS), st.text(max_size=8))))
    elif path == ("rights", "decide"):
        argv.append(draw(_VALUES))
    flags = _flags(path)
    chosen = draw(st.lists(st.sampled_from(flags), max_size=5)) if flags else []
    for flag, takes in chosen:
        argv.append(flag)
        if takes and flag in PATH_FLAGS:
            argv.append(draw(st.sampled_from(paths)))
        elif takes:
            argv.append(draw(st.one_of(st.sampled_from(paths), _VALUES)))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        argv.insert(
            draw(st.integers(min_value=0, max_value=len(argv))),
            draw(st.sampled_from(["--bogus", "-x", "--subject", "extra", "--json=-", "--"])),
        )
    return argv


def _run(fn: Callable[[], int]) -> tuple[int | str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: int | str = fn()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except Accepted:
            code = "accepted"
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def no_expensive_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import psc.sim.city
    import psc.sim.driver

    monkeypatch.chdir(tmp_path)  # relative paths drawn by the fuzzer land here

    def stop(*args: Any, **kwargs: Any) -> Any:
        raise Accepted

    monkeypatch.setattr(psc.sim.city, "simulate_city", stop)
    monkeypatch.setattr(psc.sim.driver, "run", stop)
    monkeypatch.delenv("PSC_TRACEBACK", raising=False)


@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_every_command_line_exits_cleanly(no_expensive_runs: None, data: st.DataObject) -> None:
    with _paths() as paths:
        argv = data.draw(command_lines(paths), label="argv")
        code, output = _run(lambda: main(argv))
    event(f"psc {argv[0]}: exit {code}")
    assert code in (0, 1, 2, "accepted"), (argv, code, output)
    assert "Traceback" not in output and "internal error" not in output, (argv, output)
    if code == 2:
        assert output.strip(), f"exit 2 without a message: {argv}"


# -- benchmark runners -----------------------------------------------------------------


@pytest.fixture
def no_benchmark_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from benchmarks import aggregate, grade, reveal

    monkeypatch.chdir(tmp_path)

    def stop(*args: Any, **kwargs: Any) -> Any:
        raise Accepted

    for mod in (aggregate, grade, reveal):
        monkeypatch.setattr(mod, "run", stop)


def _suite_flags(name: str) -> list[str]:
    import importlib

    mod = importlib.import_module(f"benchmarks.{name}")
    code, output = _run(lambda: mod.main(["--help"]))
    assert code == 0
    return sorted({w.strip("[],") for w in output.split() if w.strip("[],").startswith("--")})


SUITE_FLAGS = {name: _suite_flags(name) for name in ("aggregate", "grade", "reveal")}


@settings(FUZZ, max_examples=80)
@given(data=st.data())
def test_every_benchmark_command_line_exits_cleanly(
    no_benchmark_runs: None, data: st.DataObject
) -> None:
    import importlib

    name = data.draw(st.sampled_from(sorted(SUITE_FLAGS)), label="suite")
    mod = importlib.import_module(f"benchmarks.{name}")
    with _paths() as paths:
        argv: list[str] = []
        for flag in data.draw(st.lists(st.sampled_from(SUITE_FLAGS[name]), max_size=4)):
            argv.append(flag)
            if flag not in ("--quick", "--quiet", "--no-he", "--allow-lint-errors", "--help"):
                argv.append(data.draw(st.one_of(st.sampled_from(paths), _VALUES)))
        code, output = _run(lambda: mod.main(argv))
    event(f"{name}: exit {code}")
    assert code in (0, 1, 2, "accepted"), (name, argv, code, output)
    assert "Traceback" not in output, (name, argv, output)
