"""Committee members as real processes: a reveal over HTTP, a member killed during it,
members down before it, and a restarted member that keeps its release record.  Members
read the public log over HTTP (``psc serve member --log-url``) into verified replicas
(``members/member-<i>.log.sqlite``), not from the aggregator's file.

Keys: INSECURE 512-bit test safe primes (``protocols/vectors/threshold.json``).  Every
server is stopped when the test ends, however it ends.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from protocols.gen_reveal_dp import test_primes as shipped_primes
from psc.catalog import period_index, period_start
from psc.dp.accounting import ApproxDP
from psc.events import Event
from psc.exceptions import BudgetExhausted, InsufficientShares, ParameterError, PolicyViolation
from psc.hazmat.threshold.dealer import deal
from psc.parties.committee import CommitteeRevealer, KeyCommittee, MemberLink, subject_key
from psc.parties.key_holder import KeyHolder
from psc.parties.relying_party import RelyingParty
from psc.protocol.logview import LedgerLogView
from psc.protocol.signing import digest
from psc.service.client import HttpAggregator, HttpMemberLink, HttpPeer, PeerUnavailable
from psc.service.config import load_config, load_params, read_key
from psc.service.deploy import init_deployment, load_committee, open_agencies
from psc.service.processes import Parties, Party

pytestmark = pytest.mark.timeout(600)

N_SUBJECTS = 16
K, N = 2, 3


@dataclass
class World:
    root: Path
    parties: Parties
    aggregator: Party
    members: dict[int, Party]
    peers: list[HttpPeer]

    def start_member(self, i: int) -> Party:
        """Member ``i`` as a process reading the log from the aggregator's routes."""
        args = ("--log-url", self.aggregator.url)
        party = self.parties.start("member", self.root / f"member-{i}.toml", extra_args=args)
        self.members[i] = party
        return party

    def link(self, i: int) -> HttpMemberLink:
        peer = HttpPeer(self.members[i].url, timeout=120, retries=1, backoff=0.05)
        self.peers.append(peer)
        return HttpMemberLink(i, peer)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    tpk, shares = deal(K, N, bits=512, allow_insecure=True, _primes=shipped_primes(512))
    root = init_deployment(tmp_path / "dep", subjects=N_SUBJECTS, committee=(tpk, shares))
    with Parties() as ps:
        agg = ps.start("aggregator", root / "aggregator.toml")
        w = World(root, ps, agg, {}, [])
        for i in range(1, N + 1):
            w.start_member(i)
        try:
            _submit(w)
            yield w
        finally:
            for p in w.peers:
                p.close()


def _period() -> int:
    return period_index(dt.datetime.now(dt.UTC).date()) - 1


def _submit(w: World) -> None:
    params = load_params(load_config(w.root / "aggregator.toml"))
    with HttpPeer(w.aggregator.url, timeout=120) as peer:
        agg = HttpAggregator(peer)
        for i, agency in enumerate(open_agencies(w.root, params)):
            rule = next(
                r for r in params.catalog.rules if r.agency == agency.catalog_agency and r.delta
            )
            day = period_start(_period()) + dt.timedelta(days=2)
            ev = Event(i % N_SUBJECTS, rule.id, day, digest(f"{i}".encode()).hex())
            agency.accept_receipt(agg.ingest(agency.submit([ev], _period())))


class KillBeforeDecryption(MemberLink):
    """Forwards to a member, but kill -9s it when the decryption request comes (after its
    noise share was taken): the member dies in the middle of the reveal."""

    def __init__(self, inner: HttpMemberLink, party: Party) -> None:
        self.index, self.inner, self.party = inner.index, inner, party

    def noise_share(self, sealed_task: bytes) -> bytes:
        return self.inner.noise_share(sealed_task)

    def decryption_share(self, sealed_request: bytes) -> bytes:
        self.party.kill()
        return self.inner.decryption_share(sealed_request)


def _key_holder(
    w: World, links: list[MemberLink], store: sqlite3.Connection
) -> tuple[KeyHolder, KeyCommittee]:
    params = load_params(load_config(w.root / "aggregator.toml"))
    cparams = load_committee(w.root, params)
    budget = ApproxDP(Fraction(24), Fraction(1, 10**9))
    committee = KeyCommittee(
        cparams, read_key(w.root / "combiner.key"), links, store, budget=budget
    )
    view = LedgerLogView(params, w.root / "aggregator" / "ledger.sqlite")
    kh = KeyHolder(
        params, CommitteeRevealer(committee), read_key(w.root / "key_holder.key"), log_view=view
    )
    kh.register_relying_party((w.root / "bank.registration").read_bytes())
    return kh, committee


def _bank(w: World) -> tuple[RelyingParty, str]:
    import tomllib

    params = load_params(load_config(w.root / "aggregator.toml"))
    doc = tomllib.loads((w.root / "bank.toml").read_text())
    return RelyingParty(doc["id"], params, read_key(w.root / "bank.key")), doc["purpose"]


