"""``psc rights``: the command line refuses nonsense with the flag to fix (issue 12 item 6)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from psc.cli.main import main


def rights(db: Path | str, *args: str) -> list[str]:
    return ["rights", "--db", str(db), "--today", "2026-11-25", *args]


def test_db_flag_after_the_action(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "r.db")
    assert main(["rights", "--db", db, "open", "access", "--subject", "S-1"]) == 0
    capsys.readouterr()
    assert main(["rights", "list", "--db", db]) == 0
    assert "S-1" in capsys.readouterr().out
    assert main(["rights", "overdue", "--db", db, "--today", "2026-11-25"]) == 0


def test_empty_list_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(rights(tmp_path / "r.db", "list")) == 0
    assert "no rights requests" in capsys.readouterr().out
    assert main(rights(tmp_path / "r.db", "list", "--status", "refused")) == 0
    assert "no refused rights requests" in capsys.readouterr().out


@pytest.mark.parametrize("db", ["", "  "])
def test_empty_db_path_is_refused(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """SQLite would open a throwaway in-memory database for "": nothing would be kept."""
    assert main(["rights", "--db", db, "open", "access", "--subject", "S-1"]) == 2
    assert "--db PATH" in capsys.readouterr().err


@pytest.mark.parametrize("make", ["missing-dir", "not-a-database"])
def test_unopenable_database_names_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str
) -> None:
    if make == "missing-dir":
        db = tmp_path / "no" / "dir" / "r.db"
    else:
        db = tmp_path / "notes.db"
        db.write_text("these are my notes, not a database\n" * 40, "utf-8")
    assert main(rights(db, "list")) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "--db" in err
    if make == "not-a-database":
        assert db.read_text("utf-8").startswith("these are my notes")


def test_access_grant_needs_an_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    assert main(rights(db, "open", "access", "--subject", "S-1")) == 0
    capsys.readouterr()
    assert main(rights(db, "decide", "1", "--grant")) == 1
    assert "--answer" in capsys.readouterr().err
    assert main(rights(db, "decide", "1", "--grant", "--answer", "{}")) == 1
    assert "--answer" in capsys.readouterr().err
    assert main(rights(db, "decide", "1", "--grant", "--answer", "{not json")) == 1
    assert "--answer" in capsys.readouterr().err
    assert sqlite3.connect(db).execute("SELECT status FROM rights_requests").fetchone()[0] == "open"
    assert main(rights(db, "decide", "1", "--grant", "--answer", '{"grade": "A"}')) == 0


def test_correction_needs_a_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    assert main(rights(db, "open", "correction", "--subject", "S-1", "--ref", "E")) == 1
    assert "--rule" in capsys.readouterr().err
    assert (
        main(
            rights(
                db, "open", "correction", "--subject", "S-1", "--ref", "E", "--rule", "no.such-rule"
            )
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "--rule" in err and "no.such-rule" in err


def test_correction_by_the_agency_owning_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    base = ["open", "correction", "--subject", "S-1", "--ref", "E", "--rule", "traffic.violation"]
    assert main(rights(db, *base)) == 0
    capsys.readouterr()
    grant = ["decide", "1", "--grant", "--delta", "5", "--period", "2026-11"]
    assert main(rights(db, *grant, "--agency", "nope")) == 1
    err = capsys.readouterr().err
    assert "--agency" in err and "nope" in err
    assert main(rights(db, *grant, "--agency", "intermediate-court")) == 1
    err = capsys.readouterr().err
    assert "--agency" in err and "transport-bureau" in err
    assert sqlite3.connect(db).execute("SELECT status FROM rights_requests").fetchone()[0] == "open"
    assert main(rights(db, *grant, "--agency", "transport-bureau")) == 0


def test_decision_cannot_predate_its_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "r.db"
    assert main(rights(db, "open", "deletion", "--subject", "S-1", "--ref", "E")) == 0
    capsys.readouterr()
    early = ["rights", "--db", str(db), "--today", "2026-11-01", "decide", "1", "--grant"]
    assert main(early) == 1
    err = capsys.readouterr().err
    assert "--today" in err and "2026-11-25" in err
    assert sqlite3.connect(db).execute("SELECT status FROM rights_requests").fetchone()[0] == "open"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["open", "consent-withdrawal", "--subject", "S-1", "--ref", "T"], "--relying-party"),
        (["open", "consent-withdrawal", "--subject", "S-1", "--relying-party", "b"], "--ref"),
        (["open", "repair", "--subject", "S-1", "--rule", "tax.arrears"], "--ref"),
        (["open", "repair", "--subject", "S-1", "--ref", "E"], "--rule"),
        (["open", "deletion", "--subject", "S-1"], "--ref"),
        (["open", "access", "--subject", "  "], "--subject"),
    ],
)
def test_errors_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    assert main(rights(tmp_path / "r.db", *args)) == 1
    err = capsys.readouterr().err
    assert flag in err
    assert "details[" not in err and "ref =" not in err
