"""Argument types for the ``psc`` command and the benchmark runners.

Each converts one command-line string or raises ``argparse.ArgumentTypeError`` with a
message that says what to write instead; argparse then prints the subcommand's usage and
``argument --flag: <message>`` and exits 2, so the person sees which flag is wrong.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from fractions import Fraction


def iso_date(text: str) -> dt.date:
    """A calendar date written ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-25"
        ) from None


def int_at_least(low: int, *, high: int | None = None) -> Callable[[str], int]:
    """An integer ``>= low`` (and ``<= high`` if given)."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            span = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_fraction(text: str) -> Fraction:
    """A positive rational written as an integer, a decimal or ``p/q`` (``1``, ``0.5``, ``1/2``)."""
    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number; write e.g. 1, 0.5 or 1/2"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value
