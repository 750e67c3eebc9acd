"""How the combiner reaches members: in process, in another OS process, in parallel."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from psc.exceptions import InvalidMessage
from psc.parties.committee.member import CommitteeMember

# ----------------------------------------------------------------------------------------
# combiner


class MemberLink(ABC):
    """How the combiner reaches one member (in process, another process, the network)."""

    index: int

    @abstractmethod
    def noise_share(self, sealed_task: bytes) -> bytes:
        """Forward a task; the member's sealed noise share."""

    @abstractmethod
    def decryption_share(self, sealed_request: bytes) -> bytes:
        """Forward a decryption request; the member's sealed decryption share."""

    def known_answer_share(self) -> bytes:
        """The member's sealed :class:`~psc.protocol.committee_messages.KnownAnswerShare`
        (setup check).  A link that cannot reach it raises, and the member then counts as
        failing the setup check."""
        raise InvalidMessage(f"member {self.index}'s link carries no known-answer share")


class LocalLink(MemberLink):
    """A member in this process."""

    def __init__(self, member: CommitteeMember) -> None:
        self.index = member.index
        self.member = member

    def noise_share(self, sealed_task: bytes) -> bytes:
        return self.member.noise_share(sealed_task)

    def decryption_share(self, sealed_request: bytes) -> bytes:
        return self.member.decryption_share(sealed_request)

    def known_answer_share(self) -> bytes:
        return self.member.known_answer_share()


class MemberProcess(MemberLink):
    """A member running in its own OS process (``fork``), reached over a pipe.

    Members are separate parties; here they are at least separate processes, so their
    exponentiations run in parallel on several cores (gmpy2 holds the GIL).  The member
    object is built in the parent and inherited by the child at fork; afterwards only
    bytes cross the pipe.  :meth:`close` ends the process.  Use with :func:`parallel`.
    """

    def __init__(self, member: CommitteeMember) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self.index = member.index
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(member, child), daemon=True)
        self._proc.start()
        child.close()

    def _call(self, method: str, *args: object) -> object:
        self._conn.send((method, args))
        ok, value = self._conn.recv()
        if not ok:
            raise value if isinstance(value, Exception) else RuntimeError(str(value))
        return value

    def noise_share(self, sealed_task: bytes) -> bytes:
        out = self._call("noise_share", sealed_task)
        assert isinstance(out, bytes)
        return out

    def decryption_share(self, sealed_request: bytes) -> bytes:
        out = self._call("decryption_share", sealed_request)
        assert isinstance(out, bytes)
        return out

    def known_answer_share(self) -> bytes:
        out = self._call("known_answer_share")
        assert isinstance(out, bytes)
        return out

    def prepare(self, noise_shares: int, randomizers: int) -> int:
        """Run :meth:`CommitteeMember.prepare` in the member's process."""
        out = self._call("prepare", noise_shares, randomizers)
        assert isinstance(out, int)
        return out

    def close(self) -> None:
        if self._proc.is_alive():
            self._conn.send(None)
            self._proc.join(timeout=10)
        self._conn.close()


def _serve(member: CommitteeMember, conn: object) -> None:
    from multiprocessing.connection import Connection

    assert isinstance(conn, Connection)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        method, args = msg
        try:
            conn.send((True, getattr(member, method)(*args)))
        except Exception as exc:  # sent back to the combiner, which names the member
            try:
                conn.send((False, exc))
            except Exception:
                conn.send((False, f"{type(exc).__name__}: {exc}"))


def parallel(
    fn: Callable[[MemberLink], bytes], links: Sequence[MemberLink]
) -> list[bytes | Exception]:
    """Ask several members at once (threads waiting on :class:`MemberProcess` pipes)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(link: MemberLink) -> bytes | Exception:
        try:
            return fn(link)
        except Exception as exc:  # a member's refusal or failure: it is excluded, named
            return exc

    if len(links) <= 1:
        return [one(link) for link in links]
    with ThreadPoolExecutor(max_workers=len(links)) as ex:
        return list(ex.map(one, links))


def prepare_processes(
    links: Sequence[MemberProcess], noise_shares: int, randomizers: int
) -> list[int]:
    """Members, offline: run :meth:`MemberProcess.prepare` in every member process at once.

    Unlike :func:`parallel` (whose failures the combiner turns into excluded members), a
    failure here is the operator's to see: it raises ``RuntimeError`` naming the member,
    since a member left without precomputation would silently do that work online.
    """
    from concurrent.futures import ThreadPoolExecutor

    if not links:
        return []
    with ThreadPoolExecutor(max_workers=len(links)) as ex:
        futures = [ex.submit(link.prepare, noise_shares, randomizers) for link in links]
    out: list[int] = []
    for link, fut in zip(links, futures, strict=True):
        exc = fut.exception()
        if exc is not None:
            raise RuntimeError(f"member {link.index} failed to prepare: {exc}") from exc
        out.append(fut.result())
    return out


def _sequential(
    fn: Callable[[MemberLink], bytes], links: Sequence[MemberLink]
) -> list[bytes | Exception]:
    out: list[bytes | Exception] = []
    for link in links:
        try:
            out.append(fn(link))
        except Exception as exc:  # a member's refusal or failure: it is excluded, named
            out.append(exc)
    return out


MapMembers = Callable[
    [Callable[[MemberLink], bytes], Sequence[MemberLink]], list[bytes | Exception]
]
