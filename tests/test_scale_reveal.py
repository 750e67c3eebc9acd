"""The reveal sharded by subject blocks (psc.scale.reveal), 512-bit keys (INSECURE), seeded.

Trusted baseline on a 2-worker Dask LocalCluster: the same request through the
single-process key holder and through one whose decryptions run per shard on the workers
gives identical grades, one log entry each, and at most ``window`` shards in flight.
Committee DP batch reveal: two committees dealt from one seed (same keys, same seeded
noise), one single-process and one revealing shard by shard, give identical grades (the
noise is drawn in the same order), charge every subject once, answer in one signed
message, and use one task per shard; a member asked for a slot a shard task already
released refuses.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest

from protocols.gen_reveal_dp import (
    CLOCK,
    COMBINER_SEED,
    Committee,
    corrupt_decryption_share,
    live_blocks,
    make_committee,
)
from psc.catalog import Catalog, period_start
from psc.dp.accounting import ApproxDP
from psc.events import Event
from psc.exceptions import InsufficientShares, ParameterError
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.committee import CommitteeMember, LocalLink, MemberLink, subject_key
from psc.parties.key_holder import KeyHolder
from psc.parties.relying_party import read_grades
from psc.protocol.committee_messages import CommitteeGrades
from psc.protocol.signing import _signing_key_from_seed, open_signed
from psc.scale.cluster import dask_client
from psc.scale.reveal import ShardedKeyCommittee, ShardedTrustedDecryptor, shard_slots
from psc.scale.shards import ShardPlan
from psc.sim.city import simulate_city
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes

distributed = pytest.importorskip("distributed")

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
pytestmark = pytest.mark.timeout(300)
PERIOD = 24_316


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with dask_client(workers=2, memory_limit="1GiB", timeout_s=120) as c:
        yield c


def _ingested(city: Catalog, keys: Keypair, n: int) -> tuple[Deployment, int]:
    sim = simulate_city(city, subjects=n, periods=2, seed=5)
    clock = SimClock(dt.datetime.combine(period_start(sim.periods[0]), dt.time(8), dt.UTC))
    d = setup(city, sim.agencies, n, keys, clock=clock, randbytes=seeded_randbytes("reveal"))
    for p in sim.periods:
        clock.advance_to(dt.datetime.combine(period_start(p + 1), dt.time(9), dt.UTC))
        for inst, a in zip(sim.agencies, d.agencies, strict=True):
            evs = [
                Event(int(d.slot_of[e.subject]), e.rule, e.date, e.evidence)
                for e in sim.events[inst.id][p]
            ]
            a.accept_receipt(d.aggregator.ingest(a.submit(evs, p)))
    clock.advance_to(clock.now + dt.timedelta(hours=1))
    return d, sim.periods[-1]


def _reveal(d: Deployment, key_holder: KeyHolder, request: bytes) -> dict[int, str]:
    answer = key_holder.answer(d.aggregator.prepare_reveal(request))
    key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    return read_grades(d.params, request, answer.response)


def test_sharded_trusted_reveal_equals_the_single_process_path(
    city: Catalog, test_keypair: Keypair, client: distributed.Client
) -> None:
    n = 900
    d, last = _ingested(city, test_keypair, n)
    S = d.params.layout.slots
    assert d.params.layout.blocks(n) >= 6
    plan = ShardPlan(d.params.layout, n, 6)
    sharded = ShardedTrustedDecryptor(d.params, test_keypair[1], client=client, plan=plan, window=2)
    kh = KeyHolder(
        d.params,
        sharded,
        d.key_holder._key,
        log_view=d.key_holder._log,
        clock=d.key_holder._clock,
    )
    everyone = d.registry.grade_request(range(n), last)
    again = d.registry.grade_request(range(n), last)
    size = d.ledger.log.size
    single = _reveal(d, d.key_holder, everyone)
    got = _reveal(d, kh, again)
    assert got == single  # identical grades, every subject
    assert len(set(single.values())) >= 3  # a real spread of grades, not one band
    assert d.ledger.log.size == size + 2  # one reveal entry per request, in the one log
    # at most `window` shards in flight: 2 shards of at most ceil(B/6) blocks, 1 + caps labels
    per_shard = max(len(plan.block_range(i)) for i in range(plan.shards))
    labels = 1 + len(city.cap_labels())
    assert 0 < sharded.peak_blocks_in_flight <= 2 * per_shard * labels
    # a sparse request touches only the shards holding its slots
    few = [0, S * 3 + 1, n - 1]
    assert set(shard_slots(plan, few)) == {plan.shard_of_slot(s) for s in few}
    rq = d.registry.grade_request(few, last)
    rq2 = d.registry.grade_request(few, last)
    assert _reveal(d, kh, rq) == _reveal(d, d.key_holder, rq2) == {s: single[s] for s in few}


def test_sharded_trusted_reveal_refuses_bad_plans(
    city: Catalog, test_keypair: Keypair, client: distributed.Client
) -> None:
    d, _ = _ingested(city, test_keypair, 300)
    other = ShardPlan(d.params.layout, 299, 2)
    with pytest.raises(ParameterError, match="another layout or subject count"):
        ShardedTrustedDecryptor(d.params, test_keypair[1], client=client, plan=other)
    with pytest.raises(ParameterError, match="window"):
        ShardedTrustedDecryptor(d.params, test_keypair[1], client=client, window=0)


N = 30  # five blocks of 7 slots in the committee fixture's layout, the last one partial
RNG = np.random.default_rng(11)
SUMS = RNG.integers(-120, 90, size=N).astype(np.int64)
CAPS = {"C": (RNG.random(N) < 0.2).astype(np.int64)}


def _sharded(c: Committee, shards: int, **kw: object) -> ShardedKeyCommittee:
    plan = ShardPlan(c.params.layout, N, shards)
    return ShardedKeyCommittee(
        c.params,
        _signing_key_from_seed(COMBINER_SEED),
        c.links,
        sqlite3.connect(":memory:", isolation_level=None),
        budget=ApproxDP(4, Fraction(1, 10**9)),
        clock=lambda: CLOCK,
        plan=plan,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("verify_on_dask", [False, True])
def test_sharded_committee_reveal_equals_the_single_process_path(
    client: distributed.Client, verify_on_dask: bool
) -> None:
    one = make_committee(seed="sharded")  # seeded, non-zero noise
    two = make_committee(seed="sharded")
    kw = {"verify_pool": client.get_executor()} if verify_on_dask else {}
    two.combiner = _sharded(two, 3, **kw)
    assert two.params.layout.blocks(N) >= 3
    everyone = list(range(N))
    a = one.reveal(PERIOD, everyone, *live_blocks(one, SUMS, CAPS))
    b = two.reveal(PERIOD, everyone, *live_blocks(two, SUMS, CAPS))
    assert b.grades == a.grades  # same keys, same noise, drawn in the same order
    assert len(set(a.grades.values())) >= 2
    combiner = two.combiner
    assert isinstance(combiner, ShardedKeyCommittee)
    (request_hash,) = combiner.shard_tasks
    assert combiner.shard_tasks[request_hash] == 3  # one task per shard
    S = two.params.layout.slots
    largest = max(len(combiner.plan.block_range(i)) for i in range(3))
    assert combiner.peak_blocks_in_flight <= largest * len(two.params.labels)
    # charged once per subject, one signed answer for the whole request
    assert sorted(b.spent) == everyone
    for s in everyone:
        assert len(combiner.budget.spends(subject_key(s))) == 1
    msg = open_signed(b.answer, CommitteeGrades, lambda m: two.params.combiner_key)
    assert [g.slot for g in msg.grades] == everyone
    assert msg.request_hash == request_hash
    assert N > S  # the request really spans several blocks


def test_members_refuse_a_slot_another_shard_task_released() -> None:
    """A combiner that re-asks for a slot under a new request (say, by sharding it twice)
    gets no second noisy value: the member's release record is per (slot, period)."""
    c = make_committee(seed="sharded-twice", draw=lambda: 0)
    c.combiner = _sharded(c, 2)
    score, caps = live_blocks(c, SUMS, CAPS)
    c.reveal(PERIOD, list(range(N)), score, caps)
    # a fresh combiner store (no budget record) with the same members: they refuse
    c.combiner = _sharded(c, 3)
    with pytest.raises(InsufficientShares, match="already released"):
        c.reveal(PERIOD, [4], score, caps)


