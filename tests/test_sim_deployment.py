"""The simulated deployment's committee: dealt with its layout, stores and scratch files."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from psc.catalog import Catalog
from psc.hazmat.packing import SlotLayout
from psc.sim.deployment import SimulationNoiseWitness, deal_committee


def test_deal_committee_widens_the_slots_and_sets_the_policy(city: Catalog) -> None:
    cs, layout, ledger = deal_committee(
        city,
        committee=(2, 3),
        epsilon=Fraction(1, 2),
        key_bits=512,
        multiplicity=2,
        workers=1,
        randbytes=os.urandom,
    )
    try:
        assert cs.public.k == 2 and len(cs.key_shares) == 3 and ledger == ":memory:"
        assert layout.slot_bits > SlotLayout.for_catalog(city, 512, multiplicity=2).slot_bits
        p = cs.policy
        assert (p.epsilon, p.min_epsilon, p.cap_epsilon, p.honest) == (
            Fraction(1, 2),
            Fraction(1, 4),
            Fraction(1, 2),
            2,
        )
        assert cs.budget.epsilon == 12 and cs.witness is None and cs.scratch is None
    finally:
        cs.close()


def test_members_in_processes_get_a_ledger_file_deleted_on_close(
    city: Catalog, tmp_path: Path
) -> None:
    witness = SimulationNoiseWitness()
    cs, _, ledger = deal_committee(
        city,
        committee=(3, 5),
        epsilon=Fraction(1),
        key_bits=512,
        multiplicity=1,
        workers=2,
        randbytes=os.urandom,
        store_path=tmp_path / "committee.sqlite",
        witness=witness,
    )
    assert cs.witness is witness and cs.member_dir == tmp_path / "committee-members"
    assert cs.member_dir.is_dir() and (tmp_path / "committee.sqlite").exists()
    assert cs.scratch is not None and Path(ledger).parent == cs.scratch
    cs.close()
    assert not cs.scratch.exists()
    # a ledger file of the caller's stays where it is
    cs, _, kept = deal_committee(
        city,
        committee=(3, 5),
        epsilon=Fraction(1),
        key_bits=512,
        multiplicity=1,
        workers=2,
        randbytes=os.urandom,
        ledger_path=tmp_path / "ledger.sqlite",
    )
    cs.close()
    assert kept == tmp_path / "ledger.sqlite" and cs.scratch is None
