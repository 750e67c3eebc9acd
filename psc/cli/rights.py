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
from psc.policy.requests import KINDS, STATUSES, DeadlinePolicy, RightsRequest
from psc.policy.rights import RightsDesk


def _common() -> argparse.ArgumentParser:
    """The options every action takes, accepted before or after the action's name."""
    c = argparse.ArgumentParser(add_help=False)
    c.add_argument(
        "--db",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="SQLite database holding the requests (created if missing)",
    )
    c.add_argument(
        "--deployment",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="take deadlines, holidays and catalog from this deployment (or 'demo')",
    )
    c.add_argument(
        "--catalog",
        default=argparse.SUPPRESS,
        help="catalog for rule checks when no deployment is given (default: city)",
    )
    c.add_argument(
        "--today",
        metavar="YYYY-MM-DD",
        type=dt.date.fromisoformat,
        default=argparse.SUPPRESS,
        help="act as of this day (simulated clock, 09:00 UTC+8)",
    )
    c.add_argument(
        "--by", default=argparse.SUPPRESS, help="who decides (recorded; default rights-office)"
    )
    return c


#: defaults of the common options (argparse.SUPPRESS keeps a value given before the action)
_DEFAULTS: dict[str, Any] = {
    "db": None,
    "deployment": None,
    "catalog": "city",
    "today": None,
    "by": "rights-office",
}


def register(sub: Any) -> None:
    """Add the ``rights`` subcommand and its sub-subcommands."""
    common = _common()
    p: argparse.ArgumentParser = sub.add_parser(
        "rights",
        help="data-subject rights requests: open, list, decide, overdue",
        parents=[common],
    )
    s = p.add_subparsers(dest="rights_command", required=True, metavar="ACTION")

    o = s.add_parser("open", help="open a request and start its deadline", parents=[common])
    o.add_argument("kind", choices=KINDS)
    o.add_argument("--subject", required=True)
    o.add_argument("--ref", help="original event/envelope id, or the consent token id")
    o.add_argument("--rule", help="rule id (record class); required for correction and repair")
    o.add_argument("--relying-party", help="for consent-withdrawal")
    o.add_argument("--note", default="", help="the subject's statement")

    ls = s.add_parser("list", help="list requests", parents=[common])
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--subject")

    d = s.add_parser("decide", help="grant or refuse a request", parents=[common])
    d.add_argument("id", type=int)
    g = d.add_mutually_exclusive_group(required=True)
    g.add_argument("--grant", action="store_true")
    g.add_argument("--refuse", metavar="REASON")
    d.add_argument(
        "--answer", help="access/explanation: the answer given to the subject, a JSON object"
    )
    d.add_argument("--agency", help="correction/appeal: the agency owning the rule")
    d.add_argument("--delta", type=int, help="correction/appeal: compensating delta")
    d.add_argument("--period", help="correction/appeal: period YYYY-MM of the compensating record")
    d.add_argument(
        "--event-date", type=dt.date.fromisoformat, help="repair: date of the original event"
    )
    d.add_argument(
        "--performance-proven", action="store_true", help="repair: performance is proven"
    )

    s.add_parser(
        "overdue",
        help="list open requests past their deadline (exit 1 if any)",
        parents=[common],
    )

    dm = s.add_parser(
        "demo",
        help="run every workflow end to end through the protocol (city catalog, simulated "
        "clock, insecure demo key); the requests land in --db",
        parents=[common],
    )
    dm.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    dm.add_argument("--seed", type=int, default=0, help="seed of the demo deployment")
    p.set_defaults(func=run)


def _open_db(path: str) -> sqlite3.Connection:
    """Open the requests database at ``path``, or raise ``sqlite3.Error`` naming it.

    A file that is not a SQLite database is refused without being written to.
    """
    try:
        conn = sqlite3.connect(path)
        conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise sqlite3.Error(
            f"cannot open {path} as a rights database ({exc}); give --db a new file in an "
            "existing directory, or a database this command created"
        ) from exc
    return conn


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
    conn = _open_db(args.db)
    return RightsDesk(conn, clock, calendar=cal, deadlines=deadlines, catalog=catalog)


def _line(r: RightsRequest) -> str:
    tail = r.outcome if r.status == "granted" else r.reason if r.status == "refused" else ""
    late = " (late)" if r.late else ""
    return f"{r.id:5d} {r.kind:18s} {r.subject:14s} {r.status:8s}{late} opened {r.opened_at.date().isoformat()} due {r.due.isoformat()}  {tail or ''}"


