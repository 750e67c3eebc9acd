"""The aggregator's durable state: SQLite in WAL mode behind a small storage interface.

Held by the **Aggregator** only.  What it stores (``protocols/ingest.md``):

* ``parties``: registered agencies and relying parties, their Ed25519 keys and the
  registry-signed registration they came with;
* ``catalogs``: catalog versions (hash and canonical text) the ledger was set up for;
* ``envelopes``: every accepted signed envelope, verbatim, with its log index and the
  signed receipt that was returned (so a replay gets the very same receipt);
* ``nonces``: (agency, nonce) -> envelope, for replay refusal;
* ``accumulators``: per (period, retention class, label) the serialized packed Paillier
  sum of the accepted ciphertexts (label ``""`` for deltas, the cap label for cap
  counters) and how many envelopes contributed;
* ``reveals``: one record per grade response released (requester, purpose, period, slot
  count, hashes and the key holder's signed notice; never the grades, which the aggregator
  never sees);
* the transparency log tables, owned by :class:`psc.ledger.translog.TransparencyLog` on the same
  connection, so one transaction covers log and state.

Nothing here is secret from an auditor: ciphertexts, hashes and public metadata only.

Transactions: :meth:`Ledger.transaction` is the only way to write.  ``BEGIN IMMEDIATE``
takes the write lock up front; an exception inside rolls everything back (log leaves
included); the commit is durable (``synchronous=FULL``) before the method returns, so a
caller may acknowledge only after :meth:`transaction` exits.
"""

from __future__ import annotations

import hashlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.ledger.translog import SignedTreeHead, TransparencyLog

SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS parties ("
    " party TEXT PRIMARY KEY, role TEXT NOT NULL, catalog_agency TEXT NOT NULL,"
    " public_key BLOB NOT NULL, purposes TEXT NOT NULL, registration BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS catalogs ("
    " version_hash TEXT PRIMARY KEY, name TEXT NOT NULL, canonical TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS envelopes ("
    " envelope_hash BLOB PRIMARY KEY, agency TEXT NOT NULL, period INTEGER NOT NULL,"
    " nonce BLOB NOT NULL, log_index INTEGER NOT NULL, envelope BLOB NOT NULL,"
    " receipt BLOB NOT NULL, UNIQUE (agency, period))",
    "CREATE TABLE IF NOT EXISTS nonces ("
    " agency TEXT NOT NULL, nonce BLOB NOT NULL, envelope_hash BLOB NOT NULL,"
    " PRIMARY KEY (agency, nonce))",
    "CREATE TABLE IF NOT EXISTS accumulators ("
    " period INTEGER NOT NULL, retention TEXT NOT NULL, label TEXT NOT NULL,"
    " ciphertext BLOB NOT NULL, bound INTEGER NOT NULL, contributions INTEGER NOT NULL,"
    " PRIMARY KEY (period, retention, label))",
    "CREATE TABLE IF NOT EXISTS reveals ("
    " id INTEGER PRIMARY KEY, request_hash BLOB NOT NULL UNIQUE, response_hash BLOB NOT NULL,"
    " requester TEXT NOT NULL, purpose TEXT NOT NULL, period INTEGER NOT NULL,"
    " slots INTEGER NOT NULL, log_index INTEGER NOT NULL, notice BLOB NOT NULL)",
)


@dataclass(frozen=True)
class PartyRecord:
    """A registered party: ``role`` is ``"agency"`` or ``"relying-party"``."""

    party: str
    role: str
    catalog_agency: str  # for agencies: whose rules they apply; "" otherwise
    public_key: bytes
    purposes: tuple[str, ...]  # for relying parties: registered purposes
    registration: bytes  # the registry-signed registration, verbatim


@dataclass(frozen=True)
class EnvelopeRecord:
    """An accepted envelope and the receipt it got."""

    envelope_hash: bytes
    agency: str
    period: int
    nonce: bytes
    log_index: int
    envelope: bytes
    receipt: bytes


@dataclass(frozen=True)
class AccumulatorRecord:
    """The encrypted sum of one (period, retention class, label)."""

    period: int
    retention: str
    label: str  # "" for deltas, else the cap label
    ciphertext: bytes  # PackedPaillier.serialize of the sum
    bound: int  # public bound on |slot| of the sum (set by the aggregator)
    contributions: int  # envelopes added in


@dataclass(frozen=True)
class RevealRecord:
    """One released grade response (no grades: hashes and counts only)."""

    request_hash: bytes
    response_hash: bytes
    requester: str
    purpose: str
    period: int
    slots: int
    log_index: int
    notice: bytes  # the key holder's signed RevealNotice, verbatim


