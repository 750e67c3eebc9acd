"""Rights workflows survive SIGKILL at every commit boundary (issue 16, Build 1).

A real child process (``tests/faults/rights_child.py``) runs a workflow on files and kills
itself with SIGKILL at one named commit boundary of the rights office; a second process
restarts from the same files, runs the office's recovery and retries, then reports the
invariants: the request is granted, every granted outcome has its logged effect exactly
once (one order, its adjustments logged once, each linked once), the agency's state
matches the ledger, the subject's verified access explains the revealed grade, and the
log and ledger audits pass.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "faults" / "rights_child.py"

LEDGER_BOUNDARIES = ["intent", "ledger", "agency", "links"]
CASES = (
    [("correction", b) for b in LEDGER_BOUNDARIES]
    + [("deletion", b) for b in LEDGER_BOUNDARIES]
    + [("repair", b) for b in LEDGER_BOUNDARIES]
    + [("access", b) for b in ("reveal", "desk")]
)


def child(where: Path, workflow: str, boundary: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(CHILD), str(where), workflow, boundary],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("workflow", "boundary"), CASES, ids=[f"{w}-{b}" for w, b in CASES])
def test_sigkill_at_every_commit_boundary(tmp_path: Path, workflow: str, boundary: str) -> None:
    crashed = child(tmp_path, workflow, boundary)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    restarted = child(tmp_path, workflow, "recover")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    got = json.loads(restarted.stdout.strip().splitlines()[-1])
    assert got["status"] == "granted"
    assert got["access_verifies"] is True and got["log_and_ledger_audit"] is True
    if workflow == "access":
        assert got["access_links"] == 1
        return
    assert got["adjustments_for_order"] == got["adjustments_total"] >= 1  # once, no strays
    assert got["links_once_each"] is True
    assert got["agency_matches_ledger"] is True
    if workflow == "correction":
        assert got["judgment_served"] and not got["judgment_counts"]
    elif workflow == "deletion":
        assert not got["judgment_served"]  # the record itself is gone from access answers
    else:
        assert not got["utility_counts"] and got["judgment_counts"]
