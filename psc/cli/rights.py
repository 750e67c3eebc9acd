"""``psc rights --db PATH {open,list,decide,overdue}``: data-subject request workflows.

::

    psc rights --db r.db open access --subject S-17
    psc rights --db r.db open correction --subject S-17 --ref ENV-2026-03/ev-9 --rule traffic.violation
    psc rights --db r.db open repair --subject S-17 --ref EV-12 --rule tax.arrears
    psc rights --db r.db open consent-withdrawal --subject S-17 --ref TOKEN-ID --relying-party bank-1
    psc rights --db r.db list [--status open] [--subject S-17]
    psc rights --db r.db decide 3 --grant --agency transport-bureau --delta 5 --period 2026-03
    psc rights --db r.db decide 4 --grant --event-date 2025-01-10 --performance-proven
    psc rights --db r.db decide 5 --refuse "the record is accurate: see decision 2026-17"
    psc rights --db r.db overdue          # exit 1 when any request is overdue
    psc rights --db r.db demo [--json out.json]   # every workflow end to end, on the ledger

``--deployment FILE`` takes deadlines, holidays and the catalog from a deployment
(default: the built-in city catalog and the default deadlines); ``--today YYYY-MM-DD``
runs as of another day (a simulated clock, for drills and tests).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
from typing import Any

from psc.catalog import Catalog, load_catalog
from psc.exceptions import CatalogError, DeploymentError, PolicyViolation, RightsRequestError
from psc.policy.clock import CST, Clock, SimulatedClock, SystemClock, WorkingCalendar
from psc.policy.deployment import load_deployment
from psc.policy.rights import KINDS, STATUSES, DeadlinePolicy, RightsDesk, RightsRequest


def register(sub: Any) -> None:
    """Add the ``rights`` subcommand and its sub-subcommands."""
    p: argparse.ArgumentParser = sub.add_parser(
        "rights", help="data-subject rights requests: open, list, decide, overdue"
    )
    p.add_argument(
        "--db",
        required=True,
        metavar="PATH",
        help="SQLite database holding the requests (created if missing)",
    )
    p.add_argument(
        "--deployment",
        metavar="FILE",
        help="take deadlines, holidays and catalog from this deployment (or 'demo')",
    )
    p.add_argument(
        "--catalog",
        default="city",
        help="catalog for rule checks when no deployment is given (default: city)",
    )
    p.add_argument(
        "--today",
        metavar="YYYY-MM-DD",
        type=dt.date.fromisoformat,
        help="act as of this day (simulated clock, 09:00 UTC+8)",
    )
    p.add_argument("--by", default="rights-office", help="who decides (recorded)")
    s = p.add_subparsers(dest="rights_command", required=True, metavar="ACTION")

    o = s.add_parser("open", help="open a request and start its deadline")
    o.add_argument("kind", choices=KINDS)
    o.add_argument("--subject", required=True)
    o.add_argument("--ref", help="original event/envelope id, or the consent token id")
    o.add_argument("--rule", help="rule id (record class)")
    o.add_argument("--relying-party", help="for consent-withdrawal")
    o.add_argument("--note", default="", help="the subject's statement")

    ls = s.add_parser("list", help="list requests")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--subject")

    d = s.add_parser("decide", help="grant or refuse a request")
    d.add_argument("id", type=int)
    g = d.add_mutually_exclusive_group(required=True)
    g.add_argument("--grant", action="store_true")
    g.add_argument("--refuse", metavar="REASON")
    d.add_argument("--answer", default="{}", help="access/explanation: the answer as JSON")
    d.add_argument("--agency", help="correction/appeal: agency recording the compensating delta")
    d.add_argument("--delta", type=int, help="correction/appeal: compensating delta")
    d.add_argument("--period", help="correction/appeal: period YYYY-MM of the compensating record")
    d.add_argument(
        "--event-date", type=dt.date.fromisoformat, help="repair: date of the original event"
    )
    d.add_argument(
        "--performance-proven", action="store_true", help="repair: performance is proven"
    )

    s.add_parser("overdue", help="list open requests past their deadline (exit 1 if any)")

    dm = s.add_parser(
        "demo",
        help="run every workflow end to end through the protocol (city catalog, simulated "
        "clock, insecure demo key); the requests land in --db",
    )
    dm.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    dm.add_argument("--seed", type=int, default=0, help="seed of the demo deployment")
    p.set_defaults(func=run)


def _desk(args: argparse.Namespace) -> RightsDesk:
    clock: Clock = (
        SimulatedClock(dt.datetime.combine(args.today, dt.time(9), CST))
        if args.today
        else SystemClock()
    )
    catalog: Catalog
    if args.deployment:
        dep = load_deployment(args.deployment)
        catalog = dep.catalog
        cal = WorkingCalendar.of(dep.rights.holidays, dep.rights.extra_workdays)
        deadlines = DeadlinePolicy.from_config(dep.rights)
    else:
        catalog = load_catalog(args.catalog)
        cal = WorkingCalendar()
        deadlines = DeadlinePolicy()
    conn = sqlite3.connect(args.db)
    return RightsDesk(conn, clock, calendar=cal, deadlines=deadlines, catalog=catalog)


def _line(r: RightsRequest) -> str:
    tail = r.outcome if r.status == "granted" else r.reason if r.status == "refused" else ""
    late = " (late)" if r.late else ""
    return f"{r.id:5d} {r.kind:18s} {r.subject:14s} {r.status:8s}{late} opened {r.opened_at.date().isoformat()} due {r.due.isoformat()}  {tail or ''}"


def run(args: argparse.Namespace) -> int:
    if args.rights_command == "demo":
        return _demo(args)
    try:
        desk = _desk(args)
    except (CatalogError, DeploymentError, sqlite3.Error) as exc:
        print(f"psc rights: cannot open: {exc}", file=sys.stderr)
        return 2
    try:
        return _dispatch(desk, args)
    except (RightsRequestError, PolicyViolation, KeyError, ValueError) as exc:
        print(f"psc rights: {exc}", file=sys.stderr)
        return 1
    finally:
        desk.conn.close()


def _demo(args: argparse.Namespace) -> int:
    from psc.cli.rights_demo import print_summary, run_demo, write_json

    conn = sqlite3.connect(args.db)
    try:
        if conn.execute("SELECT name FROM sqlite_master WHERE name = 'rights_requests'").fetchone():
            print(
                f"psc rights demo: {args.db} already holds requests; use a new file",
                file=sys.stderr,
            )
            return 2
        out = run_demo(load_catalog("city"), conn, seed=args.seed)
    finally:
        conn.close()
    print_summary(out)
    if args.json:
        write_json(out, args.json)
    return 0 if out["grades_match_oracle"] and out["log_verified"] else 1


def _dispatch(desk: RightsDesk, args: argparse.Namespace) -> int:
    cmd = args.rights_command
    if cmd == "open":
        details: dict[str, Any] = {"note": args.note} if args.note else {}
        if args.relying_party:
            details["relying_party"] = args.relying_party
        r = desk.open(args.kind, args.subject, ref=args.ref, rule=args.rule, details=details)
        print(_line(r))
        return 0
    if cmd == "list":
        for r in desk.requests(status=args.status, subject=args.subject):
            print(_line(r))
        return 0
    if cmd == "overdue":
        late = desk.overdue()
        for r in late:
            print(_line(r))
        print(f"{len(late)} overdue request(s) as of {desk.today().isoformat()}")
        return 1 if late else 0
    # decide
    req = desk.get(args.id)
    if args.refuse is not None:
        print(_line(desk.refuse(req.id, args.refuse, by=args.by)))
        return 0
    if req.kind in ("access", "explanation"):
        print(_line(desk.answer_access(req.id, json.loads(args.answer), by=args.by)))
    elif req.kind in ("correction", "appeal"):
        if args.agency is None or args.delta is None or args.period is None:
            raise RightsRequestError("granting a correction needs --agency, --delta and --period")
        desk.grant_correction(
            req.id,
            agency=args.agency,
            compensating_delta=args.delta,
            period=args.period,
            by=args.by,
        )
        print(_line(desk.get(req.id)))
    elif req.kind == "deletion":
        print(_line(desk.grant_deletion(req.id, by=args.by)))
    elif req.kind == "repair":
        if args.event_date is None:
            raise RightsRequestError(
                "deciding a repair needs --event-date (and --performance-proven if it is)"
            )
        r = desk.decide_repair(
            req.id,
            event_date=args.event_date,
            performance_proven=args.performance_proven,
            by=args.by,
        )
        print(_line(r))
        return 0 if r.status == "granted" else 1
    else:
        raise RightsRequestError(f"a {req.kind} request takes effect when opened; nothing to grant")
    return 0
