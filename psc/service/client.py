"""HTTP clients with the same interfaces as the in-process parties.

Normative: ``protocols/service.md``.  :class:`HttpAggregator` has the aggregator's message
methods (``ingest``, ``prepare_reveal``, ``release``, ``log_inclusion``) and
:class:`HttpMemberLink` is a :class:`~psc.parties.committee.transport.MemberLink`, so a
party that talks to a peer cannot tell whether the peer is in this process or behind
HTTP: bytes in, bytes out, and a refusal raises the same exception class
(:data:`psc.service.http.RAISABLE`) with the peer's message.

Timeouts: every call has a connect and a read timeout.  Retries: a call that did not get
an answer (connection refused or reset, timeout, 502/503/504) is sent again, with the same
bytes, up to ``retries`` times with exponential backoff; every route a client retries is
idempotent on the server (an envelope is counted once; a member answers a repeated
request with the same share), so a retry never counts anything twice.  A refusal (4xx) is
never retried.  Out of retries: :class:`PeerUnavailable`.
"""

from __future__ import annotations

import socket
import time

import httpx

from psc.exceptions import ConsentRefused, DeploymentError
from psc.parties.committee.transport import MemberLink
from psc.service.http import MEDIA_TYPE, RAISABLE

#: Statuses a client retries: the peer did not process the request, or is restarting.
RETRY_STATUSES = frozenset({502, 503, 504})


class PeerUnavailable(ConnectionError):
    """A peer did not answer within the client's retries (network, crash, restart)."""


class RemoteError(RuntimeError):
    """A peer failed in a way that is not a psc refusal (an opaque 500)."""


class HttpPeer:
    """One peer's base URL, with timeouts and retries (one connection pool per peer).

    Concurrent calls share the pool (httpx's client is thread-safe); :meth:`close` ends it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 5.0,
        retries: int = 4,
        backoff: float = 0.2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        # TCP_NODELAY: a request's headers and body go out as separate writes; with Nagle's
        # algorithm the body would wait for the server's delayed ACK (about 40 ms a call)
        transport = httpx.HTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        self._client = httpx.Client(
            transport=transport,
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            headers={"accept": f"{MEDIA_TYPE}, application/json"},
        )

    def post(self, path: str, body: bytes) -> bytes:
        """``POST path`` with a sealed body; the peer's sealed answer."""
        return self._call("POST", path, body)

    def get(self, path: str) -> bytes:
        """``GET path``; the peer's sealed answer."""
        return self._call("GET", path, None)

    def _call(self, method: str, path: str, body: bytes | None) -> bytes:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self._client.request(
                    method,
                    path,
                    content=body,
                    headers={"content-type": MEDIA_TYPE} if body is not None else None,
                )
            except (httpx.TransportError, httpx.TimeoutException) as e:
                last = e
                continue
            if resp.status_code in RETRY_STATUSES:
                last = _error_of(resp)
                continue
            if resp.status_code == 200:
                return resp.content
            raise _error_of(resp)
        raise PeerUnavailable(
            f"{self.base_url}{path} did not answer after {self.retries + 1} attempts "
            f"({type(last).__name__}: {last}); check that the party is running"
        ) from last

    def healthy(self) -> bool:
        """Whether the peer answers its health route now (no retries)."""
        try:
            return self._client.get("/v1/health", timeout=2.0).status_code == 200
        except (httpx.TransportError, httpx.TimeoutException):
            return False

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpPeer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _error_of(resp: httpx.Response) -> Exception:
    """The exception a peer's error response stands for (same class as on the peer)."""
    try:
        doc = resp.json()
        name, detail = str(doc["error"]), str(doc["detail"])
    except (ValueError, KeyError, TypeError):
        return RemoteError(f"HTTP {resp.status_code} from {resp.request.url}")
    cls = RAISABLE.get(name)
    if cls is ConsentRefused:
        return ConsentRefused(str(doc.get("reason", "")), detail)
    if cls is None or cls is DeploymentError:
        return RemoteError(f"HTTP {resp.status_code} {name}: {detail}")
    return cls(detail)


class HttpAggregator:
    """The aggregator behind HTTP, with :class:`~psc.parties.aggregator.Aggregator`'s
    message methods (agencies, requesters and key holders call these)."""

    def __init__(self, peer: HttpPeer) -> None:
        self.peer = peer

    def ingest(self, sealed: bytes) -> bytes:
        return self.peer.post("/v1/submissions", sealed)

    def prepare_reveal(self, sealed_request: bytes) -> bytes:
        return self.peer.post("/v1/reveal-requests", sealed_request)

    def release(self, sealed_notice: bytes) -> bytes:
        return self.peer.post("/v1/reveal-notices", sealed_notice)

    def log_inclusion(self, envelope_hash: bytes) -> bytes:
        return self.peer.get(f"/v1/log/inclusions/{envelope_hash.hex()}")


class HttpMemberLink(MemberLink):
    """A committee member behind HTTP, as the combiner's :class:`MemberLink`."""

    def __init__(self, index: int, peer: HttpPeer) -> None:
        self.index = index
        self.peer = peer

    def noise_share(self, sealed_task: bytes) -> bytes:
        return self.peer.post("/v1/noise-shares", sealed_task)

    def decryption_share(self, sealed_request: bytes) -> bytes:
        return self.peer.post("/v1/decryption-shares", sealed_request)

    def known_answer_share(self) -> bytes:
        return self.peer.get("/v1/known-answer-share")
