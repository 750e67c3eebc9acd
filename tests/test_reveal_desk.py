"""The key holder's reveal desk: retries resume from the stored answer (nothing decrypted
twice, the notice logged once, the same response), and a response is never handed out
unless the log holds its notice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from psc.catalog import Catalog, period_index
from psc.exceptions import InvalidMessage
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.key_holder import KeyHolder
from psc.parties.reveal_desk import RevealDesk
from psc.sim.city import agency_instances
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes

START = dt.datetime(2026, 1, 3, 9, tzinfo=dt.UTC)
PERIOD = period_index(dt.date(2026, 2, 1))
N = 16


@dataclass
class World:
    d: Deployment
    decryptions: list[int]


@pytest.fixture
def world(
    city: Catalog, test_keypair: tuple[PaillierPublicKey, PaillierPrivateKey]
) -> Iterator[World]:
    clock = SimClock(START)
    d = setup(
        city, agency_instances(city), N, test_keypair, clock=clock, randbytes=seeded_randbytes("d")
    )
    clock.advance_to(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
    for a in d.agencies:
        a.accept_receipt(d.aggregator.ingest(a.submit([], PERIOD)))
    calls: list[int] = []
    inner = d.key_holder.revealer.grades_for

    def counted(*args: object, **kwargs: object) -> dict[int, int]:
        calls.append(1)
        return inner(*args, **kwargs)  # type: ignore[arg-type]

    d.key_holder.revealer.grades_for = counted  # type: ignore[method-assign]
    yield World(d, calls)
    d.ledger.close()


class FlakyRelease:
    """The aggregator, but the first ``fail`` release calls are lost (no answer)."""

    def __init__(self, d: Deployment, fail: int) -> None:
        self.d, self.fail = d, fail

    def prepare_reveal(self, sealed: bytes) -> bytes:
        return self.d.aggregator.prepare_reveal(sealed)

    def release(self, sealed: bytes) -> bytes:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the aggregator did not answer")
        return self.d.aggregator.release(sealed)


def test_the_same_request_again_gets_the_same_response_and_nothing_twice(world: World) -> None:
    desk = RevealDesk(world.d.key_holder, world.d.aggregator, ":memory:")
    request = world.d.registry.grade_request(range(N), PERIOD)
    first = desk.grades(request)
    size = world.d.ledger.log.size
    assert desk.grades(request) == first
    assert world.d.ledger.log.size == size, "the notice was logged twice"
    assert len(world.decryptions) == 1 and desk.answered() == 1


def test_a_desk_that_crashed_before_logging_resumes_from_its_file(
    world: World, tmp_path: Path
) -> None:
    """The answer is stored before the notice is sent: a crash there (the release never
    answered) and a restart of the desk from its file finish the same answer, decrypting
    nothing again."""
    path = str(tmp_path / "desk.sqlite")
    request = world.d.registry.grade_request(range(N), PERIOD)
    crashed = RevealDesk(world.d.key_holder, FlakyRelease(world.d, fail=1), path)
    with pytest.raises(ConnectionError):
        crashed.grades(request)
    crashed.close()
    size = world.d.ledger.log.size
    # a fresh key holder (its in-memory replay set is gone) over the same desk file
    holder = KeyHolder(
        world.d.params,
        world.d.key_holder.revealer,
        world.d.key_holder._key,
        log_view=world.d.key_holder._log,
    )
    restarted = RevealDesk(holder, world.d.aggregator, path)
    response = restarted.grades(request)
    assert len(world.decryptions) == 1, "the restarted desk decrypted again"
    assert world.d.ledger.log.size == size + 1  # the notice, logged once
    assert restarted.grades(request) == response


def test_no_response_leaves_unless_the_log_holds_its_notice(world: World) -> None:
    """An aggregator that answers the release with the inclusion of something else (here:
    an envelope's) gets no response out of the desk."""

    class Lying(FlakyRelease):
        def release(self, sealed: bytes) -> bytes:
            self.d.aggregator.release(sealed)
            return self.d.aggregator.log_inclusion(self.d.ledger.envelopes()[0].envelope_hash)

    desk = RevealDesk(world.d.key_holder, Lying(world.d, fail=0), ":memory:")
    with pytest.raises(InvalidMessage, match="does not hold this reveal"):
        desk.grades(world.d.registry.grade_request(range(N), PERIOD))
