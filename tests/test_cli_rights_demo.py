"""``psc rights --db PATH demo``: every workflow through the protocol, requests left on the desk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psc.cli.main import main


def test_rights_demo_runs_every_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, out = tmp_path / "r.db", tmp_path / "o" / "demo.json"
    assert main(["rights", "--db", str(db), "demo", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "grades match the oracle: True" in text
    result = json.loads(out.read_text())
    assert result["grades_match_oracle"] is True and result["log_verified"] is True
    assert result["consent"]["valid_token"] in ("A", "B", "C", "D", "E")
    assert result["consent"]["expired_token"].startswith("refused: consent refused (expired)")
    assert result["consent"]["withdrawn_token"].startswith("refused: consent refused (withdrawn)")
    assert result["consent_refusals_logged"] == ["expired", "withdrawn"]
    assert result["repair"] == {"first": "refused", "second": "granted", "adjustments": 2}
    kinds = [(q["kind"], q["status"]) for q in result["requests"]]
    assert kinds == [
        ("consent-withdrawal", "granted"),
        ("access", "granted"),
        ("correction", "granted"),
        ("repair", "refused"),
        ("repair", "granted"),
        ("access", "open"),
    ]
    assert result["overdue_requests"] == [6]
    # the desk file holds the requests: the ordinary CLI lists and reports them
    assert main(["rights", "--db", str(db), "--today", "2026-06-15", "overdue"]) == 1
    assert "1 overdue request(s)" in capsys.readouterr().out
    # a second demo into the same file is refused rather than mixed in
    assert main(["rights", "--db", str(db), "demo"]) == 2