class Ledger(ABC):
    """The storage interface the aggregator needs; :class:`SQLiteLedger` implements it.

    Every write method must be called inside :meth:`transaction`.
    """

    @property
    @abstractmethod
    def log(self) -> TransparencyLog:
        """The transparency log sharing this ledger's transactions."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Context manager: all writes inside commit together or not at all.

        An exception inside, or a failed ``COMMIT``, rolls everything back and re-raises.
        """

    # parties and catalogs
    @abstractmethod
    def put_party(self, record: PartyRecord) -> None: ...
    @abstractmethod
    def party(self, party: str) -> PartyRecord | None: ...
    @abstractmethod
    def parties(self, role: str) -> list[PartyRecord]: ...
    @abstractmethod
    def put_catalog(self, version_hash: str, name: str, canonical: str) -> None: ...
    @abstractmethod
    def catalog_versions(self) -> list[str]: ...

    # envelopes and nonces
    @abstractmethod
    def put_envelope(self, record: EnvelopeRecord) -> None:
        """Store an envelope and claim its (agency, nonce)."""

    @abstractmethod
    def envelope(self, envelope_hash: bytes) -> EnvelopeRecord | None: ...
    @abstractmethod
    def envelope_for(self, agency: str, period: int) -> EnvelopeRecord | None: ...
    @abstractmethod
    def envelopes(self) -> list[EnvelopeRecord]: ...
    @abstractmethod
    def nonce_owner(self, agency: str, nonce: bytes) -> bytes | None: ...
    @abstractmethod
    def envelope_count(self) -> int:
        """How many envelopes were accepted (accumulators change only when this does)."""

    # accumulators
    @abstractmethod
    def accumulator(self, period: int, retention: str, label: str) -> AccumulatorRecord | None: ...
    @abstractmethod
    def put_accumulator(self, record: AccumulatorRecord) -> None: ...
    @abstractmethod
    def accumulators(self) -> list[AccumulatorRecord]: ...

    # reveals
    @abstractmethod
    def put_reveal(self, record: RevealRecord) -> None: ...
    @abstractmethod
    def reveal(self, request_hash: bytes) -> RevealRecord | None: ...
    @abstractmethod
    def reveals(self) -> list[RevealRecord]: ...


