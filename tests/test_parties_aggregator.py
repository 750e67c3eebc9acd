"""The aggregator's message methods are safe to retry (a lost answer is asked for again)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from psc.catalog import Catalog, period_index
from psc.exceptions import InvalidMessage
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.protocol import codec
from psc.protocol.messages import RevealNotice, SignedMessage
from psc.protocol.signing import seal
from psc.sim.city import agency_instances
from psc.sim.deployment import setup
from psc.sim.sources import SimClock, seeded_randbytes

START = dt.datetime(2026, 1, 3, 9, tzinfo=dt.UTC)


def test_a_retried_reveal_notice_is_logged_once_and_answered_again(
    city: Catalog, test_keypair: tuple[PaillierPublicKey, PaillierPrivateKey]
) -> None:
    clock = SimClock(START)
    d = setup(
        city, agency_instances(city), 16, test_keypair, clock=clock, randbytes=seeded_randbytes("r")
    )
    clock.advance_to(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
    period = period_index(dt.date(2026, 2, 1))
    for a in d.agencies:
        a.accept_receipt(d.aggregator.ingest(a.submit([], period)))
    request = d.registry.grade_request(range(16), period)
    answer = d.key_holder.answer(d.aggregator.prepare_reveal(request))
    first = d.aggregator.release(answer.notice)
    size = d.ledger.log.size
    # the key holder's answer was lost: it sends the same notice again
    again = d.aggregator.release(answer.notice)
    assert d.ledger.log.size == size  # logged once
    d.key_holder.check_logged(answer, again)  # and the answer proves it
    assert again == first
    # another notice for the same request is still refused
    other = seal(_notice_with(answer.notice, response_hash=b"\x01" * 32), d.key_holder._key)
    with pytest.raises(InvalidMessage):
        d.aggregator.release(other)
    assert d.ledger.log.size == size


def _notice_with(sealed: bytes, **changes: object) -> RevealNotice:
    notice = codec.decode(codec.decode(sealed, SignedMessage).body, RevealNotice)
    return dataclasses.replace(notice, **changes)
