"""What the combiner keeps and returns: its durable store, a reveal's outcome, a released statistic."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from psc.dp.accounting import Loss
from psc.ledger.durable import open_durable


def open_committee_store(path: str) -> sqlite3.Connection:
    """The combiner's store (budget ledger and signed answers): SQLite, autocommit mode so
    :class:`KeyCommittee` runs explicit ``BEGIN IMMEDIATE`` transactions."""
    return open_durable(path)


@dataclass(frozen=True)
class CommitteeReveal:
    """The combiner's result for one request: grade indices and the signed answer.

    ``answer`` is a sealed :class:`CommitteeGrades`; ``spent`` maps each newly released
    slot to its cost (empty when everything came from earlier releases).
    """

    grades: dict[int, int]
    answer: bytes
    stored: tuple[int, ...]
    spent: dict[int, Loss]
    members: tuple[int, ...]
    excluded: dict[int, str]


@dataclass(frozen=True)
class StatisticRelease:
    """A released DP statistic: one noisy sum per cell, and what it cost."""

    name: str
    period: int
    sums: tuple[int, ...]  # noisy sum of each cell (the release)
    stored: bool  # answered from an earlier release (nothing spent)
    cost: Loss
