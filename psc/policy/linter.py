"""Run every policy check on a catalog (and optionally a deployment): :func:`lint`.

``lint`` never raises on a policy problem: every problem is a finding in the returned
:class:`~psc.policy.findings.LintReport`, whose ``exit_code`` is 0 when there is no
error-level finding and 1 when there is.  Load the catalog with
``load_catalog(path, check_sensitive=False)`` to see the findings of a catalog the loader
would refuse.  The date is an argument: pass ``clock.today()`` (see
:mod:`psc.policy.clock`), never read it inside a check.
"""

from __future__ import annotations

import datetime as dt

from psc.catalog import Catalog
from psc.policy.checks import LintContext, run_checks, sensitive_hits
from psc.policy.deployment import Deployment
from psc.policy.findings import CheckResult, LintReport, Status
from psc.policy.sensitive import Vocabulary, default_vocabulary


def lint(
    catalog: Catalog,
    deployment: Deployment | None = None,
    *,
    today: dt.date,
    vocabulary: Vocabulary | None = None,
) -> LintReport:
    """Run every catalog check, and every deployment check if ``deployment`` is given.

    ``today`` is the date time-dependent checks (audit age, notice and assessment dates)
    are evaluated at.
    """
    vocab = vocabulary or default_vocabulary()
    ctx = LintContext(
        catalog=catalog,
        deployment=deployment,
        today=today,
        vocabulary=vocab,
        sensitive=sensitive_hits(catalog, vocab),
    )
    results: list[CheckResult] = []
    for chk, sink in run_checks(ctx):
        if sink is None:
            results.append(
                CheckResult(
                    chk.id,
                    chk.article,
                    chk.title,
                    chk.scope,
                    "not-run",
                    (),
                    ("no deployment given",),
                )
            )
            continue
        sev = {f.severity for f in sink.findings}
        status: Status = "fail" if "error" in sev else "warn" if "warning" in sev else "pass"
        results.append(
            CheckResult(
                chk.id,
                chk.article,
                chk.title,
                chk.scope,
                status,
                tuple(sink.findings),
                tuple(sink.evidence),
            )
        )
    return LintReport(
        catalog_source=catalog.source,
        catalog_name=catalog.scheme.name,
        catalog_version=catalog.scheme.version,
        catalog_hash=catalog.version_hash,
        deployment_source=deployment.source if deployment is not None else None,
        as_of=today.isoformat(),
        results=tuple(results),
    )
