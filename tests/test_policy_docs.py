"""The normative documents list exactly the registered checks and the deployment tables."""

from __future__ import annotations

import re
from pathlib import Path

from psc.policy.checks import CHECKS
from psc.policy.deployment import _TOP

ROOT = Path(__file__).parent.parent


def test_policy_checks_doc_lists_every_check() -> None:
    doc = (ROOT / "protocols" / "policy-checks.md").read_text("utf-8")
    listed = re.findall(r"^\| `([^`]+)` \| (catalog|deployment) \|", doc, re.M)
    assert listed == [(c.id, c.scope) for c in CHECKS]


def test_deployment_doc_describes_every_table() -> None:
    doc = (ROOT / "protocols" / "deployment.md").read_text("utf-8")
    for table in _TOP:
        assert f"[{table}]" in doc or f"[[{table}]]" in doc, table
