"""The persistent privacy-budget ledger (SQLite), per key and per release.

A *key* is whatever a budget protects: a subject (``"subject:<id>"``) for grade
reveals, or a release family (``"stats:district-mean:2026-05"``) for statistics.  Each
key has one budget (a :class:`~psc.dp.accounting.Loss`); each *release* against it is
recorded once under its ``release_id`` with its cost.  The total of a key's costs is
their composition (:func:`psc.dp.accounting.compose`) in the budget's measure.

Rules:

* A spend that would take the total past the budget raises
  :class:`~psc.exceptions.BudgetExhausted` and writes nothing.
* A repeated ``release_id`` with the same cost is idempotent: it is not charged again
  and the first record (with its stored ``result``) is returned.  That is how "repeated
  queries in the same period return the same answer without spending budget again":
  the caller derives the release id from (subject, period, purpose...) and stores the
  released answer in ``result``.  The same release id with a different cost is a
  caller error (``ValueError``), never a silent second charge.
* Like the transparency log, the ledger never commits.  It runs its statements on the
  caller's connection and leaves ``commit``/``rollback`` to the caller, so "spend, then
  decrypt" is one transaction: if decryption fails, the caller rolls back and the spend
  disappears with it.  Two writers racing on one key should open their transactions
  with ``BEGIN IMMEDIATE`` so the check-then-insert is serialised.

Auditors read both tables directly; amounts are canonical JSON (:meth:`Loss.to_json`)
with exact fractions written as ``"p/q"``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from psc.dp.accounting import Loss, compose, loss_from_json
from psc.exceptions import BudgetExhausted, PolicyViolation

__all__ = ["BudgetLedger", "Spend"]

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS dp_budgets (
        key     TEXT PRIMARY KEY,   -- what the budget protects (subject, release family)
        budget  TEXT NOT NULL       -- canonical JSON of the budget Loss
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS dp_spends (
        key         TEXT NOT NULL REFERENCES dp_budgets(key),
        release_id  TEXT NOT NULL,  -- caller-chosen id of one release (idempotency key)
        seq         INTEGER NOT NULL, -- 1, 2, ... per key, in spend order
        cost        TEXT NOT NULL,  -- canonical JSON of the release's Loss
        result      TEXT,           -- optional stored answer, returned on repeats
        PRIMARY KEY (key, release_id)
    )
    """,
)


@dataclass(frozen=True)
class Spend:
    """One recorded release.  ``fresh`` is False when this call found an earlier record."""

    key: str
    release_id: str
    seq: int
    cost: Loss
    result: str | None
    fresh: bool


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def _loss(name: str, value: object) -> Loss:
    if not isinstance(value, Loss):
        raise ValueError(
            f"{name} must be a psc.dp.accounting Loss (PureDP, ZCDP, ...), got {value!r}"
        )
    return value


