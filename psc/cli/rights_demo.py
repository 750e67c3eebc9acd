"""``psc rights --db PATH demo``: the rights workflows and consent tokens, end to end.

Runs a small seeded deployment in one process (every message sealed, verified and logged,
a real SQLite ledger and transparency log, an *insecure* small Paillier key) under a
simulated clock, and drives each workflow through the protocol, recording the requests on
the desk in ``--db`` (inspect them afterwards with ``psc rights --db PATH list``):

1. a bank asks for a grade with the subject's consent token (granted), with an expired
   token and with a withdrawn one (refused before any decryption, logged);
2. the subject's access request, answered with verified inclusion proofs;
3. a correction: the court's compensating adjustment, logged and linked to its envelope;
4. a credit repair: refused while the publication period runs, granted after it;
5. an access request left unanswered, reported overdue.

Every grade revealed is compared with the plaintext oracle on the events that still count.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog, period_index, period_label
from psc.events import Event, EventTable
from psc.exceptions import PolicyViolation
from psc.ledger.log_verify import verify_log
from psc.oracle import score
from psc.parties.relying_party import read_grades
from psc.policy.clock import SimulatedClock
from psc.policy.consent import issue_consent
from psc.protocol.signing import digest, public_bytes
from psc.sim.city import agency_instances
from psc.sim.rights_deployment import RightsDeployment, setup_rights
from psc.sim.sources import demo_keypair, seeded_randbytes

START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
OPEN = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)
N_SUBJECTS = 24
KEY_BITS = 512  # INSECURE: a demo of the workflows, not of the cryptography's strength


def _grades(r: RightsDeployment, period: int) -> dict[int, str]:
    d = r.deployment
    req = r.registry.grade_request(range(N_SUBJECTS), period)
    answer = d.key_holder.answer(d.aggregator.prepare_reveal(req))
    d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    return read_grades(d.params, req, answer.response)


def _oracle(catalog: Catalog, events: Sequence[Event], period: int) -> dict[int, str]:
    s = score(EventTable.from_events(catalog, events, N_SUBJECTS), period)
    return dict(enumerate(s.labels(catalog)))


def run_demo(catalog: Catalog, desk_db: sqlite3.Connection, *, seed: int = 0) -> dict[str, Any]:
    """Run the scenario of the module docstring; returns what it observed (JSON-ready)."""
    clock = SimulatedClock(START)
    r = setup_rights(
        catalog,
        agency_instances(catalog),
        N_SUBJECTS,
        demo_keypair(KEY_BITS, seed),
        clock=clock,
        desk_db=desk_db,
        key_holder_db=sqlite3.connect(":memory:"),
        randbytes=seeded_randbytes(f"psc-rights-demo/{seed}"),
    )
    clock.advance(seconds=(OPEN - START).total_seconds())
    now = period_index(OPEN.date())
    p1 = period_index(START.date())
    office, d = r.office, r.deployment

    def ident(i: int) -> str:
        return f"resident-{i:07d}"

    def ev(i: int, rule: str, period: int) -> Event:
        day = dt.date(period // 12, period % 12 + 1, 5)
        return Event(
            r.registry.slot_of(ident(i)), rule, day, digest(f"{i}{rule}{day}".encode()).hex()
        )

    events = [
        ev(0, "court.judgment-default", p1),
        ev(0, "utility.arrears", p1 + 1),
        ev(1, "tax.arrears", p1),
        ev(1, "tax.arrears", p1 + 1),
        ev(2, "traffic.drunk-driving", p1 + 2),
        ev(3, "civic.volunteering", p1 + 2),
    ]
    for p in (p1, p1 + 1, p1 + 2):
        for a in r.agencies:
            mine = [
                e
                for e in events
                if e.period == p and catalog.rule(e.rule).agency == a.catalog_agency
            ]
            a.accept_receipt(r.aggregator.ingest(a.submit(mine, p)))
    checks = [_grades(r, now) == _oracle(catalog, events, now)]

    # 1. consent tokens at the reveal gate
    key = Ed25519PrivateKey.from_private_bytes(digest(f"psc-rights-demo/{seed}/key".encode()))
    r.directory.add(r.registry.certify_consent_key(ident(0), public_bytes(key)))
    t = clock.now()

    def token(issued: dt.datetime, expires: dt.datetime) -> tuple[bytes, str]:
        tok = issue_consent(
            key,
            subject=r.registry.pseudonym_of(ident(0)),
            relying_party=d.bank.id,
            purpose=d.bank_purpose,
            domain=catalog.scheme.domain,
            catalog_hash=catalog.version_hash,
            issued_at=issued,
            expires_at=expires,
            period=now,
        )
        return tok.encode(), tok.token_id

    def ask(consent: bytes) -> str:
        req = d.bank.request_grade(r.registry.slot_of(ident(0)), d.bank_purpose, now, consent)
        try:
            answer = d.key_holder.answer(d.aggregator.prepare_reveal(req))
        except PolicyViolation as exc:
            return f"refused: {exc}"
        d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
        return d.bank.read_grade(req, answer.response)

    valid, valid_id = token(t - dt.timedelta(days=1), t + dt.timedelta(days=30))
    consent = {"valid_token": ask(valid)}
    consent["expired_token"] = ask(token(t - dt.timedelta(days=60), t - dt.timedelta(days=1))[0])
    office.withdraw_consent(ident(0), valid_id, d.bank.id)
    consent["withdrawn_token"] = ask(valid)
    refusals = [e.reason for e in r.refusals.entries()]

    # 2. access with verified proofs
    access = office.open_access(ident(0))
    answer = office.answer_access(access.id, first_period=p1, at=now)
    checks.append(answer.grade == answer.revealed_grade)

    # 3. correction of the judgment
    (judgment,) = [e for e in answer.events if e.event.rule == "court.judgment-default"]
    corr = office.open_correction(ident(0), judgment.ref, note="the judgment was set aside")
    (adj,) = office.grant_correction(corr.id)
    corrected = [e for e in events if e != judgment.event]
    checks.append(_grades(r, now) == _oracle(catalog, corrected, now))

    # 4. credit repair: too early, then granted
    (tax_ref, *_) = [
        e.ref
        for e in office.verified_access(ident(1), first_period=p1, at=now).events
        if e.event.rule == "tax.arrears"
    ]
    early = office.open_repair(ident(1), "tax.arrears", tax_ref)
    office.decide_repair(early.id, performance_proven=True)  # event date: from the proofs
    clock.advance(days=40)
    later = period_index(clock.now().date())
    repair = office.open_repair(ident(1), "tax.arrears", tax_ref)
    removed = office.decide_repair(repair.id, performance_proven=True)
    slot1 = r.registry.slot_of(ident(1))
    repaired = [e for e in corrected if not (e.subject == slot1 and e.rule == "tax.arrears")]
    checks.append(_grades(r, later) == _oracle(catalog, repaired, later))

    # 5. an unanswered request, overdue
    office.open_access(ident(2))
    clock.advance(days=30)
    overdue = [q.id for q in office.overdue()]

    report = verify_log(d.ledger.connection, d.aggregator_public_key)
    return {
        "subjects": N_SUBJECTS,
        "key_bits": KEY_BITS,
        "evaluation_period": period_label(now),
        "consent": consent,
        "consent_refusals_logged": refusals,
        "access_grade": answer.grade,
        "correction": {
            "ref": judgment.ref,
            "adjustment": adj.adjustment_hash.hex(),
            "log_index": adj.log_index,
        },
        "repair": {
            "first": office.desk.get(early.id).status,
            "second": office.desk.get(repair.id).status,
            "adjustments": len(removed),
        },
        "overdue_requests": overdue,
        "requests": [
            {"id": q.id, "kind": q.kind, "status": q.status, "due": q.due.isoformat()}
            for q in office.desk.requests()
        ],
        "log_size": report.size,
        "log_verified": report.size == d.ledger.log.size and report.unsigned_leaves == 0,
        "grades_match_oracle": all(checks),
    }


def print_summary(out: dict[str, Any]) -> None:
    """The demo's result, for people."""
    print(
        f"rights demo: {out['subjects']} subjects, {out['key_bits']}-bit Paillier key (INSECURE, demo only)"
    )
    for k, v in out["consent"].items():
        print(f"  bank query, {k.replace('_', ' ')}: {v}")
    print(f"  consent refusals logged: {', '.join(out['consent_refusals_logged'])}")
    print(f"  access: verified proofs, grade {out['access_grade']}")
    c = out["correction"]
    print(f"  correction of {c['ref'][:16]}...: adjustment logged at index {c['log_index']}")
    rp = out["repair"]
    print(f"  credit repair: {rp['first']}, then {rp['second']} ({rp['adjustments']} adjustments)")
    print(f"  overdue requests: {out['overdue_requests']}")
    print(f"  log: {out['log_size']} leaves, verified: {out['log_verified']}")
    print(f"  grades match the oracle: {out['grades_match_oracle']}")


def write_json(out: dict[str, Any], path: str) -> None:
    """Write the result as JSON (parent directories created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
