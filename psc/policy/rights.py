"""Data-subject rights workflows (PIPL Art. 44-50; CRI Art. 25; Shenzhen Art. 79-82).

A :class:`RightsDesk` keeps requests in SQLite tables of its own on a connection it is
given (``rights_requests``, ``rights_request_log``, ``rights_corrections``,
``rights_removals``, ``consent_withdrawals``); the ledger integration wires them to the
transparency log later.  Every request gets a deadline when it is opened and ends with a
recorded outcome or a reasoned refusal; :meth:`RightsDesk.overdue` reports the open ones
past their deadline.

Kinds and what deciding them records:

``access``, ``explanation``
    the answer given (the subject's events with inclusion proofs, score, grade: whatever
    the access protocol returned, stored as JSON).
``correction``, ``appeal``
    an agency's *compensating delta* for a period, linked to the original event or
    envelope id (``ref``).  The original record is never edited: the correction is a new
    record of the opposite sign, at most the rule's largest per-period effect.  While
    open, the disputed item is flagged (:meth:`RightsDesk.flagged_refs`, CRI Art. 25).
``deletion``
    removal of the referenced record (Art. 47), effective at once.
``repair``
    early removal of a record class for the subject (credit repair) when its conditions
    are met: the minimum publication period for the rule's severity has passed since the
    event, and performance is proven.  Otherwise it is refused, with the reason.
``consent-withdrawal``
    takes effect at once: the token id is withdrawn and later queries are refused
    (:meth:`RightsDesk.is_withdrawn` plugs into :func:`psc.policy.consent.verify_consent`).

Deadlines (:class:`~psc.policy.requests.DeadlinePolicy`): 15 working days by default, 3 for repair (Shenzhen
Art. 82), and corrections and appeals also within 20 calendar days (CRI Art. 25),
whichever comes first.  The clock is injected; nothing reads the system time.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from psc.catalog import Catalog, parse_period
from psc.exceptions import RightsRequestError
from psc.policy.clock import Clock, WorkingCalendar
from psc.policy.requests import (
    KINDS,
    Correction,
    DeadlinePolicy,
    RepairPolicy,
    RightsRequest,
    _add_months,
    _row,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rights_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    ref TEXT,
    rule TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    opened_at TEXT NOT NULL,
    due TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'granted', 'refused')),
    outcome TEXT,
    reason TEXT,
    decided_at TEXT,
    decided_by TEXT,
    late INTEGER
);
CREATE TABLE IF NOT EXISTS rights_request_log (
    request_id INTEGER NOT NULL REFERENCES rights_requests(id),
    at TEXT NOT NULL,
    action TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS rights_corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES rights_requests(id),
    subject TEXT NOT NULL,
    agency TEXT NOT NULL,
    rule TEXT,
    original_ref TEXT NOT NULL,
    compensating_delta INTEGER NOT NULL,
    period TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rights_removals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL REFERENCES rights_requests(id),
    kind TEXT NOT NULL CHECK (kind IN ('deletion', 'repair')),
    subject TEXT NOT NULL,
    rule TEXT,
    original_ref TEXT NOT NULL,
    effective_from TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rights_intents (
    request_id INTEGER PRIMARY KEY REFERENCES rights_requests(id),
    agency TEXT NOT NULL,
    order_blob BLOB NOT NULL,
    params TEXT NOT NULL DEFAULT '{}',
    recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS consent_withdrawals (
    token_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    relying_party TEXT NOT NULL,
    withdrawn_at TEXT NOT NULL,
    request_id INTEGER NOT NULL REFERENCES rights_requests(id)
);
"""


