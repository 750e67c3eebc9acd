"""The subject: its own grade, and its own events with inclusion proofs (access).

Normative: ``protocols/access.md``.  Holds its slot and what access returns to it.  Never:
others' data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from psc.catalog import period_index
from psc.events import Event, EventTable
from psc.exceptions import (
    InvalidMessage,
)
from psc.hazmat import merkle
from psc.parties.key_holder import _logged_entry
from psc.parties.registry import open_agency_registration
from psc.protocol import codec
from psc.protocol.messages import (
    AccessRequest,
    AccessResponse,
    AgencyRegistration,
    LogEntry,
    SignedMessage,
)
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.signing import digest, open_signed

__all__ = [
    "Subject",
]


@dataclass
class Subject:
    """A scored person's client: verifies what agencies return and recomputes its score.

    Holds its slot and the registry-signed agency registrations (public).  Sees only its
    own events.
    """

    slot: int
    params: ProtocolParameters
    agencies: dict[str, AgencyRegistration] = field(default_factory=dict)

    def learn_agency(self, sealed_registration: bytes) -> None:
        """Subject: trust an agency's key because the registry signed it."""
        reg = open_agency_registration(sealed_registration, self.params)
        self.agencies[reg.agency] = reg

    def verify_access(
        self,
        sealed_request: bytes,
        sealed_response: bytes,
        log_inclusions: Mapping[bytes, bytes],
    ) -> list[Event]:
        """Subject: verify an agency's access answer; the events it proves.

        ``log_inclusions`` maps envelope hashes to the aggregator's encoded
        :class:`LogInclusion` of their log entries; pass those of *every* logged envelope
        (:meth:`Aggregator.log_inclusion`), so that a period the agency leaves out is
        noticed.  Checks: the agency's signature (via its registry-signed registration);
        that the answer is to this request and this slot, for periods in its range; for
        every period, the aggregator-signed log inclusion of a ``submission`` entry by this
        agency for that period, whose commitment root and size the events are proven
        against; that every logged envelope of this agency in the range is answered for;
        every event's rule belongs to the agency and its date to the period; every salted
        leaf's inclusion proof.  Raises :class:`InvalidMessage` on any failure (a tampered
        or incomplete answer).  What it cannot show: that no event *within* an answered
        period was left out; the recomputed grade is compared with the revealed one for
        that (``protocols/access.md`` §4).
        """
        resp = open_signed(sealed_response, AccessResponse, self._agency_key)
        req = codec.decode(codec.decode(sealed_request, SignedMessage).body, AccessRequest)
        if resp.request_hash != digest(sealed_request) or resp.subject != self.slot:
            raise InvalidMessage("access response does not answer this request")
        if any(not req.first_period <= pe.period <= req.last_period for pe in resp.periods):
            raise InvalidMessage("access response holds a period that was not asked for")
        logged: dict[bytes, LogEntry] = {}
        for h, data in log_inclusions.items():
            entry = _logged_entry(self.params, data)
            if entry.kind != "submission" or entry.digest != h:
                raise InvalidMessage("a log inclusion does not hold the envelope it is filed under")
            logged[h] = entry
        expected = {
            h
            for h, e in logged.items()
            if e.party == resp.agency and req.first_period <= e.period <= req.last_period
        }
        if expected != {pe.envelope_hash for pe in resp.periods}:
            raise InvalidMessage(
                "access response does not cover exactly the agency's logged envelopes"
            )
        cat_agency = self.agencies[resp.agency].catalog_agency
        events: list[Event] = []
        for pe in resp.periods:
            entry = logged[pe.envelope_hash]
            if (
                entry.party != resp.agency
                or entry.period != pe.period
                or entry.commitment_size != pe.commitment_size
            ):
                raise InvalidMessage("access response does not match the logged envelope")
            for op in pe.events:
                try:
                    date = dt.date.fromisoformat(op.date)
                    rule = self.params.catalog.rule(op.rule)
                    leaf = merkle.commitment_leaf(self.slot, op.rule, op.evidence, date, op.salt)
                except (ValueError, KeyError) as exc:
                    raise InvalidMessage("access response holds a malformed event") from exc
                if rule.agency != cat_agency or period_index(date) != pe.period:
                    raise InvalidMessage("access response holds an event this envelope cannot")
                merkle.verify_inclusion(
                    leaf, op.index, pe.commitment_size, op.proof, entry.commitment_root
                )
                events.append(Event(self.slot, op.rule, date, op.evidence))
        return events

    def _agency_key(self, resp: AccessResponse) -> bytes:
        reg = self.agencies.get(resp.agency)
        if reg is None:
            raise InvalidMessage("access response from an unknown agency")
        return reg.public_key

    def explain(self, events: Sequence[Event], period: int) -> tuple[int, str]:
        """Subject: recompute its own score and grade with the oracle from proven events."""
        from psc.oracle import score

        mine = [Event(0, e.rule, e.date, e.evidence) for e in events]
        table = EventTable.from_events(self.params.catalog, mine, 1)
        s = score(table, period)
        return int(s.score[0]), self.params.catalog.labels[int(s.grade[0])]
