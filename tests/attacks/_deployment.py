"""A small real deployment for the attack tests: registry, agencies, aggregator with its
SQLite ledger, and a key holder revealing through a trusted decryptor or a 3-of-5 key
committee whose members check every task against the ledger (INSECURE 512-bit keys).

Not a test module (leading underscore).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from protocols.gen_reveal_dp import test_primes
from protocols.gen_threshold import Drbg
from psc.catalog import Catalog, period_index
from psc.dp.accounting import ApproxDP
from psc.events import Event
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.hazmat.threshold.dealer import deal
from psc.parties.committee import RevealPolicy, reveal_layout
from psc.protocol.signing import digest
from psc.sim.city import agency_instances
from psc.sim.deployment import CommitteeSetup, Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes

START = dt.datetime(2026, 1, 3, 9, tzinfo=dt.UTC)
N = 30


@dataclass
class World:
    d: Deployment
    clock: SimClock
    committee: CommitteeSetup | None
    events: list[Event]
    period: int


def _events(catalog: Catalog, periods: list[int]) -> list[Event]:
    out = []
    rules = [r.id for r in catalog.rules if r.delta < 0][:3]
    for i, p in enumerate(periods):
        for j, rule in enumerate(rules):
            slot = (7 * i + 3 * j) % N
            date = dt.date(p // 12, p % 12 + 1, 5 + j)
            out.append(Event(slot, rule, date, digest(f"{slot}/{rule}/{date}".encode()).hex()))
    return out


def world(
    catalog: Catalog,
    *,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
    committee_dir: Path | None = None,
    seed: str = "attack-world",
) -> World:
    """Submit three periods of events for ``N`` subjects; reveal through the committee
    unless a trusted ``keypair`` is given.  ``committee_dir`` keeps the members' durable
    stores there."""
    clock = SimClock(START)
    cs: CommitteeSetup | None = None
    layout = None
    if keypair is None:
        k, n = 3, 5
        dealer = Drbg(f"{seed}/dealer")
        tpk, shares = deal(
            k,
            n,
            bits=512,
            randbelow=dealer.randbelow,
            allow_insecure=True,
            _primes=test_primes(512),
        )
        policy = RevealPolicy(Fraction(1), Fraction(1, 4), k)
        layout = reveal_layout(catalog, 512, multiplicity=1, members=n, policy=policy)
        cs = CommitteeSetup(
            tpk,
            shares,
            policy,
            sqlite3.connect(":memory:", isolation_level=None),
            ApproxDP(Fraction(100), Fraction(1, 10**6)),
            1,
            seeded_randbytes(f"{seed}/committee"),
        )
        cs.member_dir = committee_dir
        pk, sk = tpk.public, None
    else:
        pk, sk = keypair
    d = setup(
        catalog,
        agency_instances(catalog, None),
        N,
        (pk, sk),
        clock=clock,
        randbytes=seeded_randbytes(seed),
        revealer=cs.make if cs is not None else None,
        layout=layout,
    )
    first = period_index(START.date())
    periods = [first, first + 1, first + 2]
    events = _events(catalog, periods)
    clock.advance_to(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
    for p in periods:
        for a in d.agencies:
            mine = [
                e
                for e in events
                if e.period == p and catalog.rule(e.rule).agency == a.catalog_agency
            ]
            a.accept_receipt(d.aggregator.ingest(a.submit(mine, p)))
    return World(d, clock, cs, events, periods[-1])