class SQLiteLedger(Ledger):
    """:class:`Ledger` on one SQLite database in WAL mode (``":memory:"`` for tests).

    ``signer`` is the aggregator's Ed25519 key, used by the log to sign tree heads;
    ``clock_ms`` stamps them (milliseconds since the epoch; inject a fixed clock in tests).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        signer: Ed25519PrivateKey | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.path = str(path)
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        with self.transaction():
            for stmt in _SCHEMA:
                self._conn.execute(stmt)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                (str(SCHEMA_VERSION),),
            )
            kwargs = {} if clock_ms is None else {"clock": clock_ms}
            self._log = TransparencyLog(self._conn, signer, **kwargs)
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != str(SCHEMA_VERSION):
            raise ValueError(
                f"{self.path}: ledger schema {row[0] if row else '?'} is not version "
                f"{SCHEMA_VERSION}; use a fresh database file"
            )

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection (read-only use: audits, ``psc log verify``)."""
        return self._conn

    @property
    def log(self) -> TransparencyLog:
        return self._log

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._depth:  # nested: join the outer transaction
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            # COMMIT itself failed (a deferred constraint, SQLITE_FULL, an I/O error): the
            # transaction may still be open; roll it back so nothing of it stays and the
            # next BEGIN IMMEDIATE works.
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    def _write(self) -> None:
        if not self._depth:
            raise RuntimeError("ledger writes must happen inside ledger.transaction()")

    # -- parties and catalogs -------------------------------------------------------------
    def put_party(self, record: PartyRecord) -> None:
        self._write()
        self._conn.execute(
            "INSERT INTO parties VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.party,
                record.role,
                record.catalog_agency,
                record.public_key,
                "\n".join(record.purposes),
                record.registration,
            ),
        )

    @staticmethod
    def _party(row: tuple[Any, ...]) -> PartyRecord:
        party, role, cat_agency, key, purposes, reg = row
        return PartyRecord(
            str(party),
            str(role),
            str(cat_agency),
            bytes(key),
            tuple(p for p in purposes.split("\n") if p),
            bytes(reg),
        )

    def party(self, party: str) -> PartyRecord | None:
        row = self._conn.execute("SELECT * FROM parties WHERE party = ?", (party,)).fetchone()
        return None if row is None else self._party(row)

    def parties(self, role: str) -> list[PartyRecord]:
        rows = self._conn.execute("SELECT * FROM parties WHERE role = ? ORDER BY party", (role,))
        return [self._party(r) for r in rows]

    def put_catalog(self, version_hash: str, name: str, canonical: str) -> None:
        self._write()
        self._conn.execute(
            "INSERT OR IGNORE INTO catalogs VALUES (?, ?, ?)", (version_hash, name, canonical)
        )

    def catalog_versions(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT version_hash FROM catalogs")]

    # -- envelopes ------------------------------------------------------------------------
    def put_envelope(self, record: EnvelopeRecord) -> None:
        self._write()
        self._conn.execute(
            "INSERT INTO envelopes VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.envelope_hash,
                record.agency,
                record.period,
                record.nonce,
                record.log_index,
                record.envelope,
                record.receipt,
            ),
        )
        self._conn.execute(
            "INSERT INTO nonces VALUES (?, ?, ?)",
            (record.agency, record.nonce, record.envelope_hash),
        )

    _ENV = (
        "SELECT envelope_hash, agency, period, nonce, log_index, envelope, receipt FROM envelopes"
    )

    @staticmethod
    def _env(row: tuple[Any, ...]) -> EnvelopeRecord:
        h, agency, period, nonce, idx, env, receipt = row
        return EnvelopeRecord(
            bytes(h), str(agency), int(period), bytes(nonce), int(idx), bytes(env), bytes(receipt)
        )

    def envelope(self, envelope_hash: bytes) -> EnvelopeRecord | None:
        row = self._conn.execute(
            self._ENV + " WHERE envelope_hash = ?", (envelope_hash,)
        ).fetchone()
        return None if row is None else self._env(row)

    def envelope_for(self, agency: str, period: int) -> EnvelopeRecord | None:
        row = self._conn.execute(
            self._ENV + " WHERE agency = ? AND period = ?", (agency, period)
        ).fetchone()
        return None if row is None else self._env(row)

    def envelopes(self) -> list[EnvelopeRecord]:
        return [self._env(r) for r in self._conn.execute(self._ENV + " ORDER BY log_index")]

    def envelope_count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0])

    def nonce_owner(self, agency: str, nonce: bytes) -> bytes | None:
        row = self._conn.execute(
            "SELECT envelope_hash FROM nonces WHERE agency = ? AND nonce = ?", (agency, nonce)
        ).fetchone()
        return None if row is None else bytes(row[0])

    # -- accumulators ---------------------------------------------------------------------
    _ACC = "SELECT period, retention, label, ciphertext, bound, contributions FROM accumulators"

    @staticmethod
    def _acc(row: tuple[Any, ...]) -> AccumulatorRecord:
        p, r, label, ct, bound, n = row
        return AccumulatorRecord(int(p), str(r), str(label), bytes(ct), int(bound), int(n))

    def accumulator(self, period: int, retention: str, label: str) -> AccumulatorRecord | None:
        row = self._conn.execute(
            self._ACC + " WHERE period = ? AND retention = ? AND label = ?",
            (period, retention, label),
        ).fetchone()
        return None if row is None else self._acc(row)

    def put_accumulator(self, record: AccumulatorRecord) -> None:
        self._write()
        self._conn.execute(
            "INSERT OR REPLACE INTO accumulators VALUES (?, ?, ?, ?, ?, ?)",
            (
                record.period,
                record.retention,
                record.label,
                record.ciphertext,
                record.bound,
                record.contributions,
            ),
        )

    def accumulators(self) -> list[AccumulatorRecord]:
        return [
            self._acc(r)
            for r in self._conn.execute(self._ACC + " ORDER BY period, retention, label")
        ]

    # -- reveals --------------------------------------------------------------------------
    _REV = (
        "SELECT request_hash, response_hash, requester, purpose, period, slots, log_index,"
        " notice FROM reveals"
    )

    @staticmethod
    def _rev(row: tuple[Any, ...]) -> RevealRecord:
        rq, rs, who, purpose, period, slots, idx, notice = row
        return RevealRecord(
            bytes(rq),
            bytes(rs),
            str(who),
            str(purpose),
            int(period),
            int(slots),
            int(idx),
            bytes(notice),
        )

    def put_reveal(self, record: RevealRecord) -> None:
        self._write()
        self._conn.execute(
            "INSERT INTO reveals (request_hash, response_hash, requester, purpose, period,"
            " slots, log_index, notice) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.request_hash,
                record.response_hash,
                record.requester,
                record.purpose,
                record.period,
                record.slots,
                record.log_index,
                record.notice,
            ),
        )

    def reveal(self, request_hash: bytes) -> RevealRecord | None:
        row = self._conn.execute(self._REV + " WHERE request_hash = ?", (request_hash,)).fetchone()
        return None if row is None else self._rev(row)

    def reveals(self) -> list[RevealRecord]:
        return [self._rev(r) for r in self._conn.execute(self._REV + " ORDER BY id")]

    def state_digest(self) -> bytes:
        """SHA-256 over every row of every table, in a fixed order: equal digests, equal state.

        For audits and tests ("a rejected message changes nothing").
        """
        h = hashlib.sha256()
        tables = [
            r[0]
            for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for t in tables:
            h.update(f"table {t}\n".encode())
            ncols = len(self._conn.execute(f'PRAGMA table_info("{t}")').fetchall())
            order = ", ".join(str(i + 1) for i in range(ncols))
            for row in self._conn.execute(f'SELECT * FROM "{t}" ORDER BY {order}'):
                h.update(repr(row).encode() + b"\n")
        return h.digest()

    def tree_head(self) -> SignedTreeHead | None:
        """The latest signed tree head, if any."""
        return self._log.latest_tree_head()