class RightsDesk:
    """The subject-rights workflows on a SQLite connection (see the module docstring).

    Run by the processor's rights office.  ``catalog`` (optional) lets the desk check
    rule ids, compensating deltas and repair conditions against the rules.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        clock: Clock,
        *,
        calendar: WorkingCalendar | None = None,
        deadlines: DeadlinePolicy | None = None,
        catalog: Catalog | None = None,
        repair: RepairPolicy | None = None,
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.calendar = calendar or WorkingCalendar()
        self.deadlines = deadlines or DeadlinePolicy()
        self.catalog = catalog
        self.repair_policy = repair or RepairPolicy()
        with conn:
            conn.executescript(_SCHEMA)

    # -- time ------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return self.clock.now().astimezone(self.calendar.tz)

    def today(self) -> dt.date:
        """The clock's date in the calendar's time zone."""
        return self._now().date()

    # -- reading -----------------------------------------------------------------------
    def get(self, request_id: int) -> RightsRequest:
        """The request with this id; raises :class:`RightsRequestError` if there is none."""
        row = self.conn.execute(
            "SELECT id, kind, subject, ref, rule, details, opened_at, due, status, outcome, reason, "
            "decided_at, decided_by, late FROM rights_requests WHERE id = ?",
            (request_id,),
        ).fetchone()
        if row is None:
            raise RightsRequestError(f"no rights request {request_id}")
        return _row(row)

    def requests(
        self, *, status: str | None = None, subject: str | None = None
    ) -> list[RightsRequest]:
        """Requests, oldest first, optionally filtered by status and subject."""
        sql = (
            "SELECT id, kind, subject, ref, rule, details, opened_at, due, status, outcome, reason, "
            "decided_at, decided_by, late FROM rights_requests WHERE 1 = 1"
        )
        args: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        if subject is not None:
            sql += " AND subject = ?"
            args.append(subject)
        return [_row(r) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def overdue(self, today: dt.date | None = None) -> list[RightsRequest]:
        """Open requests whose deadline has passed (due before ``today``, default: the clock's)."""
        day = (today or self.today()).isoformat()
        return [r for r in self.requests(status="open") if r.due.isoformat() < day]

    def log(self, request_id: int) -> list[tuple[str, str, str]]:
        """The request's audit trail: (time, action, note)."""
        return [
            (a, b, c)
            for a, b, c in self.conn.execute(
                "SELECT at, action, note FROM rights_request_log WHERE request_id = ? ORDER BY rowid",
                (request_id,),
            )
        ]

    def corrections(self, original_ref: str | None = None) -> list[Correction]:
        """Compensating deltas recorded (for one original record, if given)."""
        sql = "SELECT request_id, subject, agency, rule, original_ref, compensating_delta, period FROM rights_corrections"
        rows = self.conn.execute(
            sql + (" WHERE original_ref = ?" if original_ref else "") + " ORDER BY id",
            (original_ref,) if original_ref else (),
        )
        return [Correction(*r) for r in rows]

    def removals(self, subject: str | None = None) -> list[tuple[str, str, str | None, str, str]]:
        """Removals recorded: (kind, subject, rule, original_ref, effective_from)."""
        sql = "SELECT kind, subject, rule, original_ref, effective_from FROM rights_removals"
        rows = self.conn.execute(
            sql + (" WHERE subject = ?" if subject else "") + " ORDER BY id",
            (subject,) if subject else (),
        )
        return [tuple(r) for r in rows]

    def flagged_refs(self) -> set[str]:
        """Records under an open correction or appeal: flagged as disputed (CRI Art. 25)."""
        return {
            r[0]
            for r in self.conn.execute(
                "SELECT ref FROM rights_requests WHERE status = 'open' AND kind IN ('correction', 'appeal')"
            )
        }

    def is_withdrawn(self, token_id: str) -> bool:
        """Whether a consent token has been withdrawn (for ``verify_consent(withdrawn=...)``)."""
        return (
            self.conn.execute(
                "SELECT 1 FROM consent_withdrawals WHERE token_id = ?", (token_id,)
            ).fetchone()
            is not None
        )

    # -- intents (the outbox of ledger effects) ------------------------------------------
    def record_intent(
        self, request_id: int, agency: str, order: bytes, params: Mapping[str, Any]
    ) -> None:
        """Record, durably and before any ledger write, the signed order a decision sends.

        While an intent exists for an open request the request can only be completed
        (the order is carried out exactly once), not refused.
        """
        self._open_request(request_id, KINDS)
        with self.conn:
            self.conn.execute(
                "INSERT INTO rights_intents (request_id, agency, order_blob, params, recorded_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (request_id, agency, order, json.dumps(dict(params)), self._now().isoformat()),
            )
            self._log(request_id, self._now(), "intent", f"order for {agency} recorded")

    def intent(self, request_id: int) -> tuple[str, bytes, dict[str, Any]] | None:
        """(agency, sealed order, parameters) of the request's intent, if any."""
        row = self.conn.execute(
            "SELECT agency, order_blob, params FROM rights_intents WHERE request_id = ?",
            (request_id,),
        ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]), json.loads(row[2]))

    def pending_intents(self) -> list[int]:
        """Open requests with an intent: in flight, for the reconciler."""
        return [
            int(r[0])
            for r in self.conn.execute(
                "SELECT i.request_id FROM rights_intents i JOIN rights_requests q"
                " ON q.id = i.request_id WHERE q.status = 'open' ORDER BY i.request_id"
            )
        ]

    # -- opening -----------------------------------------------------------------------
    def open(
        self,
        kind: str,
        subject: str,
        *,
        ref: str | None = None,
        rule: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> RightsRequest:
        """Open a request and start its deadline timer.

        ``ref`` is the original event or envelope id (required for correction, appeal,
        deletion and repair) or the consent token id (consent-withdrawal, which also needs
        ``details["relying_party"]`` and takes effect immediately).  ``rule`` is required
        for repair.  Raises :class:`RightsRequestError` saying what is missing.
        """
        if kind not in KINDS:
            raise RightsRequestError(
                f"unknown request kind {kind!r}; use one of {', '.join(KINDS)}"
            )
        if not subject.strip():
            raise RightsRequestError("a request needs the subject it concerns")
        det = dict(details or {})
        if kind in ("correction", "appeal", "deletion", "repair", "consent-withdrawal") and not ref:
            what = (
                "the consent token id"
                if kind == "consent-withdrawal"
                else "the original event or envelope id"
            )
            raise RightsRequestError(f"a {kind} request needs the reference: {what}")
        if kind == "repair" and not rule:
            raise RightsRequestError("a repair request needs the rule (record class) to remove")
        if kind == "consent-withdrawal" and not det.get("relying_party"):
            raise RightsRequestError(
                "a consent-withdrawal request needs the relying party the token was given to"
            )
        if rule is not None and self.catalog is not None and rule not in self.catalog.rule_ids:
            raise RightsRequestError(
                f"rule {rule!r} is not in catalog {self.catalog.scheme.name!r}"
            )
        now = self._now()
        due = self.deadlines.due(kind, now.date(), self.calendar)
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO rights_requests (kind, subject, ref, rule, details, opened_at, due, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
                (
                    kind,
                    subject,
                    ref,
                    rule,
                    json.dumps(det, sort_keys=True),
                    now.isoformat(),
                    due.isoformat(),
                ),
            )
            rid = int(cur.lastrowid or 0)
            self._log(rid, now, "opened", f"{kind} due {due.isoformat()}")
            if kind == "consent-withdrawal":
                assert ref is not None
                if self.is_withdrawn(ref):
                    self._decide(rid, now, "refused", None, "token already withdrawn", "desk")
                else:
                    self.conn.execute(
                        "INSERT INTO consent_withdrawals (token_id, subject, relying_party, withdrawn_at, request_id) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (ref, subject, str(det["relying_party"]), now.isoformat(), rid),
                    )
                    self._decide(
                        rid,
                        now,
                        "granted",
                        "consent withdrawn; later queries with this token are refused",
                        None,
                        "desk",
                    )
        return self.get(rid)

    # -- deciding ----------------------------------------------------------------------
    def answer_access(
        self, request_id: int, answer: Mapping[str, Any], *, by: str
    ) -> RightsRequest:
        """Record the answer to an access or explanation request (stored as JSON).

        Raises :class:`RightsRequestError` for an empty answer: a request is granted only
        with what the subject was told.
        """
        req = self._open_request(request_id, ("access", "explanation"))
        if not answer:
            raise RightsRequestError(
                "an access request is granted with the answer given to the subject (its events, "
                "score and grade); an empty answer grants nothing"
            )
        with self.conn:
            self._decide(
                req.id, self._now(), "granted", json.dumps(answer, sort_keys=True), None, by
            )
        return self.get(request_id)

    def grant_correction(
        self, request_id: int, *, agency: str, compensating_delta: int, period: str, by: str
    ) -> Correction:
        """Record an agency's compensating delta for a correction or appeal, and grant it.

        ``period`` is ``YYYY-MM``.  With a catalog, ``agency`` must be one of its agencies
        (or an instance ``name#k`` of one) and, when the request names a rule, the agency
        that owns the rule; the delta must have the opposite sign of the rule's delta and
        at most its per-period effect.  Raises :class:`RightsRequestError` otherwise.
        """
        req = self._open_request(request_id, ("correction", "appeal"))
        parse_period(period)
        if self.catalog is not None:
            base = agency.partition("#")[0]
            if base not in self.catalog.agencies:
                raise RightsRequestError(
                    f"{agency!r} is not an agency of catalog {self.catalog.scheme.name!r}; "
                    f"use one of {', '.join(self.catalog.agencies)}"
                )
            if req.rule is not None and self.catalog.rule(req.rule).agency != base:
                owner = self.catalog.rule(req.rule).agency
                raise RightsRequestError(
                    f"rule {req.rule!r} is recorded by {owner}, not {agency}; only the agency "
                    f"that owns a rule can correct it"
                )
        if compensating_delta == 0:
            raise RightsRequestError(
                "a compensating delta of 0 corrects nothing; refuse the request instead"
            )
        if req.rule is not None and self.catalog is not None:
            r = self.catalog.rule(req.rule)
            bound = abs(r.delta) * r.max_per_period
            if (compensating_delta > 0) == (r.delta > 0) or abs(compensating_delta) > bound:
                raise RightsRequestError(
                    f"compensating delta {compensating_delta:+d} does not undo rule {r.id!r} (delta {r.delta:+d}, "
                    f"at most {r.max_per_period} per period): use the opposite sign and |delta| <= {bound}"
                )
        assert req.ref is not None
        now = self._now()
        corr = Correction(
            req.id, req.subject, agency, req.rule, req.ref, compensating_delta, period
        )
        with self.conn:
            self.conn.execute(
                "INSERT INTO rights_corrections (request_id, subject, agency, rule, original_ref, compensating_delta, "
                "period, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    req.id,
                    req.subject,
                    agency,
                    req.rule,
                    req.ref,
                    compensating_delta,
                    period,
                    now.isoformat(),
                ),
            )
            self._decide(
                req.id,
                now,
                "granted",
                f"{agency} recorded {compensating_delta:+d} for {period}, linked to {req.ref}",
                None,
                by,
            )
        return corr

    def grant_deletion(self, request_id: int, *, by: str, note: str = "") -> RightsRequest:
        """Delete the referenced record (Art. 47): a removal effective today."""
        req = self._open_request(request_id, ("deletion",))
        now = self._now()
        with self.conn:
            self._remove(req, "deletion", now)
            self._decide(
                req.id,
                now,
                "granted",
                f"record {req.ref} removed from {now.date().isoformat()}"
                + (f"; {note}" if note else ""),
                None,
                by,
            )
        return self.get(request_id)

    def decide_repair(
        self, request_id: int, *, event_date: dt.date, performance_proven: bool, by: str
    ) -> RightsRequest:
        """Grant credit repair when its conditions hold, otherwise refuse with the reason.

        Conditions: performance (payment, compliance) is proven, and the minimum
        publication period for the rule's severity has passed since ``event_date``.
        Needs the catalog to know the rule's severity.
        """
        req = self._open_request(request_id, ("repair",))
        refusal = self.repair_refusal(
            request_id, event_date=event_date, performance_proven=performance_proven
        )
        now = self._now()
        assert req.rule is not None
        with self.conn:
            if refusal is not None:
                self._decide(req.id, now, "refused", None, refusal, by)
            else:
                self._remove(req, "repair", now)
                self._decide(
                    req.id,
                    now,
                    "granted",
                    f"{req.rule} removed for {req.subject} from {now.date().isoformat()} (credit repair)",
                    None,
                    by,
                )
        return self.get(request_id)

    def repair_refusal(
        self, request_id: int, *, event_date: dt.date, performance_proven: bool
    ) -> str | None:
        """Why a repair would be refused now (``None``: it would be granted); records nothing."""
        req = self._open_request(request_id, ("repair",))
        if self.catalog is None:
            raise RightsRequestError("credit repair needs the catalog to know the rule's severity")
        assert req.rule is not None
        rule = self.catalog.rule(req.rule)
        months = self.repair_policy.min_publication_months.get(rule.severity, 0)
        earliest = _add_months(event_date, months)
        if not performance_proven:
            return "performance of the obligation is not proven; repair needs proof of payment or compliance"
        if self._now().date() < earliest:
            return (
                f"the minimum publication period for {rule.severity} rules ({months} months) "
                f"ends on {earliest.isoformat()}; apply again from then"
            )
        return None

    def refuse(self, request_id: int, reason: str, *, by: str) -> RightsRequest:
        """Refuse a request; the reason is required and told to the subject (Art. 50)."""
        if not reason.strip():
            raise RightsRequestError("a refusal needs a reason the subject can act on")
        req = self._open_request(request_id, KINDS)
        if self.intent(request_id) is not None:
            raise RightsRequestError(
                f"request {request_id} was granted and its order sent to the agency; it "
                "completes (run the rights office's reconciler), it cannot be refused now"
            )
        with self.conn:
            self._decide(req.id, self._now(), "refused", None, reason, by)
        return self.get(request_id)

    # -- internals ---------------------------------------------------------------------
    def _open_request(self, request_id: int, kinds: tuple[str, ...]) -> RightsRequest:
        req = self.get(request_id)
        if req.kind not in kinds:
            raise RightsRequestError(
                f"request {request_id} is a {req.kind} request, not {' or '.join(kinds)}"
            )
        if req.status != "open":
            raise RightsRequestError(f"request {request_id} was already {req.status}")
        if self._now() < req.opened_at:
            raise RightsRequestError(
                f"request {request_id} was opened at {req.opened_at.isoformat()}; it cannot be "
                f"decided at {self._now().isoformat()}, before the request was opened"
            )
        return req

    def _remove(self, req: RightsRequest, kind: str, now: dt.datetime) -> None:
        self.conn.execute(
            "INSERT INTO rights_removals (request_id, kind, subject, rule, original_ref, effective_from) VALUES (?, ?, ?, ?, ?, ?)",
            (req.id, kind, req.subject, req.rule, req.ref or "", now.date().isoformat()),
        )

    def _decide(
        self,
        rid: int,
        now: dt.datetime,
        status: str,
        outcome: str | None,
        reason: str | None,
        by: str,
    ) -> None:
        due = self.conn.execute("SELECT due FROM rights_requests WHERE id = ?", (rid,)).fetchone()[
            0
        ]
        late = now.date().isoformat() > due
        self.conn.execute(
            "UPDATE rights_requests SET status = ?, outcome = ?, reason = ?, decided_at = ?, decided_by = ?, late = ? WHERE id = ?",
            (status, outcome, reason, now.isoformat(), by, int(late), rid),
        )
        self._log(rid, now, status, reason or outcome or "")

    def _log(self, rid: int, now: dt.datetime, action: str, note: str) -> None:
        self.conn.execute(
            "INSERT INTO rights_request_log (request_id, at, action, note) VALUES (?, ?, ?, ?)",
            (rid, now.isoformat(), action, note),
        )
