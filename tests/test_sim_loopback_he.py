"""The CKKS grading path across processes (``psc.sim.loopback_he``): the grading authority
its own process grades a tiny city's events exactly as the plaintext oracle does."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pytest

from psc.catalog import parse_catalog, period_index
from psc.events import Event, EventTable
from psc.oracle import score
from psc.service.deploy import write_deployment
from psc.service.processes import Parties
from psc.sim.he_driver import SMALL_TEST_CATALOG
from psc.sim.loopback_he import grade_he_across_processes, grades_array
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)

N = 8
LAST = dt.date(2026, 11, 10)
EARLIER = dt.date(2026, 10, 10)  # one-month retention: no longer live at LAST's period


def _event(slot: int, rule: str, day: dt.date) -> Event:
    return Event(slot, rule, day, hashlib.sha256(f"{slot}{rule}{day}".encode()).hexdigest())


def test_the_authority_process_grades_the_city_as_the_oracle(tmp_path: Path) -> None:
    (tmp_path / "catalog.toml").write_text(SMALL_TEST_CATALOG)
    catalog = parse_catalog(SMALL_TEST_CATALOG)
    root, _ = write_deployment(
        tmp_path / "dep",
        catalog=catalog,
        catalog_name=str(tmp_path / "catalog.toml"),
        subjects=N,
        keypair=insecure_keypair(0, 512),
    )
    events = {
        "transport-bureau": [
            _event(0, "traffic.ticket", LAST),
            _event(0, "traffic.ticket", LAST),
            _event(1, "traffic.drunk-driving", LAST),
            _event(2, "traffic.ticket", LAST),
            _event(6, "traffic.drunk-driving", EARLIER),
        ],
        "civil-affairs-bureau": [
            _event(3, "civic.volunteering", LAST),
            _event(3, "civic.volunteering", LAST),
            _event(4, "civic.volunteering", LAST),
            _event(5, "civic.volunteering", EARLIER),
            _event(1, "civic.volunteering", LAST),
        ],
    }
    first, at = period_index(EARLIER), period_index(LAST)
    with Parties() as ps:
        result = grade_he_across_processes(
            root, ps, events, first_period=first, at=at, relying_party_slot=3
        )
        assert all(p.alive() for p in ps.running)
    table = EventTable.from_events(catalog, [e for evs in events.values() for e in evs], N)
    oracle = score(table, at).grade
    assert np.array_equal(grades_array(result, N), oracle.astype(np.int64))
    assert result.relying_party == (3, int(oracle[3]))
    assert len(set(oracle.tolist())) >= 3  # the case distinguishes grades, caps included
    assert result.submissions == 2 * 3 and result.requests == 2