def run(args: argparse.Namespace) -> int:
    for name, default in _DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    if args.db is None or not args.db.strip():
        print(
            "psc rights: give the requests database with --db PATH (before or after the action)",
            file=sys.stderr,
        )
        return 2
    if args.rights_command == "demo":
        return _demo(args)
    try:
        desk = _desk(args)
    except sqlite3.Error as exc:
        print(f"psc rights: {exc}", file=sys.stderr)
        return 2
    except (CatalogError, DeploymentError) as exc:
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

    try:
        conn = _open_db(args.db)
    except sqlite3.Error as exc:
        print(f"psc rights demo: {exc}", file=sys.stderr)
        return 2
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


#: what each kind needs when opened from the command line, and the flag that gives it
_NEEDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "correction": (
        ("ref", "--ref", "the original event or envelope id"),
        ("rule", "--rule", "the rule (record class) of the disputed record"),
    ),
    "appeal": (
        ("ref", "--ref", "the original event or envelope id"),
        ("rule", "--rule", "the rule (record class) of the disputed record"),
    ),
    "deletion": (("ref", "--ref", "the original event or envelope id"),),
    "repair": (
        ("ref", "--ref", "the original event or envelope id"),
        ("rule", "--rule", "the rule (record class) to remove"),
    ),
    "consent-withdrawal": (
        ("ref", "--ref", "the consent token id"),
        ("relying_party", "--relying-party", "the relying party holding it"),
    ),
}


def _check_open(desk: RightsDesk, args: argparse.Namespace) -> None:
    """Refuse, naming the flag, what :meth:`RightsDesk.open` would refuse by its field."""
    if not args.subject.strip():
        raise RightsRequestError("--subject is empty: give the subject the request concerns")
    for field, flag, what in _NEEDS.get(args.kind, ()):
        if not getattr(args, field):
            raise RightsRequestError(f"a {args.kind} request needs {flag}: {what}")
    cat = desk.catalog
    if args.rule is not None and cat is not None and args.rule not in cat.rule_ids:
        raise RightsRequestError(
            f"--rule {args.rule!r} is not a rule of catalog {cat.scheme.name!r} "
            "(psc catalog CATALOG lists them)"
        )


def _answer(text: str | None) -> dict[str, Any]:
    if text is None:
        raise RightsRequestError(
            "granting an access request needs --answer: the answer given to the subject as a "
            'JSON object, e.g. --answer \'{"events": [], "score": 1000, "grade": "A"}\''
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RightsRequestError(f"--answer is not JSON ({exc.msg}); give a JSON object") from None
    if not isinstance(value, dict) or not value:
        raise RightsRequestError(
            "--answer must be a non-empty JSON object: the events, score and grade the subject "
            "was given"
        )
    return value


def _list(reqs: list[RightsRequest], args: argparse.Namespace) -> None:
    for r in reqs:
        print(_line(r))
    if not reqs:
        which = f"{args.status} " if args.status else ""
        whose = f" for {args.subject}" if args.subject else ""
        print(f"no {which}rights requests{whose} in {args.db}")


def _dispatch(desk: RightsDesk, args: argparse.Namespace) -> int:
    cmd = args.rights_command
    if cmd == "open":
        _check_open(desk, args)
        details: dict[str, Any] = {"note": args.note} if args.note else {}
        if args.relying_party:
            details["relying_party"] = args.relying_party
        r = desk.open(args.kind, args.subject, ref=args.ref, rule=args.rule, details=details)
        print(_line(r))
        return 0
    if cmd == "list":
        _list(desk.requests(status=args.status, subject=args.subject), args)
        return 0
    if cmd == "overdue":
        late = desk.overdue()
        for r in late:
            print(_line(r))
        print(f"{len(late)} overdue request(s) as of {desk.today().isoformat()}")
        return 1 if late else 0
    # decide
    req = desk.get(args.id)
    if req.status == "open" and desk.today() < req.opened_at.astimezone(CST).date():
        raise RightsRequestError(
            f"request {req.id} was opened on {req.opened_at.date().isoformat()}; --today "
            f"{desk.today().isoformat()} would date the decision before it"
        )
    if args.refuse is not None:
        print(_line(desk.refuse(req.id, args.refuse, by=args.by)))
        return 0
    if req.kind in ("access", "explanation"):
        print(_line(desk.answer_access(req.id, _answer(args.answer), by=args.by)))
    elif req.kind in ("correction", "appeal"):
        if args.agency is None or args.delta is None or args.period is None:
            raise RightsRequestError("granting a correction needs --agency, --delta and --period")
        try:
            desk.grant_correction(
                req.id,
                agency=args.agency,
                compensating_delta=args.delta,
                period=args.period,
                by=args.by,
            )
        except RightsRequestError as exc:
            raise RightsRequestError(f"--agency {args.agency}: {exc}") from None
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
