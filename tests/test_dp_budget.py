"""The persistent budget ledger: refusal records nothing, repeats are free, caller owns commits."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from psc.dp.accounting import ZCDP, ApproxDP, PureDP
from psc.dp.budget import BudgetLedger
from psc.dp.mechanisms import DiscreteLaplace, Skellam, ToApproxDP
from psc.exceptions import BudgetExhausted, PolicyViolation

SUBJECT = "subject:000042"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(tmp_path / "store.sqlite")
    yield c
    c.close()


def rows(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT key, release_id, seq, cost, result FROM dp_spends ORDER BY key, seq"
    ).fetchall()


def test_creates_its_own_tables(conn: sqlite3.Connection) -> None:
    BudgetLedger(conn)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"dp_budgets", "dp_spends"} <= names
    BudgetLedger(conn)  # idempotent


def test_spends_add_up_and_exhaustion_is_refused_without_a_trace(conn: sqlite3.Connection) -> None:
    ledger = BudgetLedger(conn)
    ledger.set_budget(SUBJECT, PureDP(1))
    first = ledger.spend(SUBJECT, "2026-05/bank", PureDP(Fraction(1, 2)))
    assert first.fresh and first.seq == 1
    ledger.spend(SUBJECT, "2026-05/landlord", PureDP(Fraction(1, 2)))  # exactly at the budget
    assert ledger.spent(SUBJECT) == PureDP(1)
    before = rows(conn)
    with pytest.raises(
        BudgetExhausted, match=r"budget of 'subject:000042' exhausted.*nothing was recorded"
    ):
        ledger.spend(SUBJECT, "2026-05/employer", PureDP(Fraction(1, 1000)))
    assert rows(conn) == before
    assert ledger.spent(SUBJECT) == PureDP(1)
    assert not ledger.can_spend(SUBJECT, PureDP(Fraction(1, 1000)))
    assert ledger.can_spend(SUBJECT, PureDP(0))


def test_refusal_is_a_policy_violation_and_leaves_other_keys_alone(
    conn: sqlite3.Connection,
) -> None:
    ledger = BudgetLedger(conn, default_budget=PureDP(1))
    ledger.spend("subject:a", "r1", PureDP(1))
    with pytest.raises(PolicyViolation):
        ledger.spend("subject:a", "r2", PureDP(1))
    assert ledger.spend("subject:b", "r1", PureDP(1)).fresh


def test_repeated_release_is_idempotent_and_returns_the_stored_answer(
    conn: sqlite3.Connection,
) -> None:
    ledger = BudgetLedger(conn)
    ledger.set_budget(SUBJECT, PureDP(1))
    cost = DiscreteLaplace(100).map(50)  # epsilon 1/2
    first = ledger.spend(SUBJECT, "2026-05/credit-assessment", cost, result="B")
    again = ledger.spend(SUBJECT, "2026-05/credit-assessment", cost, result="A")
    assert first.fresh and not again.fresh
    assert again.result == "B"  # the first answer, not a new one
    assert again.seq == first.seq
    assert len(rows(conn)) == 1
    assert ledger.spent(SUBJECT) == PureDP(Fraction(1, 2))
    # even when the budget is now exhausted, the repeat is still answered for free
    ledger.spend(SUBJECT, "2026-05/tenancy-screening", cost)
    assert not ledger.spend(SUBJECT, "2026-05/credit-assessment", cost).fresh


def test_repeat_with_a_different_cost_is_refused(conn: sqlite3.Connection) -> None:
    ledger = BudgetLedger(conn, default_budget=PureDP(5))
    ledger.spend(SUBJECT, "r", PureDP(1))
    with pytest.raises(ValueError, match="a repeat must cost the same"):
        ledger.spend(SUBJECT, "r", PureDP(2))
    assert len(rows(conn)) == 1


def test_ledger_never_commits_the_caller_owns_the_transaction(
    conn: sqlite3.Connection, tmp_path: Path
) -> None:
    ledger = BudgetLedger(conn)
    conn.commit()  # the caller commits the schema
    ledger.set_budget(SUBJECT, PureDP(1))
    ledger.spend(SUBJECT, "r1", PureDP(Fraction(1, 2)))
    assert conn.in_transaction
    other = sqlite3.connect(tmp_path / "store.sqlite")
    try:
        assert other.execute("SELECT COUNT(*) FROM dp_spends").fetchone() == (0,)
        # decryption failed: the caller rolls back and the spend is gone
        conn.rollback()
        assert rows(conn) == []
        assert ledger.budget(SUBJECT) is None
        # the happy path: spend, then the caller commits, and others see it
        ledger.set_budget(SUBJECT, PureDP(1))
        ledger.spend(SUBJECT, "r1", PureDP(Fraction(1, 2)))
        conn.commit()
        assert other.execute("SELECT COUNT(*) FROM dp_spends").fetchone() == (1,)
    finally:
        other.close()


def test_budget_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "persist.sqlite"
    c1 = sqlite3.connect(path)
    BudgetLedger(c1).set_budget(SUBJECT, ZCDP(Fraction(1, 2)))
    BudgetLedger(c1).spend(SUBJECT, "r1", ZCDP(Fraction(1, 4)))
    c1.commit()
    c1.close()
    c2 = sqlite3.connect(path)
    try:
        ledger = BudgetLedger(c2)
        assert ledger.budget(SUBJECT) == ZCDP(Fraction(1, 2))
        assert ledger.spent(SUBJECT) == ZCDP(Fraction(1, 4))
        with pytest.raises(BudgetExhausted):
            ledger.spend(SUBJECT, "r2", ZCDP(Fraction(1, 3)))
    finally:
        c2.close()


def test_unknown_key_without_default_is_refused(conn: sqlite3.Connection) -> None:
    ledger = BudgetLedger(conn)
    with pytest.raises(PolicyViolation, match="no privacy budget is set"):
        ledger.spend("subject:unknown", "r", PureDP(1))
    assert rows(conn) == []


def test_default_budget_is_recorded_on_first_spend(conn: sqlite3.Connection) -> None:
    ledger = BudgetLedger(conn, default_budget=ZCDP(1))
    assert ledger.budget(SUBJECT) is None
    ledger.spend(SUBJECT, "r", ZCDP(Fraction(1, 10)))
    assert ledger.budget(SUBJECT) == ZCDP(1)


def test_budgets_are_not_silently_changed(conn: sqlite3.Connection) -> None:
    ledger = BudgetLedger(conn)
    ledger.set_budget(SUBJECT, PureDP(1))
    ledger.set_budget(SUBJECT, PureDP(1))  # same: no-op
    with pytest.raises(ValueError, match="refusing to change it"):
        ledger.set_budget(SUBJECT, PureDP(2))


def test_costs_are_composed_in_the_budgets_measure(conn: sqlite3.Connection) -> None:
    ledger = BudgetLedger(conn)
    ledger.set_budget("z", ZCDP(1))
    ledger.spend("z", "pure", PureDP(1))  # counts as 1/2 in zCDP
    assert ledger.spent("z") == ZCDP(Fraction(1, 2))
    with pytest.raises(ValueError, match="zCDP total cannot include a RenyiDP cost"):
        ledger.spend("z", "skellam", Skellam(100).map(1))
    # an (epsilon, delta) budget takes Skellam releases until the composed epsilon is used
    delta = Fraction(1, 10**6)
    ledger.set_budget("stats:district-mean", ApproxDP(2, delta))
    cost = Skellam(40000).map(50)
    assert ToApproxDP(Skellam(40000), delta).map(50).epsilon < 2
    spent = 0
    with pytest.raises(BudgetExhausted):
        for i in range(100):
            ledger.spend("stats:district-mean", f"2026-{i:02d}", cost)
            spent += 1
    assert 1 <= spent < 100
    total = ledger.spent("stats:district-mean")
    assert isinstance(total, ApproxDP) and total.epsilon <= 2
    assert len(ledger.spends("stats:district-mean")) == spent


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lg: lg.spend("", "r", PureDP(1)), "key must be a non-empty str"),
        (lambda lg: lg.spend("k", "", PureDP(1)), "release_id must be a non-empty str"),
        (lambda lg: lg.spend("k", "r", 1), "cost must be a psc.dp.accounting Loss"),
        (lambda lg: lg.spend("k", "r", PureDP(1), result=3), "result must be a str"),
        (lambda lg: lg.set_budget("k", 1.0), "budget must be a psc.dp.accounting Loss"),
    ],
)
def test_bad_arguments_are_refused(conn: sqlite3.Connection, call: object, message: str) -> None:
    ledger = BudgetLedger(conn, default_budget=PureDP(1))
    with pytest.raises(ValueError, match=message):
        call(ledger)  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"sqlite3\.Connection"):
        BudgetLedger("store.sqlite")  # type: ignore[arg-type]
