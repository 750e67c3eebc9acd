"""Verdicts: the one lint result every section of an impact assessment reads its claims from.

:mod:`psc.policy.pia` never decides on its own whether something is lawful; each claim it
prints asks :class:`Verdicts` for the status of the checks that decide it, so no section can
contradict another or the findings (``tests/test_policy_pia_consistency.py`` checks this).
"""

from __future__ import annotations

from psc.policy.findings import LintReport

#: checks whose findings mean the deployment processes sensitive personal information
PROPORTIONALITY_CHECKS = ("SC49.proportionality", "SC49.cap", "SC49.blacklist")
SENSITIVE_CHECKS = ("P11.sensitive", "CRI-14", "P10.camera", "P11.minors")
_RANK = {"not-run": 0, "pass": 1, "warn": 2, "fail": 3}


class Verdicts:
    """The one lint result every section of an assessment reads its claims from.

    A section never decides on its own whether something is lawful: it asks
    :meth:`status` of the checks that decide it, or :meth:`rule_checks` for a rule, so no
    section can contradict another or the findings.
    """

    def __init__(self, report: LintReport) -> None:
        self.report = report
        self._by_id = {r.check: r for r in report.results}

    def status(self, *check_ids: str) -> str:
        """The worst status of these checks (fail > warn > pass > not-run).

        Raises ``KeyError`` naming an id that is not a check (a typo in a section)."""
        for c in check_ids:
            if c not in self._by_id:
                raise KeyError(f"no check {c!r}")
        return max((self._by_id[c].status for c in check_ids), key=_RANK.__getitem__)

    def rule_findings(self, rule_id: str, *check_ids: str) -> list[str]:
        """``severity check`` of every finding about one rule (of ``check_ids`` if given)."""
        prefix = f"rules.{rule_id}"
        return [
            f"{f.severity} {f.check}"
            for f in self.report.findings
            if (f.subject == prefix or f.subject.startswith(prefix + "."))
            and (not check_ids or f.check in check_ids)
        ]

    def rule_checks(self, rule_id: str) -> str:
        """Sorted distinct check ids with a finding about the rule, or ``none``."""
        ids = sorted({x.split(" ", 1)[1] for x in self.rule_findings(rule_id)})
        return ", ".join(ids) or "none"

    def sensitive_findings(self) -> list[str]:
        """``subject: message`` of every finding that says sensitive data is processed."""
        return [
            f"{f.subject}: {f.message}" for f in self.report.findings if f.check in SENSITIVE_CHECKS
        ]