def _reveal(w: World, kh: KeyHolder, slot: int) -> str:
    bank, purpose = _bank(w)
    request = bank.request_grade(slot, purpose, _period())
    with HttpPeer(w.aggregator.url, timeout=120) as peer:
        agg = HttpAggregator(peer)
        answer = kh.answer(agg.prepare_reveal(request))
        kh.check_logged(answer, agg.release(answer.notice))
    return bank.read_grade(request, answer.response)


def test_a_member_killed_during_the_reveal_leaves_the_other_k_to_finish(
    world: World, tmp_path: Path
) -> None:
    links: list[MemberLink] = [KillBeforeDecryption(world.link(1), world.members[1])]
    links += [world.link(2), world.link(3)]
    store = sqlite3.connect(tmp_path / "combiner.sqlite", isolation_level=None)
    kh, committee = _key_holder(world, links, store)
    grade = _reveal(world, kh, slot=0)
    params = load_params(load_config(world.root / "aggregator.toml"))
    assert grade in params.catalog.labels
    assert not world.members[1].alive()
    reveal = kh.revealer.last  # type: ignore[attr-defined]
    assert 1 in reveal.excluded and set(reveal.members) == {2, 3}
    # spent exactly once, for the one released slot
    assert len(committee.budget.spends(subject_key(0))) == 1
    # the members that decrypted checked it against their replicas of the log, read over
    # HTTP: each holds the signed head the reveal request named
    size = _log_size(world.root / "aggregator" / "ledger.sqlite")
    for i in (2, 3):
        replica = world.root / "members" / f"member-{i}.log.sqlite"
        assert 0 < _log_size(replica) <= size

    # the killed member restarts from its files and keeps its record: the noise share
    # it sent for the task is still there (it refuses a different one for the same task)
    db = world.root / "members" / "member-1.sqlite"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    sent = conn.execute("SELECT COUNT(*) FROM sent").fetchone()[0]
    conn.close()
    assert sent >= 1
    world.start_member(1)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("SELECT COUNT(*) FROM sent").fetchone()[0] == sent
    conn.close()


def test_a_restarted_member_keeps_its_release_record(world: World, tmp_path: Path) -> None:
    links: list[MemberLink] = [world.link(i) for i in range(1, N + 1)]
    store = sqlite3.connect(tmp_path / "combiner.sqlite", isolation_level=None)
    kh, _ = _key_holder(world, links, store)
    _reveal(world, kh, slot=1)
    db = world.root / "members" / "member-2.sqlite"

    def released() -> list[tuple[object, ...]]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return sorted(conn.execute("SELECT release, slot, period FROM released"))
        finally:
            conn.close()

    before = released()
    assert before, "member 2 released nothing"
    world.members[2].kill()
    world.start_member(2)
    assert released() == before
    # and it still refuses to help release the same slot and period again: a fresh
    # combiner (empty store: it has no stored answer to give) cannot get a second value
    store2 = sqlite3.connect(tmp_path / "combiner2.sqlite", isolation_level=None)
    kh2, _ = _key_holder(world, [world.link(i) for i in range(1, N + 1)], store2)
    with pytest.raises(InsufficientShares, match="already released"):
        _reveal(world, kh2, slot=1)


def test_fewer_than_k_members_fail_the_reveal_cleanly(world: World, tmp_path: Path) -> None:
    """Members that die after setup and before a reveal: it fails with a clear error, no
    grade is delivered and no budget is spent; a committee that cannot reach k members
    at setup is refused there (its known-answer check)."""
    links: list[MemberLink] = [world.link(i) for i in range(1, N + 1)]
    store = sqlite3.connect(tmp_path / "combiner.sqlite", isolation_level=None)
    kh, committee = _key_holder(world, links, store)
    world.members[2].kill()
    world.members[3].kill()
    with pytest.raises(InsufficientShares, match="Nothing was decrypted"):
        _reveal(world, kh, slot=2)
    assert committee.budget.spends(subject_key(2)) == [], "a failed reveal spent budget"
    store2 = sqlite3.connect(tmp_path / "combiner2.sqlite", isolation_level=None)
    with pytest.raises(ParameterError, match="known-answer"):
        _key_holder(world, [world.link(i) for i in range(1, N + 1)], store2)


