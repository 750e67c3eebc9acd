"""A dishonest agency abusing the rights workflows (issue 11, rights adjustments).

An agency ordered to compensate one subject's event signs an :class:`Adjustment` itself:
it could encrypt anything under the declared bound, in any slot, since the aggregator does
not learn which subject the order names.  Every slot of every adjustment vector is proven
within :func:`psc.protocol.validity.adjustment_ranges`, so an agency that only penalizes
cannot take points away through an adjustment, no adjustment raises a cap counter (it
cannot blacklist anyone), and a proof made for another adjustment does not verify.

The attacker uses its real signing key and the strongest proof the protocol lets it make:
the honest prover run on its false values against its range shifted to contain them.  First run
against ``fa2ec1a`` (adjustments without range proofs): the out-of-range adjustments were
accepted and moved the victims' grades.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3

import numpy as np
import pytest

from psc.catalog import Catalog, load_catalog, period_index
from psc.events import Event
from psc.exceptions import InvalidProof
from psc.parties.rights import Adjustment, RightsAgency, adjustment_bounds
from psc.policy.clock import SimulatedClock
from psc.protocol import codec, validity
from psc.protocol.messages import CapCiphertext, ClassCiphertext, SignedMessage
from psc.protocol.signing import digest, seal
from psc.sim.city import agency_instances
from psc.sim.rights_deployment import RightsDeployment, setup_rights
from psc.sim.sources import seeded_randbytes
from psc.testing import insecure_keypair

START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
P1 = period_index(START.date())
N = 12


@pytest.fixture(scope="module")
def city() -> Catalog:
    return load_catalog("city")


def _world(city: Catalog) -> tuple[RightsDeployment, list[Event]]:
    clock = SimulatedClock(START)
    r = setup_rights(
        city,
        agency_instances(city),
        N,
        insecure_keypair(0, 512),
        clock=clock,
        desk_db=sqlite3.connect(":memory:"),
        key_holder_db=sqlite3.connect(":memory:"),
        randbytes=seeded_randbytes("psc/attacks/rights-adjustment"),
    )
    events = []
    for i, rule in ((3, "tax.arrears"), (5, "traffic.drunk-driving")):
        slot = r.registry.slot_of(f"resident-{i:07d}")
        date = dt.date(2026, 1, 6)
        events.append(Event(slot, rule, date, digest(f"{i}/{rule}".encode()).hex()))
    for a in r.agencies:
        mine = [e for e in events if city.rule(e.rule).agency == a.catalog_agency]
        a.accept_receipt(r.aggregator.ingest(a.submit(mine, P1)))
    clock.advance(days=31)
    return r, events


def _honest(r: RightsDeployment, resident: int, catalog_agency: str) -> tuple[RightsAgency, bytes]:
    """The agency's honest adjustment cancelling ``resident``'s event in its P1 envelope."""
    ag = next(a for a in r.agencies if a.catalog_agency == catalog_agency)
    env = r.aggregator.ledger.envelope_for(ag.id, P1)
    assert env is not None
    slot = r.registry.slot_of(f"resident-{resident:07d}")
    (leaf,) = [idx for _, _, idx in ag._committed[P1].openings[slot]]
    order = r.registry.adjustment_order(
        f"resident-{resident:07d}",
        ag.id,
        "correction",
        case="rights-attack",
        original=env.envelope_hash,
        leaves=[leaf],
    )
    (sealed,) = ag.compensate(order)
    return ag, sealed


def _forge(ag: RightsAgency, sealed: bytes, index: int, slot: int, value: int, shift: int) -> bytes:
    """``sealed`` with vector ``index`` replaced by ``value`` in ``slot`` (zeros elsewhere),
    proven by the honest prover against its adjustment range shifted by ``shift`` (same
    width, so the proof parses and only its equations can fail)."""
    adj = codec.decode(codec.decode(sealed, SignedMessage).body, Adjustment)
    cat = ag.params.catalog
    true = validity.adjustment_ranges(cat, ag.catalog_agency, len(adj.leaves))[index]
    wide = dataclasses.replace(true, lo=true.lo + shift, hi=true.hi + shift)
    dbounds, cbounds = adjustment_bounds(cat, ag.catalog_agency, len(adj.leaves))
    bound = cbounds[(true.retention, true.cap)] if true.cap else dbounds[true.retention]
    vec = np.zeros(adj.n_subjects, dtype=np.int64)
    vec[slot] = value
    ctx = validity.adjustment_context(
        **{f: getattr(adj, f) for f in validity.ADJUSTMENT_HEADER}, index=index, vector=wide
    )
    ct, proof = ag._encrypt_proven(vec, bound, wide, ctx)
    deltas, caps = list(adj.deltas), list(adj.caps)
    if true.cap:
        caps[index - len(deltas)] = CapCiphertext(true.retention, true.cap, ct)
    else:
        deltas[index] = ClassCiphertext(true.retention, ct)
    proofs = list(adj.proofs)
    proofs[index] = proof
    forged = dataclasses.replace(adj, deltas=tuple(deltas), caps=tuple(caps), proofs=tuple(proofs))
    return seal(forged, ag._key)


def _refused(r: RightsDeployment, sealed: bytes) -> None:
    before = r.deployment.ledger.state_digest()
    with pytest.raises(InvalidProof):
        r.aggregator.ingest_adjustment(sealed)
    assert r.deployment.ledger.state_digest() == before
    assert r.aggregator.adjustment_count() == 0


def test_penalizing_agency_cannot_take_points_from_another_subject(city: Catalog) -> None:
    r, _ = _world(city)
    tax, honest = _honest(r, 3, "tax-bureau")
    victim = r.registry.slot_of("resident-0000007")
    _refused(r, _forge(tax, honest, 0, victim, -1, -1))
    _refused(r, _forge(tax, honest, 0, victim, -30, -30))  # the whole declared bound


def test_adjustment_cannot_raise_a_cap_counter(city: Catalog) -> None:
    r, _ = _world(city)
    transport, honest = _honest(r, 5, "transport-bureau")
    ranges = validity.adjustment_ranges(city, transport.catalog_agency, 1)
    cap_index = next(i for i, v in enumerate(ranges) if v.cap)
    victim = r.registry.slot_of("resident-0000008")
    _refused(r, _forge(transport, honest, cap_index, victim, 1, 1))  # would cap the victim at C


def test_proofs_do_not_move_to_another_adjustment(city: Catalog) -> None:
    r, _ = _world(city)
    tax, honest = _honest(r, 3, "tax-bureau")
    adj = codec.decode(codec.decode(honest, SignedMessage).body, Adjustment)
    _refused(r, seal(dataclasses.replace(adj, nonce=bytes(range(16))), tax._key))
    _refused(r, seal(dataclasses.replace(adj, kind="appeal"), tax._key))


def test_in_range_forgery_is_accepted_so_the_attacks_are_not_vacuous(city: Catalog) -> None:
    """The forging helper makes a valid adjustment when the value is lawful: the refusals
    above come from the range, not from a broken forgery."""
    r, _ = _world(city)
    tax, honest = _honest(r, 3, "tax-bureau")
    slot = r.registry.slot_of("resident-0000003")
    top = validity.adjustment_ranges(city, tax.catalog_agency, 1)[0].hi
    r.aggregator.ingest_adjustment(_forge(tax, honest, 0, slot, top, 0))
    assert r.aggregator.adjustment_count() == 1
