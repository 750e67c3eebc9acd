"""The rights office: each rights request run through the desk *and* the protocol.

Normative: ``protocols/rights.md`` (sections on the office and its links).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from psc.catalog import period_index, period_label
from psc.events import Event
from psc.exceptions import (
    InvalidMessage,
    PscError,
    RightsRequestError,
)
from psc.parties.key_holder import KeyHolder
from psc.parties.registry import open_agency_registration
from psc.parties.relying_party import read_grades
from psc.parties.rights.aggregator import AdjustmentRecord
from psc.parties.rights.messages import verify_adjustment
from psc.parties.rights.ports import GradeDesk, OfficeAgency, OfficeAggregator, OfficeRegistry
from psc.parties.subject import Subject
from psc.policy.requests import RightsRequest
from psc.policy.rights import RightsDesk
from psc.protocol.messages import (
    HASH_BYTES,
    AccessResponse,
)
from psc.protocol.signing import digest, open_signed


@dataclass(frozen=True)
class ProvenEvent:
    """One of the subject's events as the verified access protocol proved it."""

    agency: str
    envelope: bytes  # hash of the logged envelope whose commitment holds it
    leaf: int  # its leaf index there (what a correction cites)
    event: Event
    cancelled_by: bytes | None  # hash of the logged adjustment cancelling it, if any
    cancelled_from: int | None  # the adjustment's effective period

    @property
    def ref(self) -> str:
        """The reference a correction, appeal or deletion request cites: ``envelope#leaf``."""
        return f"{self.envelope.hex()}#{self.leaf}"

    def counts_at(self, period: int) -> bool:
        """Whether the event still counts in the score at ``period``."""
        return self.cancelled_from is None or period < self.cancelled_from


@dataclass(frozen=True)
class AccessAnswer:
    """What an access request returned: proven events, recomputed score, revealed grade."""

    at: int  # evaluation period
    events: tuple[ProvenEvent, ...]
    score: int  # recomputed with the oracle from the events that count at ``at``
    grade: str  # the oracle's grade for that score (with caps)
    revealed_grade: str  # the grade the key holder revealed to the subject

    def to_json(self) -> dict[str, Any]:
        """The answer as the desk records it (no salts, no proofs: those were checked)."""
        return {
            "at": period_label(self.at),
            "score": self.score,
            "grade": self.grade,
            "revealed_grade": self.revealed_grade,
            "verified": True,
            "events": [
                {
                    "ref": e.ref,
                    "agency": e.agency,
                    "rule": e.event.rule,
                    "date": e.event.date.isoformat(),
                    "evidence": e.event.evidence,
                    "cancelled_by": e.cancelled_by.hex() if e.cancelled_by else None,
                    "cancelled_from": (
                        period_label(e.cancelled_from) if e.cancelled_from is not None else None
                    ),
                }
                for e in self.events
            ],
        }


_LINKS = (
    "CREATE TABLE IF NOT EXISTS rights_ledger_links ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, request_id INTEGER NOT NULL,"
    " at TEXT NOT NULL, action TEXT NOT NULL, adjustment_hash BLOB, log_index INTEGER,"
    " note TEXT NOT NULL DEFAULT '')"
)


@dataclass(frozen=True)
class LedgerLink:
    """What the rights office did on the ledger for a request (or tried to)."""

    request_id: int
    at: dt.datetime
    action: str  # "adjustment-logged", "access-verified" or "access-failed"
    adjustment_hash: bytes | None
    log_index: int | None
    note: str


def parse_ref(ref: str) -> tuple[bytes, int]:
    """``envelope-hash-hex#leaf`` -> (envelope hash, leaf).  Raises :class:`RightsRequestError`."""
    head, sep, tail = ref.partition("#")
    try:
        h, leaf = bytes.fromhex(head), int(tail)
    except ValueError:
        h, leaf = b"", -1
    if not sep or len(h) != HASH_BYTES or leaf < 0:
        raise RightsRequestError(
            f"ref {ref!r} is not ENVELOPE#LEAF (64 hex digits, '#', a leaf index); take it from "
            "the access answer"
        )
    return h, leaf