def test_a_flooding_relying_party_is_refused_by_budget_and_consent(
    world: World, tmp_path: Path
) -> None:
    """A bank floods the aggregator with requests for a purpose it never registered
    (refused: 403, nothing logged), then asks for one subject's grade in more periods
    than the subject's budget covers (refused by the budget), concurrently; every party
    keeps answering: no 5xx, no crash."""
    bank, purpose = _bank(world)
    ledger = world.root / "aggregator" / "ledger.sqlite"
    before = _log_size(ledger)
    with HttpPeer(world.aggregator.url, timeout=120, retries=0) as peer:
        agg = HttpAggregator(peer)

        others = [p for p in bank.params.catalog.scheme.purposes if p != purpose]

        def unlawful(i: int) -> str:  # purposes of the scheme the bank did not register
            req = bank.request_grade(i % N_SUBJECTS, others[i % len(others)], _period())
            try:
                agg.prepare_reveal(req)
            except PolicyViolation as e:
                return type(e).__name__
            return "accepted"

        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(unlawful, range(64)))
    assert set(outcomes) == {"PolicyViolation"}
    assert _log_size(ledger) == before and world.aggregator.alive()

    links: list[MemberLink] = [world.link(i) for i in range(1, N + 1)]
    store = sqlite3.connect(tmp_path / "combiner.sqlite", isolation_level=None)
    params = load_params(load_config(world.root / "aggregator.toml"))
    cparams = load_committee(world.root, params)
    one_release = cparams.policy.epsilon + (cparams.policy.cap_epsilon or cparams.policy.epsilon)
    committee = KeyCommittee(
        cparams,
        read_key(world.root / "combiner.key"),
        links,
        store,
        budget=ApproxDP(one_release, Fraction(1, 10**9)),
    )
    view = LedgerLogView(params, world.root / "aggregator" / "ledger.sqlite")
    kh = KeyHolder(
        params, CommitteeRevealer(committee), read_key(world.root / "key_holder.key"), log_view=view
    )
    kh.register_relying_party((world.root / "bank.registration").read_bytes())
    assert _reveal(world, kh, slot=5) in params.catalog.labels  # the one release it covers
    refused = 0
    with HttpPeer(world.aggregator.url, timeout=120) as peer:
        agg = HttpAggregator(peer)
        for back in range(1, 4):  # the same subject in earlier periods: new releases
            req = bank.request_grade(5, purpose, _period() - back)
            try:
                kh.answer(agg.prepare_reveal(req))
            except BudgetExhausted:
                refused += 1
    assert refused == 3
    assert len(committee.budget.spends(subject_key(5))) == 1
    assert all(m.alive() for m in world.members.values()) and world.aggregator.alive()


def _log_size(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM log_leaves").fetchone()[0])
    finally:
        conn.close()


def test_the_key_holder_desk_process_reveals_and_refuses_a_flood(world: World) -> None:
    """The key holder's desk as its own process, combining the member processes: a bank's
    request is answered (the same bytes again for a retry), a flood of requests beyond the
    subject's budget or for purposes the bank never registered is refused (403, the same
    exception class at the client), a member killed before a reveal leaves the other k to
    answer, and every party keeps running."""
    cfg = world.root / "key_holder.toml"
    cfg.write_text(cfg.read_text().replace("budget_releases = 12", "budget_releases = 1"))
    peers = {"aggregator": world.aggregator.url} | {
        f"member-{i}": m.url for i, m in world.members.items()
    }
    desk = world.parties.start("key-holder", cfg, peers)
    bank, purpose = _bank(world)
    with HttpPeer(desk.url, timeout=300, retries=0) as client:
        request = bank.request_grade(5, purpose, _period())
        response = client.post("/v1/grade-requests", request)
        assert bank.read_grade(request, response) in bank.params.catalog.labels
        assert client.post("/v1/grade-requests", request) == response  # a retry: same bytes

        others = [p for p in bank.params.catalog.scheme.purposes if p != purpose]

        def flood(i: int) -> str:
            if i % 2:  # beyond the subject's budget: the same subject, earlier periods
                req = bank.request_grade(5, purpose, _period() - 1 - i // 2 % 3)
            else:  # a purpose the bank did not register
                req = bank.request_grade(i % N_SUBJECTS, others[i % len(others)], _period())
            try:
                client.post("/v1/grade-requests", req)
            except (BudgetExhausted, PolicyViolation) as e:
                return type(e).__name__
            return "answered"

        with ThreadPoolExecutor(max_workers=6) as pool:
            outcomes = list(pool.map(flood, range(12)))
        assert set(outcomes) == {"BudgetExhausted", "PolicyViolation"}, outcomes

        # a member down before a reveal: below the noise quorum it fails cleanly (503,
        # nothing decrypted); once the member is back, the same request is answered
        world.members[1].kill()
        request = bank.request_grade(6, purpose, _period())
        with pytest.raises(PeerUnavailable, match="Nothing was decrypted"):
            client.post("/v1/grade-requests", request)
        world.members[1] = world.parties.start("member", world.root / "member-1.toml")
    peers["member-1"] = world.members[1].url
    desk.stop()
    desk = world.parties.start("key-holder", cfg, peers)  # it learns member 1's new port
    with HttpPeer(desk.url, timeout=300, retries=0) as client:
        assert bank.read_grade(request, client.post("/v1/grade-requests", request))
    assert desk.alive() and world.aggregator.alive()
    assert all(m.alive() for m in world.members.values())
