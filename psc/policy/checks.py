"""The policy checks: ../reference/pipl.md made code, one function per stable check id.

Ids are ``P<n>.<aspect>`` for the PIPL items of ``pipl.md`` and ``<instrument>.<aspect>``
for the other instruments: ``CRI-14`` (Credit Reporting Industry Regulations Art. 14),
``SC49.*`` (State Council General Office Opinions 2020 No. 49), ``SZ29.*``/``SZ82.*``
(Shenzhen SEZ Social Credit Regulations 2022), ``EUAI5.*`` (EU AI Act Art. 5(1)(c), the
contrast).  ``DEP.catalog`` checks the deployment file's own consistency.

The framework is :mod:`psc.policy.check_registry`; the checks live in
:mod:`psc.policy.checks_catalog`, :mod:`psc.policy.checks_deployment` and
:mod:`psc.policy.checks_oversight` (by scope).  This module imports them, in report order,
and is what callers import.

Every check runs against a :class:`LintContext` and reports through a :class:`Sink`:
findings (``error`` / ``warning`` / ``info``, each with the rule or field concerned and
what to change) and *evidence*, one line per fact it examined, so that a passing check is
documented too.  Catalog-scope checks always run; deployment-scope checks run only when a
deployment is given.  The registry :data:`CHECKS` is ordered as the report prints it.
"""

from __future__ import annotations

from psc.policy import checks_catalog, checks_deployment, checks_oversight
from psc.policy.check_registry import (
    CHECKS,
    Check,
    LintContext,
    Sink,
    check_ids,
    run_checks,
    sensitive_hits,
)
from psc.policy.checks_deployment import required_mechanism

__all__ = [
    "CHECKS",
    "Check",
    "LintContext",
    "Sink",
    "check_ids",
    "checks_catalog",
    "checks_deployment",
    "checks_oversight",
    "required_mechanism",
    "run_checks",
    "sensitive_hits",
]
