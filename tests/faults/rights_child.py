"""A rights office in its own process, for the SIGKILL fault-injection tests.

``python rights_child.py DIR WORKFLOW BOUNDARY``: rebuild the deployment from the files in
DIR (ledger, desk and key-holder SQLite; agencies re-derive their commitments from the
seed, and ingestion is idempotent, so a restart reproduces them), then

* BOUNDARY a name: open the WORKFLOW's request if none is open and run it, killing this
  process with SIGKILL when the office passes that commit boundary;
* BOUNDARY ``recover``: run the office's startup recovery, retry the request if it is still
  open, and print the invariants as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

from psc.catalog import load_catalog, period_index
from psc.events import Event
from psc.ledger.log_verify import verify_log
from psc.policy.clock import SimulatedClock
from psc.protocol.log_audit import audit_ledger
from psc.protocol.signing import digest
from psc.sim.city import agency_instances
from psc.sim.rights_deployment import RightsDeployment, setup_rights
from psc.sim.sources import demo_keypair, seeded_randbytes

START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)
P1 = period_index(START.date())
N = 8
SUBJECT = "resident-0000000"


class Randomness:
    """The deployment's randomness seam, re-seeded per process after the rebuild: a
    restarted process draws fresh nonces, as a real one would (seeded, for repeatability)."""

    def __init__(self) -> None:
        self.source = seeded_randbytes("rights-faults")

    def __call__(self, n: int) -> bytes:
        return self.source(n)


RANDOMNESS = Randomness()


def build(where: Path) -> RightsDeployment:
    catalog = load_catalog("city")
    clock = SimulatedClock(START)
    r = setup_rights(
        catalog,
        agency_instances(catalog),
        N,
        demo_keypair(512, 0),  # INSECURE small key: a test of the workflow, not the crypto
        clock=clock,
        desk_db=sqlite3.connect(where / "desk.sqlite"),
        key_holder_db=sqlite3.connect(where / "key-holder.sqlite"),
        randbytes=RANDOMNESS,
        ledger_path=str(where / "ledger.sqlite"),
    )

    def ev(rule: str, period: int) -> Event:
        day = dt.date(period // 12, period % 12 + 1, 5)
        slot = r.registry.slot_of(SUBJECT)
        return Event(slot, rule, day, digest(f"{rule}{day}".encode()).hex())

    events = [ev("court.judgment-default", P1), ev("utility.arrears", P1 + 1)]
    for p in (P1, P1 + 1):
        for a in r.agencies:
            mine = [
                e
                for e in events
                if e.period == p and catalog.rule(e.rule).agency == a.catalog_agency
            ]
            sealed = a.submit(mine, p)
            logged = r.aggregator.ledger.envelope_for(a.id, p)
            if logged is None:
                a.accept_receipt(r.aggregator.ingest(sealed))
            else:  # a restart: the agency adopts what it submitted before the crash
                a.adopt_logged(p, logged.envelope, logged.receipt)
        clock.advance(days=31)
    clock.advance(seconds=(NOW - clock.now()).total_seconds())
    return r


def ref_of(r: RightsDeployment, rule: str) -> str:
    answer = r.office.verified_access(SUBJECT, first_period=P1, at=period_index(NOW.date()))
    return next(e.ref for e in answer.events if e.event.rule == rule)


def request_id(r: RightsDeployment, workflow: str) -> int | None:
    kind = {"correction": "correction", "deletion": "deletion", "repair": "repair"}.get(
        workflow, "access"
    )
    found = [q.id for q in r.office.desk.requests() if q.kind == kind]
    return found[0] if found else None


def run(r: RightsDeployment, workflow: str) -> None:
    office = r.office
    rid = request_id(r, workflow)
    if rid is None:
        if workflow == "access":
            rid = office.open_access(SUBJECT).id
        elif workflow == "repair":
            rid = office.open_repair(SUBJECT, "utility.arrears", ref_of(r, "utility.arrears")).id
        else:
            ref = ref_of(r, "court.judgment-default")
            rid = office.open_correction(SUBJECT, ref, kind=workflow).id
    if office.desk.get(rid).status != "open":
        return
    if workflow == "access":
        office.answer_access(rid, first_period=P1)
    elif workflow == "repair":
        office.decide_repair(rid, performance_proven=True)
    else:
        office.grant_correction(rid)


def invariants(r: RightsDeployment, workflow: str) -> dict[str, object]:
    office, agg = r.office, r.aggregator
    rid = request_id(r, workflow)
    assert rid is not None
    req = office.desk.get(rid)
    links = office.links(rid)
    conn = agg.ledger.connection
    out: dict[str, object] = {"status": req.status}
    if workflow == "access":
        out["access_links"] = sum(1 for k in links if k.action == "access-verified")
    else:
        intent = office.desk.intent(rid)
        assert intent is not None
        mine = agg.adjustments_for_order(digest(intent[1]))
        out["adjustments_for_order"] = len(mine)
        out["adjustments_total"] = agg.adjustment_count()
        logged = [k.adjustment_hash for k in links if k.action == "adjustment-logged"]
        out["links_once_each"] = sorted(logged) == sorted(a.adjustment_hash for a in mine)
        agency = office.agencies[intent[0]]
        ledger_leaves = {
            (bytes(o), int(i))
            for o, i, h in conn.execute(
                "SELECT original, leaf, adjustment_hash FROM adjustment_leaves"
            )
        }
        out["agency_matches_ledger"] = agency._cancelled == ledger_leaves
    answer = office.verified_access(SUBJECT, first_period=P1, at=period_index(NOW.date()))
    out["access_verifies"] = answer.grade == answer.revealed_grade
    out["judgment_served"] = any(e.event.rule == "court.judgment-default" for e in answer.events)
    out["judgment_counts"] = any(
        e.event.rule == "court.judgment-default" and e.counts_at(answer.at) for e in answer.events
    )
    out["utility_counts"] = any(
        e.event.rule == "utility.arrears" and e.counts_at(answer.at) for e in answer.events
    )
    verify_log(conn, r.deployment.key_holder.heads.public_key)
    audit_ledger(conn, backend=r.deployment.params.backend())
    out["log_and_ledger_audit"] = True
    return out


def main() -> None:
    where, workflow, boundary = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    r = build(where)
    RANDOMNESS.source = seeded_randbytes(f"rights-faults/{workflow}/{boundary}")
    if boundary == "recover":
        r.office.recover()
        run(r, workflow)  # a retry completes whatever the recovery left open
        print(json.dumps(invariants(r, workflow)))
        return

    def kill(name: str) -> None:
        if name == boundary:
            os.kill(os.getpid(), signal.SIGKILL)

    r.office.on_boundary = kill
    run(r, workflow)
    print(json.dumps({"finished_without_crash": True}))


if __name__ == "__main__":
    main()