class RightsOffice:
    """The rights office: runs each rights request through the desk *and* the protocol.

    Run by the scheme operator next to the registry (it knows identities, as the registry
    does).  It talks to the agencies, the aggregator and the key holder only through their
    protocol methods (:mod:`psc.parties.rights.ports`: the same in process and over HTTP),
    and checks answers with a :class:`~psc.parties.subject.Subject` client, as the
    subject's own software would.  ``key_holder`` is the key holder itself (the office
    then has the aggregator log the reveal notice and checks the inclusion) or its reveal
    desk (which does both before it answers).  ``registrations`` are the registry-signed agency
    registrations (public).  The desk's connection also holds ``rights_ledger_links``: per
    request, the adjustments logged and the access attempts, failed ones included.
    """

    def __init__(
        self,
        desk: RightsDesk,
        registry: OfficeRegistry,
        aggregator: OfficeAggregator,
        key_holder: KeyHolder | GradeDesk,
        agencies: Sequence[OfficeAgency],
        registrations: Sequence[bytes],
        *,
        by: str = "rights-office",
    ) -> None:
        self.desk = desk
        self.registry = registry
        self.aggregator = aggregator
        self.key_holder = key_holder
        self.params = aggregator.params
        self.agencies = {a.id: a for a in agencies}
        self.registrations = list(registrations)
        #: agency id -> its registry-signed registration, verified
        self.agency_registrations = {
            r.agency: r for r in (open_agency_registration(s, self.params) for s in registrations)
        }
        self.by = by
        #: called with the name of each commit boundary a workflow passes ("intent",
        #: "ledger", "agency", "links", "reveal", "desk"): a seam for fault injection
        self.on_boundary: Callable[[str], None] = lambda boundary: None
        with desk.conn:
            desk.conn.execute(_LINKS)

    # -- bookkeeping -----------------------------------------------------------------------
    def _link(
        self,
        request_id: int,
        action: str,
        *,
        adjustment_hash: bytes | None = None,
        log_index: int | None = None,
        note: str = "",
    ) -> None:
        with self.desk.conn:
            self.desk.conn.execute(
                "INSERT INTO rights_ledger_links (request_id, at, action, adjustment_hash,"
                " log_index, note) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    request_id,
                    self.desk.clock.now().isoformat(),
                    action,
                    adjustment_hash,
                    log_index,
                    note,
                ),
            )

    def links(self, request_id: int) -> list[LedgerLink]:
        """What was done on the ledger for a request, oldest first."""
        rows = self.desk.conn.execute(
            "SELECT request_id, at, action, adjustment_hash, log_index, note"
            " FROM rights_ledger_links WHERE request_id = ? ORDER BY id",
            (request_id,),
        )
        return [
            LedgerLink(
                int(r[0]),
                dt.datetime.fromisoformat(r[1]),
                str(r[2]),
                None if r[3] is None else bytes(r[3]),
                None if r[4] is None else int(r[4]),
                str(r[5]),
            )
            for r in rows
        ]

    def overdue(self) -> list[RightsRequest]:
        """Open requests past their deadline (the desk's timer)."""
        return self.desk.overdue()

    def _current_period(self) -> int:
        return period_index(self.desk.clock.now().astimezone(dt.UTC).date())

    # -- access and explanation -------------------------------------------------------------
    def open_access(
        self, identity: str, *, kind: str = "access", note: str = "", ask: str = ""
    ) -> RightsRequest:
        """Open an access (or explanation) request for an enrolled identity.

        ``ask`` (all ``open_*`` methods): the asker's id for this ask, kept in the request's
        details in the same write, so a retried ask finds its request (:meth:`asked`).
        """
        if kind not in ("access", "explanation"):
            raise RightsRequestError("open_access opens access or explanation requests")
        self.registry.slot_of(identity)
        return self.desk.open(kind, identity, details=_details(note=note, ask=ask) or None)

    def asked(self, ask: str) -> RightsRequest | None:
        """The request an ask with this id opened, if any."""
        for req in self.desk.requests():
            if ask and req.details.get("ask") == ask:
                return req
        return None

    def answer_access(
        self, request_id: int, *, first_period: int, at: int | None = None
    ) -> AccessAnswer:
        """Answer an open access request with the verified access protocol, then close it.

        For every agency: the registry's signed access request, the agency's answer, the
        subject client's check of every inclusion proof against the logged commitments.
        Then the logged adjustments amending those envelopes are verified and applied, the
        score and grade at ``at`` (default: the current period) are recomputed with the
        oracle, and compared with the grade the key holder reveals to the subject.  Only if
        all of that holds is the answer recorded and the request granted.  Otherwise the
        failure is recorded (``access-failed``), the request stays open, and the error
        (:class:`InvalidMessage`) propagates.
        """
        req = self.desk.get(request_id)
        if req.kind not in ("access", "explanation") or req.status != "open":
            raise RightsRequestError(f"request {request_id} is not an open access request")
        at = self._current_period() if at is None else at
        try:
            answer = self.verified_access(req.subject, first_period=first_period, at=at)
        except InvalidMessage as exc:
            self._link(request_id, "access-failed", note=str(exc))
            raise
        self.on_boundary("reveal")
        self.desk.answer_access(request_id, answer.to_json(), by=self.by)
        self.on_boundary("desk")
        self._link(request_id, "access-verified", note=f"{len(answer.events)} events proven")
        return answer

    def verified_access(self, identity: str, *, first_period: int, at: int) -> AccessAnswer:
        """The verified access protocol for one subject (what :meth:`answer_access` records).

        Raises :class:`InvalidMessage` if any answer, proof or adjustment fails to verify,
        or if the proven events do not explain the grade revealed to the subject.  Leaves
        a ``reveal`` entry in the log (the subject's own grade).
        """
        first = first_period
        slot = self.registry.slot_of(identity)
        subject = Subject(slot, self.params)
        for reg in self.registrations:
            subject.learn_agency(reg)
        inclusions = {
            rec.envelope_hash: self.aggregator.log_inclusion(rec.envelope_hash)
            for rec in self.aggregator.ledger.envelopes()
        }
        proven: list[tuple[str, bytes, int, Event]] = []
        for agency in self.agencies.values():
            request = self.registry.access_request(identity, first, at)
            response = agency.answer_access(request)
            events = subject.verify_access(request, response, inclusions)
            # verify_access checked the signature and every proof; read the leaf positions
            resp = open_signed(
                response, AccessResponse, lambda m: self.agency_registrations[m.agency].public_key
            )
            where = [(pe.envelope_hash, op.index) for pe in resp.periods for op in pe.events]
            if len(where) != len(events):
                raise InvalidMessage("access response changed between checks")
            proven += [(resp.agency, h, i, e) for (h, i), e in zip(where, events, strict=True)]
        cancelled: dict[tuple[bytes, int], tuple[bytes, int]] = {}
        for rec in self.aggregator.adjustments({h for _, h, _, _ in proven}):
            adj = verify_adjustment(
                self.params,
                self.agency_registrations,
                rec.adjustment,
                self.aggregator.adjustment_inclusion(rec.adjustment_hash),
            )
            for leaf in adj.leaves:
                cancelled[(adj.original, leaf)] = (rec.adjustment_hash, adj.effective_period)
        out = []
        for agency_id, h, leaf, e in proven:
            by, eff = cancelled.get((h, leaf), (None, None))
            out.append(ProvenEvent(agency_id, h, leaf, e, by, eff))
        counting = [p.event for p in out if p.counts_at(at)]
        score, grade = subject.explain(counting, at)
        revealed = self._reveal_own_grade(slot, at)
        if revealed != grade:
            raise InvalidMessage(
                f"the proven events give grade {grade} at {period_label(at)}, but {revealed} "
                "was revealed: an agency left an event out of its answer"
            )
        return AccessAnswer(at, tuple(out), score, grade, revealed)

    def _reveal_own_grade(self, slot: int, period: int) -> str:
        request = self.registry.grade_request([slot], period)
        if isinstance(self.key_holder, KeyHolder):
            answer = self.key_holder.answer(self.aggregator.prepare_reveal(request))
            self.key_holder.check_logged(answer, self.aggregator.release(answer.notice))
            response = answer.response
        else:  # the reveal desk prepares, answers and has the notice logged itself
            response = self.key_holder.grades(request)
        return read_grades(self.params, request, response)[slot]

    # -- correction, appeal, deletion ------------------------------------------------------
    def open_correction(
        self,
        identity: str,
        ref: str,
        *,
        kind: str = "correction",
        note: str = "",
        ask: str = "",
    ) -> RightsRequest:
        """Open a correction, appeal or deletion of the event ``ref`` (``envelope#leaf``, from
        the access answer).  The rule is looked up from the subject's proven event at grant
        time; here only the reference's shape and the envelope's existence are checked."""
        if kind not in ("correction", "appeal", "deletion"):
            raise RightsRequestError("open_correction opens correction, appeal or deletion")
        h, _ = parse_ref(ref)
        env = self.aggregator.ledger.envelope(h)
        if env is None:
            raise RightsRequestError(f"no logged envelope {h.hex()[:16]}...; check the ref")
        self.registry.slot_of(identity)
        details: dict[str, Any] = {"agency": env.agency, **_details(note=note, ask=ask)}
        return self.desk.open(kind, identity, ref=ref, details=details)

    def grant_correction(self, request_id: int) -> list[AdjustmentRecord]:
        """Grant a correction, appeal or deletion: the agency's compensating adjustment.

        The registry orders the agency to cancel the event; the agency seals the
        adjustment; the aggregator verifies, logs (linked to the original envelope) and
        stores it; the agency checks the log; then the office records the link and the desk
        the outcome (for a correction or appeal, the compensating delta ``-delta`` of the
        rule, for the current period).  Raises :class:`RightsRequestError` (not an open
        request of that kind), or the protocol's errors (then nothing was recorded).
        """
        req = self.desk.get(request_id)
        if req.kind not in ("correction", "appeal", "deletion") or req.status != "open":
            raise RightsRequestError(f"request {request_id} is not an open correction request")
        assert req.ref is not None  # the desk requires it for these kinds
        intent = self.desk.intent(request_id)
        if intent is None:  # first attempt: decide, then record the order before any effect
            h, leaf = parse_ref(req.ref)
            agency = self._agency_of(h)
            event = self._proven_event(agency, req.subject, h, leaf)
            order = self.registry.adjustment_order(
                req.subject, agency.id, req.kind, case=f"rights-{req.id}", original=h, leaves=[leaf]
            )
            self.desk.record_intent(request_id, agency.id, order, {"rule": event.rule})
            rule = event.rule
        else:  # a retry or the reconciler: carry out the recorded order, nothing new
            agency, order, rule = self.agencies[intent[0]], intent[1], str(intent[2]["rule"])
        self.on_boundary("intent")
        records = self._carry_out(agency, order)
        self._link_all(request_id, records)  # before the decision: see rights.md §6
        self.on_boundary("links")
        if req.kind == "deletion":
            self.desk.grant_deletion(
                request_id, by=self.by, note=f"adjustment {records[0].adjustment_hash.hex()}"
            )
        else:
            self.desk.grant_correction(
                request_id,
                agency=agency.id,
                compensating_delta=-self.params.catalog.rule(rule).delta,
                period=period_label(records[0].effective_period),
                by=self.by,
            )
        return records

    def _link_all(self, request_id: int, records: Sequence[AdjustmentRecord]) -> None:
        done = {k.adjustment_hash for k in self.links(request_id)}
        for r in records:
            if r.adjustment_hash in done:
                continue
            self._link(
                request_id,
                "adjustment-logged",
                adjustment_hash=r.adjustment_hash,
                log_index=r.log_index,
                note=f"amends envelope {r.original.hex()}",
            )

    def _proven_events(
        self, agency: OfficeAgency, identity: str, first: int, last: int
    ) -> list[tuple[bytes, int, Event]]:
        """The subject's events at ``agency`` in ``[first, last]``, through a verified
        access answer: (envelope hash, leaf, event).  Raises :class:`InvalidMessage` if the
        answer does not verify."""
        subject = Subject(self.registry.slot_of(identity), self.params)
        for reg in self.registrations:
            subject.learn_agency(reg)
        inclusions = {
            rec.envelope_hash: self.aggregator.log_inclusion(rec.envelope_hash)
            for rec in self.aggregator.ledger.envelopes()
            if rec.agency == agency.id and first <= rec.period <= last
        }
        request = self.registry.access_request(identity, first, last)
        response = agency.answer_access(request)
        events = subject.verify_access(request, response, inclusions)
        resp = open_signed(
            response, AccessResponse, lambda m: self.agency_registrations[m.agency].public_key
        )
        where = [(pe.envelope_hash, op.index) for pe in resp.periods for op in pe.events]
        return [(h, i, e) for (h, i), e in zip(where, events, strict=True)]

    def _proven_event(
        self, agency: OfficeAgency, identity: str, envelope: bytes, leaf: int
    ) -> Event:
        """The subject's event at ``envelope#leaf``, through a verified access answer.

        Raises :class:`RightsRequestError` if the reference is not one of the subject's
        proven events (and :class:`InvalidMessage` if the agency's answer does not verify).
        """
        env = self.aggregator.ledger.envelope(envelope)
        assert env is not None  # _agency_of found it
        for h, i, e in self._proven_events(agency, identity, env.period, env.period):
            if (h, i) == (envelope, leaf):
                return e
        raise RightsRequestError(
            f"{envelope.hex()}#{leaf} is not one of the subject's records; take the ref from "
            "the access answer"
        )

    def _agency_of(self, envelope_hash: bytes) -> OfficeAgency:
        env = self.aggregator.ledger.envelope(envelope_hash)
        if env is None or env.agency not in self.agencies:
            raise RightsRequestError("the referenced envelope is not from a known agency")
        return self.agencies[env.agency]

    def _carry_out(self, agency: OfficeAgency, order: bytes) -> list[AdjustmentRecord]:
        """The registry order's adjustments, logged exactly once, and the agency caught up.

        If the ledger already holds the order's adjustments (an earlier attempt crashed
        after the aggregator's commit) nothing is sealed again; otherwise the agency seals
        them, the aggregator checks every one before logging any, and logs them in one
        transaction.  Then the agency recovers its state from the log (idempotent).
        """
        oh = digest(order)
        if not self.aggregator.adjustments_for_order(oh):
            # all or nothing: every adjustment is checked before any is logged
            self.aggregator.ingest_adjustments(agency.compensate(order))
        self.on_boundary("ledger")
        agency.recover(self._logged_of(agency))
        self.on_boundary("agency")
        return self.aggregator.adjustments_for_order(oh)

    def _logged_of(self, agency: OfficeAgency) -> list[tuple[bytes, bytes]]:
        return [
            (rec.adjustment, self.aggregator.adjustment_inclusion(rec.adjustment_hash))
            for rec in self.aggregator.adjustments()
            if rec.agency == agency.id
        ]

    def recover(self) -> list[int]:
        """Rights office, at startup: complete every request a crash left in flight.

        Every agency first catches up with the logged adjustments; then each open request
        with a recorded order is carried out (its order at most once: see
        :meth:`_carry_out`) and decided; a granted access request missing its
        ``access-verified`` link gets it.  A request that cannot complete (e.g. its order is
        no longer fresh for the agency) stays open with a ``recovery-failed`` link naming
        the reason.  Returns the ids completed.
        """
        for a in self.agencies.values():
            a.recover(self._logged_of(a))
        done = []
        for rid in self.desk.pending_intents():
            req = self.desk.get(rid)
            try:
                if req.kind == "repair":
                    self.decide_repair(rid, performance_proven=True)
                else:
                    self.grant_correction(rid)
            except (InvalidMessage, PscError) as exc:
                # one request that cannot complete must not stop the others: it stays open,
                # in flight, with the reason on record for the office to act on
                self._link(rid, "recovery-failed", note=str(exc))
                continue
            done.append(rid)
        for req in self.desk.requests(status="granted"):
            if req.kind in ("access", "explanation") and not any(
                k.action == "access-verified" for k in self.links(req.id)
            ):
                self._link(req.id, "access-verified", note="recorded at recovery")
                done.append(req.id)
        return done

    # -- credit repair ---------------------------------------------------------------------
    def open_repair(
        self, identity: str, rule: str, ref: str, *, note: str = "", ask: str = ""
    ) -> RightsRequest:
        """Open a credit-repair request: remove ``rule``'s record class for the subject early.

        ``ref`` is the event the subject cites (``envelope#leaf``, e.g. the latest record).
        """
        parse_ref(ref)
        self.registry.slot_of(identity)
        return self.desk.open(
            "repair", identity, ref=ref, rule=rule, details=_details(note=note, ask=ask) or None
        )

    def decide_repair(
        self,
        request_id: int,
        *,
        performance_proven: bool,
        event_date: dt.date | None = None,
    ) -> list[AdjustmentRecord]:
        """Decide a repair: if the desk's conditions hold, the agency cancels the class.

        ``event_date`` (the date the minimum publication period runs from) defaults to the
        latest of the subject's events of the rule that a verified access answer of the
        agency proves, so nobody has to be taken at their word for it.  The agency's
        adjustments (one per envelope holding the subject's live events of the rule) are
        sealed and checked by the aggregator *before* the desk decides, so a granted repair
        is never left without its effect; on a refusal nothing is logged.  Returns the
        logged adjustments (empty when refused).
        """
        req = self.desk.get(request_id)
        if req.kind != "repair" or req.status != "open" or req.rule is None:
            raise RightsRequestError(f"request {request_id} is not an open repair request")
        assert req.ref is not None
        intent = self.desk.intent(request_id)
        if intent is not None:  # a retry or the reconciler: the decision was made
            agency, order = self.agencies[intent[0]], intent[1]
            event_date = dt.date.fromisoformat(str(intent[2]["event_date"]))
            performance_proven = bool(intent[2]["performance_proven"])
        else:
            agency = self._agency_of(parse_ref(req.ref)[0])
            if event_date is None:
                now = self._current_period()
                longest = self.params.catalog.max_retention_months
                dates = [
                    e.date
                    for _, _, e in self._proven_events(agency, req.subject, now - longest, now)
                    if e.rule == req.rule
                ]
                if not dates:
                    raise RightsRequestError(
                        f"{agency.id} proves no event of {req.rule!r} for the subject to repair"
                    )
                event_date = max(dates)
            refusal = self.desk.repair_refusal(
                request_id, event_date=event_date, performance_proven=performance_proven
            )
            if refusal is not None:  # refused: recorded, nothing logged
                self.desk.decide_repair(
                    request_id,
                    event_date=event_date,
                    performance_proven=performance_proven,
                    by=self.by,
                )
                return []
            order = self.registry.adjustment_order(
                req.subject, agency.id, "repair", case=f"rights-{req.id}", rule=req.rule
            )
            for s in agency.compensate(order):  # it can be carried out: check before deciding
                self.aggregator.check_adjustment(s)
            self.desk.record_intent(
                request_id,
                agency.id,
                order,
                {"event_date": event_date.isoformat(), "performance_proven": performance_proven},
            )
        self.on_boundary("intent")
        records = self._carry_out(agency, order)
        self._link_all(request_id, records)
        self.on_boundary("links")
        # granted only now that its adjustments are logged
        self.desk.decide_repair(
            request_id, event_date=event_date, performance_proven=performance_proven, by=self.by
        )
        return records

    # -- consent withdrawal ----------------------------------------------------------------
    def withdraw_consent(
        self, identity: str, token_id: str, relying_party: str, *, ask: str = ""
    ) -> RightsRequest:
        """Withdraw a consent token: effective at once (the key holder's gate asks the desk)."""
        self.registry.slot_of(identity)
        return self.desk.open(
            "consent-withdrawal",
            identity,
            ref=token_id,
            details={"relying_party": relying_party, **_details(ask=ask)},
        )


def _details(**values: str) -> dict[str, str]:
    """The non-empty values, as a request's details."""
    return {k: v for k, v in values.items() if v}
