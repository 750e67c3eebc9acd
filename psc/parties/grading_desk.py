"""The grading authority's desk: signed answers to agencies and requesters, retry-safe.

Normative: ``protocols/he-grading.md`` section 3.5 (the answers) and
``protocols/service.md`` §2, §4 (the routes).  The
:class:`~psc.parties.grading_authority.GradingAuthority` verifies, logs, charges and
decrypts; the desk turns its results into sealed messages a remote party can check:

* :meth:`GradingDesk.log_submission`: a signed :class:`~psc.protocol.he_messages.HeLogReceipt`
  (the submission's hash, its position in the grading log and the head after it).  It is a
  function of the log alone, so the same submission sent again (a lost answer) gets the
  same bytes back and is logged once;
* :meth:`GradingDesk.grades`: a signed :class:`~psc.protocol.he_messages.HeGradeResponse`
  bound to the SHA-256 of the sealed request, **stored** (SQLite, synchronous) before it
  leaves: the same request bytes again get the stored bytes, nothing is decrypted or charged
  twice.

What the desk keeps: each answered request's hash and sealed response (the authority's
query ledger holds the log and the charges).  A crash after the authority charged a request
and before its response was stored leaves the charge and no response: the same request is
then refused (:class:`~psc.exceptions.ReplayedNonce`) and never decrypted a second time,
since a second flooded decryption for one charge would break the query count the flooding
bound relies on; the requester signs a new request (fail closed: budget, not privacy, is
lost).  Leaks: to the requester, its grades; to whoever replays a captured request, the same
response (outside loopback the channel must be TLS).  Raises whatever the authority refuses
with (see :mod:`psc.parties.grading_authority`).
"""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.ledger.durable import open_durable
from psc.parties.grading_authority import GradingAuthority
from psc.protocol import codec
from psc.protocol.he_messages import HeGradeResponse, HeLogReceipt
from psc.protocol.messages import GradeRequest, SignedMessage
from psc.protocol.signing import digest, seal

_SCHEMA = """CREATE TABLE IF NOT EXISTS he_answers (
    request_hash BLOB PRIMARY KEY,
    response BLOB NOT NULL
)"""


class GradingDesk:
    """The authority ``authority`` answering with signed messages as ``ident``.

    ``path``: the SQLite file of the sealed responses (``":memory:"`` in tests); calls are
    serialized (one request at a time, as the authority's state requires).
    """

    def __init__(
        self, authority: GradingAuthority, ident: str, key: Ed25519PrivateKey, path: str
    ) -> None:
        self.authority = authority
        self.ident = ident
        self._key = key
        self._conn = open_durable(path, threads=True)
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def public_context(self) -> bytes:
        """The published CKKS context (what agencies encrypt under); public."""
        return self.authority.public.data

    def log_submission(self, sealed: bytes) -> bytes:
        """Log an agency's signed ``HeSubmission`` (verified by the authority); the signed
        :class:`HeLogReceipt`.  The same bytes again: the same receipt, logged once."""
        with self._lock:
            index = self._index_of(sealed)
            if index is None:
                self.authority.log_submission(sealed)
                index = len(self.authority.log.entries) - 1
            return self._receipt(index)

    def _index_of(self, sealed: bytes) -> int | None:
        for i, (kind, data) in enumerate(self.authority.log.entries):
            if kind == "he-submission" and data == sealed:
                return i
        return None

    def _receipt(self, index: int) -> bytes:
        _, data = self.authority.log.entries[index]
        receipt = HeLogReceipt(self.ident, digest(data), index, self.authority.log.heads[index])
        return seal(receipt, self._key)

    def grades(self, sealed_request: bytes) -> bytes:
        """Answer a signed ``GradeRequest`` with the signed :class:`HeGradeResponse`
        (stored before it is returned; the same bytes again return it unchanged)."""
        with self._lock:
            h = digest(sealed_request)
            row = self._conn.execute(
                "SELECT response FROM he_answers WHERE request_hash = ?", (h,)
            ).fetchone()
            if row is not None:
                return bytes(row[0])
            grades = self.authority.reveal(sealed_request)
            req = codec.decode(codec.decode(sealed_request, SignedMessage).body, GradeRequest)
            log = self.authority.log
            response = seal(
                HeGradeResponse(
                    self.ident,
                    h,
                    req.requester,
                    req.period,
                    tuple(req.slots),
                    tuple(grades[s] for s in req.slots),
                    self.authority.public.fingerprint,
                    len(log.entries) - 1,
                    log.head,
                ),
                self._key,
            )
            self._conn.execute("INSERT INTO he_answers VALUES (?, ?)", (h, response))
            return response

    def answered(self) -> int:
        """How many responses the desk has stored."""
        return int(self._conn.execute("SELECT COUNT(*) FROM he_answers").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


__all__ = ["GradingDesk"]
