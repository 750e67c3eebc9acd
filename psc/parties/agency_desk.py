"""An agency at work: its own records, its operator's asks, the aggregator at the other end.

Normative: ``protocols/service.md`` §2, §4 and §9.  :class:`RecordStore` is the agency's back office
(a SQLite table of its official records, already addressed by slot: the registry told
the agency the slots of the people it holds records about, ``protocols/setup.md``); in
the simulation the city writes it.  :class:`AgencyDesk` turns an operator's
:class:`~psc.protocol.service_messages.SubmitPeriod` into the period's sealed envelope
(:meth:`Agency.submit <psc.parties.agency.Agency.submit>`), sends it to the aggregator
through an :class:`IngestLink` (in process or over HTTP), checks the receipt and returns
it.

Durability and retries: the envelope is stored (``submitted``) before it is sent and the
receipt once it is checked, so asking again for a period returns the stored receipt, and
an envelope whose receipt was lost is sent again byte for byte (the aggregator's ingest
is idempotent: it is counted once).  An agency that restarts keeps its envelopes and
receipts, but not the openings of its commitments (they live in
:class:`~psc.parties.agency.Agency`'s memory), so it cannot answer access requests for
periods it submitted before the restart: a known gap, written in ``protocols/service.md``.

What leaks: nothing beyond :meth:`Agency.submit <psc.parties.agency.Agency.submit>` (to
the aggregator) and :meth:`Agency.answer_access
<psc.parties.agency.Agency.answer_access>` (to the subject).  Raises
:class:`~psc.exceptions.InvalidMessage` for a malformed ask,
:class:`~psc.exceptions.EventError` for a record that is not the agency's, and whatever the
aggregator refuses with.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from psc.catalog import period_index
from psc.events import Event
from psc.exceptions import InvalidMessage
from psc.parties.agency import Agency
from psc.protocol import codec
from psc.protocol.messages import IngestReceipt
from psc.protocol.service_messages import SubmitPeriod
from psc.protocol.signing import digest, open_signed

_RECORDS = """CREATE TABLE IF NOT EXISTS records (
    period INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    rule TEXT NOT NULL,
    date TEXT NOT NULL,
    evidence TEXT NOT NULL
)"""
_SUBMITTED = """CREATE TABLE IF NOT EXISTS submitted (
    period INTEGER PRIMARY KEY,
    envelope BLOB NOT NULL,
    receipt BLOB
)"""


class IngestLink(Protocol):
    """What an agency needs of the aggregator (in process or over HTTP)."""

    def ingest(self, sealed: bytes) -> bytes: ...


class RecordStore:
    """An agency's records, one row per event, in a SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn.execute(_RECORDS)

    @staticmethod
    def write(path: str | Path, events: Iterable[Event]) -> int:
        """Write ``events`` into a new record file at ``path``; returns how many."""
        conn = sqlite3.connect(str(path))
        try:
            with conn:
                conn.execute(_RECORDS)
                rows = [
                    (e.period, e.subject, e.rule, e.date.isoformat(), e.evidence) for e in events
                ]
                conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", rows)
            return len(rows)
        finally:
            conn.close()

    def period(self, period: int) -> list[Event]:
        """The records of ``period``, as events (dates checked against the period)."""
        rows = self._conn.execute(
            "SELECT slot, rule, date, evidence FROM records WHERE period = ? ORDER BY rowid",
            (period,),
        ).fetchall()
        events = [Event(int(s), str(r), dt.date.fromisoformat(d), str(ev)) for s, r, d, ev in rows]
        for e in events:
            if period_index(e.date) != period:
                raise ValueError(f"record {e!r} is filed under period {period} but is not in it")
        return events

    def close(self) -> None:
        self._conn.close()


class AgencyDesk:
    """An :class:`~psc.parties.agency.Agency` with its records and its durable outbox."""

    def __init__(self, agency: Agency, records: RecordStore, aggregator: IngestLink, path: str):
        self.agency = agency
        self._records = records
        self._aggregator = aggregator
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SUBMITTED)
        self._lock = threading.Lock()

    def submit_period(self, data: bytes) -> bytes:
        """Operator: submit the period a :class:`SubmitPeriod` names; the sealed receipt."""
        ask = codec.decode(data, SubmitPeriod)
        with self._lock:
            row = self._conn.execute(
                "SELECT envelope, receipt FROM submitted WHERE period = ?", (ask.period,)
            ).fetchone()
            if row is not None and row[1] is not None:
                return bytes(row[1])
            if row is None:
                envelope = self.agency.submit(self._records.period(ask.period), ask.period)
                self._conn.execute(
                    "INSERT INTO submitted VALUES (?, ?, NULL)", (ask.period, envelope)
                )
            else:
                envelope = bytes(row[0])
            receipt = self._aggregator.ingest(envelope)
            if ask.period in self.agency._committed:
                self.agency.accept_receipt(receipt)
            else:  # sent before a restart: check the receipt against the stored envelope
                r = open_signed(receipt, IngestReceipt, lambda m: self.agency.params.aggregator_key)
                if (r.agency, r.period, r.envelope_hash) != (
                    self.agency.id,
                    ask.period,
                    digest(envelope),
                ):
                    raise InvalidMessage("receipt is for an envelope this agency did not submit")
            self._conn.execute(
                "UPDATE submitted SET receipt = ? WHERE period = ?", (receipt, ask.period)
            )
            return receipt

    def answer_access(self, sealed_request: bytes) -> bytes:
        """A subject's registry-signed access request: its events with proofs."""
        return self.agency.answer_access(sealed_request)

    def close(self) -> None:
        self._conn.close()
        self._records.close()


__all__ = ["AgencyDesk", "IngestLink", "RecordStore"]
