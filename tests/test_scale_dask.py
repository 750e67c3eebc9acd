"""Sharded aggregation on a 2-worker Dask LocalCluster: the same envelopes ingested by the
single-process aggregator and by the sharded one give identical live sums (bit for bit),
identical grades through the key holder, one transparency log, and per-shard state that
matches the log.  The cluster is bounded (2 single-threaded workers, 1 GiB each) and closed
on every path by the module fixture."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator

import pytest

from psc.catalog import Catalog, period_start
from psc.events import Event
from psc.exceptions import InvalidMessage
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.aggregator import Aggregator
from psc.parties.relying_party import read_grades
from psc.scale.accumulators import ShardedAccumulators
from psc.scale.aggregator import ShardedAggregator
from psc.scale.cluster import dask_client
from psc.sim.city import City, simulate_city
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes

distributed = pytest.importorskip("distributed")

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    with dask_client(workers=2, memory_limit="1GiB", timeout_s=120) as c:
        yield c


def deployment(
    city: Catalog, sim: City, keys: Keypair, aggregator_cls: object, clock: SimClock
) -> Deployment:
    return setup(
        city,
        sim.agencies,
        sim.n_subjects,
        keys,
        clock=clock,
        randbytes=seeded_randbytes("scale"),  # the same parties in both deployments
        aggregator_cls=aggregator_cls,  # type: ignore[arg-type]
    )


def test_sharded_aggregation_equals_the_single_process_path(
    city: Catalog, test_keypair: Keypair, client: distributed.Client
) -> None:
    n = 700
    sim = simulate_city(city, subjects=n, periods=2, seed=3)
    clock = SimClock(dt.datetime.combine(period_start(sim.periods[0]), dt.time(8), dt.UTC))
    one = deployment(city, sim, test_keypair, Aggregator, clock)
    sharded = functools.partial(ShardedAggregator, client=client, shards=3)
    two = deployment(city, sim, test_keypair, sharded, clock)
    agg = two.aggregator
    assert isinstance(agg, ShardedAggregator)
    assert agg.accumulators.plan.shards == 3
    assert len(set(agg.accumulators.placement)) == 2  # both workers hold shards
    for p in sim.periods:
        clock.advance_to(dt.datetime.combine(period_start(p + 1), dt.time(9), dt.UTC))
        for inst, a in zip(sim.agencies, one.agencies, strict=True):
            evs = [
                Event(int(one.slot_of[e.subject]), e.rule, e.date, e.evidence)
                for e in sim.events[inst.id][p]
            ]
            envelope = a.submit(evs, p)
            r1 = one.aggregator.ingest(envelope)
            r2 = agg.ingest(envelope)
            assert r1 == r2  # same log position, same signed receipt
            assert agg.ingest(envelope) == r2  # idempotent: applied once per shard
            a.accept_receipt(r1)
    last = sim.periods[-1]
    s1, caps1 = one.aggregator.live_sums(last)
    s2, caps2 = agg.live_sums(last)
    assert s1 == s2 and caps1 == caps2  # identical ciphertexts
    agg.check_shards()
    assert one.ledger.log.size == two.ledger.log.size  # one log, same entries
    assert two.ledger.accumulators() == []  # the state is on the shards
    # grades through the key holder: identical
    req = one.registry.grade_request(range(n), last)  # both registries hold the same key

    def reveal(d: Deployment) -> dict[int, str]:
        answer = d.key_holder.answer(d.aggregator.prepare_reveal(req))
        d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
        return read_grades(d.params, req, answer.response)

    assert reveal(one) == reveal(two)
    # a shard that applied something the log does not hold is caught before a reveal
    agg.accumulators.add_shard_updates(b"z" * 32, [[] for _ in range(3)])
    with pytest.raises(InvalidMessage, match="shard 0"):
        agg.check_shards()
    with pytest.raises(InvalidMessage, match="rebuild"):
        agg.prepare_reveal(req)  # the reveal refuses diverged shards


def test_shards_refuse_foreign_ciphertexts_and_report_divergence(
    city: Catalog, test_keypair: Keypair, other_keypair: Keypair, client: distributed.Client
) -> None:
    from psc.hazmat.backends.paillier import PackedPaillier
    from psc.hazmat.packing import SlotLayout
    from psc.scale.shards import ShardPlan

    pk = test_keypair[0]
    layout = SlotLayout.for_key(pk.bits, 16)
    acc = ShardedAccumulators(client, pk, ShardPlan(layout, 100, 2))
    foreign = PackedPaillier(other_keypair[0], layout, allow_insecure_key=True).encrypt(
        [1] * 100, bound=1
    )
    with pytest.raises(Exception, match="different Paillier key"):
        acc.add(b"x" * 32, 1, [("short", "", foreign)])
    own = PackedPaillier(pk, layout, allow_insecure_key=True)
    ct = own.encrypt(list(range(100)), bound=100)
    acc.add(b"a" * 32, 1, [("short", "", ct)])
    acc.add(b"a" * 32, 1, [("short", "", ct)])  # a replay: applied once
    acc.wait()
    assert acc.applied() == [frozenset({b"a" * 32})] * 2
    live = acc.live_sums(1, {"short": 1}, [])[""]
    assert live == ct  # one contribution: the ciphertext itself, merged back
    assert acc.live_sums(2, {"short": 1}, [])[""].bound == 0  # expired: the trivial zero
    assert len(set(acc.digests())) == 2


def test_a_local_cluster_starts_when_the_default_dashboard_port_is_taken() -> None:
    """Another Dask cluster on this machine holds 8787 (the scheduler's default HTTP port):
    ours must still start (warnings are errors here, and distributed warns when it moves
    off a taken port) and serve only on 127.0.0.1."""
    import socket

    blocker = socket.socket()
    try:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", 8787))
        blocker.listen(1)
    except OSError:
        pass  # someone else already holds it: the condition under test holds anyway
    try:
        with dask_client(workers=1, memory_limit="512MiB", timeout_s=120) as c:
            assert c.submit(sum, [1, 2, 3]).result() == 6
            info = c.scheduler_info()
            assert info["address"].startswith("tcp://127.0.0.1:")
            assert all(w.startswith("tcp://127.0.0.1:") for w in info["workers"])
    finally:
        blocker.close()
