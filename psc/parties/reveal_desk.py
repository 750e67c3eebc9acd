"""The key holder's reveal desk: one grade request in, the logged grade response out.

Normative: ``protocols/reveal-baseline.md`` (the steps) and ``protocols/service.md`` §2, §4
(the route).  A requester (the registry on residents' behalf, a relying party) sends its
sealed :class:`~psc.protocol.messages.GradeRequest`; the desk runs the reveal's steps with
the aggregator through an :class:`AggregatorLink` (in process, or
:class:`~psc.service.client.HttpAggregator` over HTTP: the desk cannot tell):

1. ``prepare_reveal``: the aggregator signs a reveal request carrying the live blocks;
2. :meth:`KeyHolder.answer <psc.parties.key_holder.KeyHolder.answer>`: the key holder
   verifies everything (signatures, purpose, consent, freshness, the blocks against the
   public log) and decrypts through its revealer (trusted key or k-of-n committee);
3. the answer (response and notice) is **stored** before anything leaves;
4. ``release``: the aggregator logs the notice (hashes and a count, never a grade);
5. :meth:`KeyHolder.check_logged <psc.parties.key_holder.KeyHolder.check_logged>`: only a
   response whose notice the log holds is returned.

Retries are safe at every step: the same request bytes again (a lost answer, a crash of
the desk after step 3) resume at step 4 with the stored answer, so nothing is decrypted or
spent twice and the aggregator logs the notice once (its ``release`` is idempotent).  A
different request for the same slots is a new request (the committee answers it from its
stored release, spending nothing; the trusted key holder decrypts again).

What the desk keeps (its SQLite file): each answered request's hash, sealed response and
sealed notice.  What leaks: to the requester, its grades; to the aggregator, the notice;
to whoever replays a captured request, the same response (outside loopback the channel
must be TLS, and a response is meant for the requester only).  Raises whatever the key
holder or the aggregator refuse with (:class:`~psc.exceptions.InvalidMessage`,
:class:`~psc.exceptions.PolicyViolation`, :class:`~psc.exceptions.UnknownParty`, ...).
"""

from __future__ import annotations

import threading
from typing import Protocol

from psc.ledger.durable import open_durable
from psc.parties.key_holder import KeyHolder, RevealAnswer
from psc.protocol.signing import digest

_SCHEMA = """CREATE TABLE IF NOT EXISTS desk_answers (
    request_hash BLOB PRIMARY KEY,
    response BLOB NOT NULL,
    notice BLOB NOT NULL
)"""


class AggregatorLink(Protocol):
    """What the desk needs of the aggregator (in process or over HTTP)."""

    def prepare_reveal(self, sealed_request: bytes) -> bytes: ...

    def release(self, sealed_notice: bytes) -> bytes: ...


class RevealDesk:
    """A key holder answering grade requests end to end (see the module doc).

    ``path``: the desk's SQLite file (``":memory:"`` in tests).  Calls are serialized: a
    reveal is one transaction of the key holder's state.
    """

    def __init__(self, key_holder: KeyHolder, aggregator: AggregatorLink, path: str) -> None:
        self.key_holder = key_holder
        self._aggregator = aggregator
        self._conn = open_durable(path, threads=True)
        self._conn.execute(_SCHEMA)
        self._lock = threading.Lock()

    def grades(self, sealed_request: bytes) -> bytes:
        """The sealed :class:`~psc.protocol.messages.GradeResponse` to ``sealed_request``,
        once the aggregator has logged its notice (steps 1-5 of the module doc)."""
        with self._lock:
            h = digest(sealed_request)
            answer = self._stored(h)
            if answer is None:
                prepared = self._aggregator.prepare_reveal(sealed_request)
                answer = self.key_holder.answer(prepared)
                self._conn.execute(
                    "INSERT INTO desk_answers VALUES (?, ?, ?)",
                    (h, answer.response, answer.notice),
                )
            logged = self._aggregator.release(answer.notice)
            self.key_holder.check_logged(answer, logged)
            return answer.response

    def _stored(self, request_hash: bytes) -> RevealAnswer | None:
        row = self._conn.execute(
            "SELECT response, notice FROM desk_answers WHERE request_hash = ?", (request_hash,)
        ).fetchone()
        return None if row is None else RevealAnswer(bytes(row[0]), bytes(row[1]))

    def answered(self) -> int:
        """How many requests the desk has answered (and stored)."""
        return int(self._conn.execute("SELECT COUNT(*) FROM desk_answers").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


__all__ = ["AggregatorLink", "RevealDesk"]