class _BadInSecondTask(MemberLink):
    """A member whose decryption share is corrupted (and re-signed) from its second task on."""

    def __init__(self, inner: MemberLink) -> None:
        self.index = inner.index
        self.inner = inner
        self.tasks = 0

    def noise_share(self, sealed_task: bytes) -> bytes:
        return self.inner.noise_share(sealed_task)

    def decryption_share(self, sealed_request: bytes) -> bytes:
        self.tasks += 1
        out = self.inner.decryption_share(sealed_request)
        return corrupt_decryption_share(out, self.index) if self.tasks >= 2 else out

    def known_answer_share(self) -> bytes:
        return self.inner.known_answer_share()


def test_a_member_bad_in_one_shard_is_named_and_the_others_reveal() -> None:
    def links(ms: list[CommitteeMember]) -> list[MemberLink]:
        return [_BadInSecondTask(LocalLink(m)) if m.index == 2 else LocalLink(m) for m in ms]

    one = make_committee(seed="sharded-bad", draw=lambda: 0)
    two = make_committee(seed="sharded-bad", draw=lambda: 0, links=links)
    two.combiner = _sharded(two, 3)
    everyone = list(range(N))
    want = one.reveal(PERIOD, everyone, *live_blocks(one, SUMS, CAPS)).grades
    got = two.reveal(PERIOD, everyone, *live_blocks(two, SUMS, CAPS))
    assert got.grades == want  # zero noise: the exact grades, every shard
    assert list(got.excluded) == [2] and "proof" in got.excluded[2]
    assert 4 in got.members  # the fourth member stood in where member 2 failed
