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
is idempotent: it is counted once).  An agency that restarts re-derives the openings of
every commitment it submitted (:meth:`Agency.restore <psc.parties.agency.Agency.restore>`):
the salts, dummy leaves and nonce of a period are drawn from a stream keyed by the desk's
own secret (32 random bytes kept in its outbox file, never sent) and the period,

    stream(period)[i] = HMAC-SHA256(key, "psc/agency-commitment/v1" || period || i)

so the same records give the same commitment, which must equal the logged one; a change
of the records since makes the restart fail loudly rather than answer with openings the
log does not hold.  The key is as secret as the salts it derives (they hide which other
subjects an agency holds records about).

What leaks: nothing beyond :meth:`Agency.submit <psc.parties.agency.Agency.submit>` (to
the aggregator) and :meth:`Agency.answer_access
<psc.parties.agency.Agency.answer_access>` (to the subject).  Raises
:class:`~psc.exceptions.InvalidMessage` for a malformed ask,
:class:`~psc.exceptions.EventError` for a record that is not the agency's, and whatever the
aggregator refuses with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from psc.catalog import period_index
from psc.events import Event
from psc.ledger.durable import open_durable
from psc.parties.agency import Agency
from psc.protocol import codec
from psc.protocol.service_messages import SubmitPeriod

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
_SECRET = "CREATE TABLE IF NOT EXISTS desk_secret (id INTEGER PRIMARY KEY CHECK (id = 0), key BLOB)"
_LABEL = b"psc/agency-commitment/v1"


def commitment_stream(key: bytes, period: int) -> Callable[[int], bytes]:
    """The agency's randomness for one period's commitment: ``HMAC-SHA256(key, label ||
    period || counter)`` blocks, a PRF under ``key`` (see the module doc)."""
    counter = 0

    def randbytes(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            msg = _LABEL + period.to_bytes(8, "big") + counter.to_bytes(8, "big")
            out += hmac.new(key, msg, hashlib.sha256).digest()
            counter += 1
        return out[:n]

    return randbytes


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

    def __init__(
        self,
        agency: Agency,
        records: RecordStore,
        aggregator: IngestLink,
        path: str,
        *,
        randbytes: Callable[[int], bytes] = os.urandom,
    ):
        """Open the desk on its outbox file ``path`` (created with mode 0600); re-derive the
        commitments of every period already receipted.  ``randbytes``: where the desk's
        secret key comes from the first time.  Raises :class:`InvalidMessage` if the
        records no longer give a logged commitment."""
        self.agency = agency
        self._records = records
        self._aggregator = aggregator
        if path != ":memory:" and not Path(path).exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._conn = open_durable(path, threads=True)
        self._conn.execute(_SUBMITTED)
        self._conn.execute(_SECRET)
        self._conn.execute("INSERT OR IGNORE INTO desk_secret VALUES (0, ?)", (randbytes(32),))
        self._key = bytes(self._conn.execute("SELECT key FROM desk_secret").fetchone()[0])
        self._lock = threading.Lock()
        for period, envelope, receipt in self._conn.execute(
            "SELECT period, envelope, receipt FROM submitted WHERE receipt IS NOT NULL"
        ).fetchall():
            self.agency.use_randbytes(commitment_stream(self._key, int(period)))
            self.agency.restore(
                self._records.period(int(period)), int(period), bytes(envelope), bytes(receipt)
            )

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
                self.agency.use_randbytes(commitment_stream(self._key, ask.period))
                envelope = self.agency.submit(self._records.period(ask.period), ask.period)
                self._conn.execute(
                    "INSERT INTO submitted VALUES (?, ?, NULL)", (ask.period, envelope)
                )
            else:
                envelope = bytes(row[0])
            receipt = self._aggregator.ingest(envelope)
            if ask.period in self.agency._committed:
                self.agency.accept_receipt(receipt)
            else:  # sent before a restart: re-derive the commitment, check the receipt
                self.agency.use_randbytes(commitment_stream(self._key, ask.period))
                self.agency.restore(self._records.period(ask.period), ask.period, envelope, receipt)
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