class BudgetLedger:
    """Budgets and spends in the caller's SQLite database.  Never commits.

    ``default_budget``: the budget a key gets on its first spend when none was set with
    :meth:`set_budget` (convenient for per-subject budgets); ``None`` makes a spend on
    an unknown key a :class:`~psc.exceptions.PolicyViolation`.
    """

    def __init__(self, conn: sqlite3.Connection, *, default_budget: Loss | None = None) -> None:
        if not isinstance(conn, sqlite3.Connection):
            raise ValueError(f"conn must be a sqlite3.Connection, got {type(conn).__name__}")
        self._conn = conn
        self._default = None if default_budget is None else _loss("default_budget", default_budget)
        for statement in _SCHEMA:
            conn.execute(statement)

    # -- budgets ----------------------------------------------------------------------
    def set_budget(self, key: str, budget: Loss) -> None:
        """Set ``key``'s budget.  Setting the same budget again is a no-op.

        Raises:
            ValueError: ``key`` already has a different budget (budgets are not silently
                changed; an operator who must change one does it in SQL, on the record).
        """
        key = _text("key", key)
        text = _loss("budget", budget).to_json()
        existing = self._budget_text(key)
        if existing is None:
            self._conn.execute("INSERT INTO dp_budgets (key, budget) VALUES (?, ?)", (key, text))
        elif existing != text:
            raise ValueError(
                f"key {key!r} already has budget {existing}; refusing to change it to {text}"
            )

    def budget(self, key: str) -> Loss | None:
        """``key``'s budget, or ``None`` if none is set (the default is not materialised)."""
        text = self._budget_text(_text("key", key))
        return None if text is None else loss_from_json(text)

    def _budget_text(self, key: str) -> str | None:
        row = self._conn.execute("SELECT budget FROM dp_budgets WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # -- spends -----------------------------------------------------------------------
    def spends(self, key: str) -> list[Spend]:
        """Every release recorded against ``key``, in spend order."""
        rows = self._conn.execute(
            "SELECT release_id, seq, cost, result FROM dp_spends WHERE key = ? ORDER BY seq",
            (_text("key", key),),
        ).fetchall()
        return [
            Spend(key, str(r[0]), int(r[1]), loss_from_json(str(r[2])), r[3], False) for r in rows
        ]

    def spent(self, key: str) -> Loss:
        """The composed cost of ``key``'s releases, in its budget's measure.

        Raises:
            PolicyViolation: ``key`` has no budget and there is no default.
        """
        budget = self._effective_budget(_text("key", key))
        return compose([s.cost for s in self.spends(key)], like=budget)

    def can_spend(self, key: str, cost: Loss) -> bool:
        """Whether :meth:`spend` of ``cost`` under a *new* release id would succeed.  Writes nothing."""
        budget = self._effective_budget(_text("key", key))
        costs = [s.cost for s in self.spends(key)]
        return compose([*costs, _loss("cost", cost)], like=budget).within(budget)

    def spend(self, key: str, release_id: str, cost: Loss, *, result: str | None = None) -> Spend:
        """Charge ``cost`` to ``key`` for release ``release_id``, or return the earlier record.

        Returns the :class:`Spend` (``fresh=True`` if charged now, ``False`` if the release
        was already recorded with this cost: nothing is charged then, and the stored
        ``result`` is returned, not the one passed in).

        Raises:
            BudgetExhausted: the composed total would exceed the budget.  Nothing written.
            PolicyViolation: ``key`` has no budget and the ledger has no default.
            ValueError: ``release_id`` was recorded with a different cost, or a cost cannot
                be composed in the budget's measure (e.g. an RDP cost against a zCDP budget).
        """
        key = _text("key", key)
        release_id = _text("release_id", release_id)
        cost = _loss("cost", cost)
        if result is not None and not isinstance(result, str):
            raise ValueError(f"result must be a str or None, got {type(result).__name__}")
        row = self._conn.execute(
            "SELECT seq, cost, result FROM dp_spends WHERE key = ? AND release_id = ?",
            (key, release_id),
        ).fetchone()
        if row is not None:
            if str(row[1]) != cost.to_json():
                raise ValueError(
                    f"release {release_id!r} of key {key!r} was already charged {row[1]}; "
                    f"a repeat must cost the same, got {cost.to_json()}"
                )
            return Spend(key, release_id, int(row[0]), cost, row[2], False)

        budget = self._effective_budget(key)
        previous = self.spends(key)
        total = compose([*(s.cost for s in previous), cost], like=budget)
        if not total.within(budget):
            raise BudgetExhausted(
                f"privacy budget of {key!r} exhausted: release {release_id!r} would bring the "
                f"total to {total.to_json()}, over the budget {budget.to_json()}; nothing was recorded"
            )
        if self._budget_text(key) is None:
            self._conn.execute(
                "INSERT INTO dp_budgets (key, budget) VALUES (?, ?)", (key, budget.to_json())
            )
        seq = 1 + max((s.seq for s in previous), default=0)
        self._conn.execute(
            "INSERT INTO dp_spends (key, release_id, seq, cost, result) VALUES (?, ?, ?, ?, ?)",
            (key, release_id, seq, cost.to_json(), result),
        )
        return Spend(key, release_id, seq, cost, result, True)

    def set_result(self, key: str, release_id: str, result: str) -> None:
        """Store the answer of a release charged earlier without one (charged before the
        decryption it pays for; the answer is known only after).

        Raises ``ValueError`` if the release was never charged or already has a
        different result (a release is answered once).
        """
        key = _text("key", key)
        release_id = _text("release_id", release_id)
        if not isinstance(result, str):
            raise ValueError(f"result must be a str, got {type(result).__name__}")
        row = self._conn.execute(
            "SELECT result FROM dp_spends WHERE key = ? AND release_id = ?", (key, release_id)
        ).fetchone()
        if row is None:
            raise ValueError(f"release {release_id!r} of key {key!r} was never charged")
        if row[0] is not None and row[0] != result:
            raise ValueError(f"release {release_id!r} of key {key!r} already has a result")
        self._conn.execute(
            "UPDATE dp_spends SET result = ? WHERE key = ? AND release_id = ?",
            (result, key, release_id),
        )

    def _effective_budget(self, key: str) -> Loss:
        text = self._budget_text(key)
        if text is not None:
            return loss_from_json(text)
        if self._default is not None:
            return self._default
        raise PolicyViolation(
            f"no privacy budget is set for {key!r} and the ledger has no default budget"
        )
