"""The batch reveal as a stream of shard-sized requests (psc.scale.stream), 512-bit keys
(INSECURE), seeded: grades equal the one-request batch, one logged reveal per shard, and
the blocks any reveal message carries stay at one shard's whatever the subject count (the
bound is counted in blocks, not measured in RSS, so it cannot flake)."""

from __future__ import annotations

import datetime as dt

import pytest

from psc.catalog import Catalog, period_start
from psc.events import Event
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.relying_party import read_grades
from psc.protocol import codec
from psc.protocol.messages import RevealRequest, SignedMessage
from psc.scale.shards import ShardPlan
from psc.scale.stream import reveal_by_shard
from psc.sim.city import simulate_city
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
pytestmark = pytest.mark.timeout(300)
BLOCKS_PER_SHARD = 2


def _ingested(city: Catalog, keys: Keypair, n: int) -> tuple[Deployment, int]:
    sim = simulate_city(city, subjects=n, periods=1, seed=9)
    clock = SimClock(dt.datetime.combine(period_start(sim.periods[0]), dt.time(8), dt.UTC))
    d = setup(city, sim.agencies, n, keys, clock=clock, randbytes=seeded_randbytes(f"s{n}"))
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


def _blocks(sealed_reveal_request: bytes) -> int:
    body = codec.decode(sealed_reveal_request, SignedMessage).body
    return len(codec.decode(body, RevealRequest).blocks)


@pytest.mark.parametrize("n", [200, 800])
def test_streamed_reveal_equals_one_request_in_blocks_bounded_by_a_shard(
    city: Catalog, test_keypair: Keypair, n: int
) -> None:
    d, last = _ingested(city, test_keypair, n)
    layout = d.params.layout
    labels = 1 + len(city.cap_labels())
    blocks = layout.blocks(n)
    plan = ShardPlan(layout, n, -(-blocks // BLOCKS_PER_SHARD))
    # the one-request batch: every block in one message
    request = d.registry.grade_request(range(n), last)
    sealed = d.aggregator.prepare_reveal(request)
    assert _blocks(sealed) == blocks * labels  # grows with the subjects
    answer = d.key_holder.answer(sealed)
    d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    whole = read_grades(d.params, request, answer.response)
    size = d.ledger.log.size
    got: dict[int, str] = {}
    seen = []
    for part in reveal_by_shard(
        d.params,
        plan,
        lambda r: d.registry.grade_request(r, last),
        d.aggregator,
        d.key_holder,
    ):
        assert set(part.grades) == set(plan.slot_range(part.shard))
        # the bound: one shard's blocks, the same at 200 and at 800 subjects
        assert part.blocks <= BLOCKS_PER_SHARD * labels
        seen.append(part.shard)
        got.update(part.grades)
    assert seen == list(range(plan.shards)) and plan.shards >= 2
    assert got == whole
    assert d.ledger.log.size == size + plan.shards  # one logged reveal per shard request


def test_a_plan_of_other_parameters_is_refused(city: Catalog, test_keypair: Keypair) -> None:
    d, last = _ingested(city, test_keypair, 150)
    with pytest.raises(ValueError, match="another layout or subject count"):
        next(
            reveal_by_shard(
                d.params,
                ShardPlan(d.params.layout, 149, 1),
                lambda r: d.registry.grade_request(r, last),
                d.aggregator,
                d.key_holder,
            )
        )
