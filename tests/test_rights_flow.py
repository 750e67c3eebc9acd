"""The adjustment protocol under the rights workflows: orders, adjustments, refusals, deletion."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psc.catalog import Catalog, period_index
from psc.events import Event, EventTable
from psc.exceptions import (
    CatalogMismatch,
    DuplicateSubmission,
    InvalidMessage,
    ReplayedNonce,
    RightsRequestError,
    StalePeriod,
    UnknownParty,
)
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.oracle import score
from psc.parties.relying_party import read_grades
from psc.parties.rights import (
    Adjustment,
    AdjustmentOrder,
    RightsAgency,
    adjustment_bounds,
    parse_ref,
)
from psc.policy.clock import SimulatedClock
from psc.protocol import codec
from psc.protocol.messages import SignedMessage
from psc.protocol.signing import digest, new_signing_key, seal
from psc.sim.city import agency_instances, simulate_city
from psc.sim.rights_deployment import RightsDeployment, setup_rights
from psc.sim.sources import seeded_randbytes

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
P1 = period_index(START.date())
NOW = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)  # evaluation period P1 + 2
N = 20
H = bytes(range(32))


def world(catalog: Catalog, keypair: Keypair) -> tuple[RightsDeployment, SimulatedClock]:
    clock = SimulatedClock(START)
    r = setup_rights(
        catalog,
        agency_instances(catalog),
        N,
        keypair,
        clock=clock,
        desk_db=sqlite3.connect(":memory:"),
        key_holder_db=sqlite3.connect(":memory:"),
        randbytes=seeded_randbytes("rights-flow"),
    )
    clock.advance(seconds=(NOW - START).total_seconds())
    return r, clock


def ev(r: RightsDeployment, i: int, rule: str, period: int, day: int = 5) -> Event:
    date = dt.date(period // 12, period % 12 + 1, day)
    slot = r.registry.slot_of(f"resident-{i:07d}")
    return Event(slot, rule, date, digest(f"{i}/{rule}/{date}".encode()).hex())


def submit(r: RightsDeployment, events: Sequence[Event], periods: Sequence[int]) -> None:
    cat = r.deployment.params.catalog
    for p in periods:
        for a in r.agencies:
            mine = [
                e for e in events if e.period == p and cat.rule(e.rule).agency == a.catalog_agency
            ]
            a.accept_receipt(r.aggregator.ingest(a.submit(mine, p)))


def agency(r: RightsDeployment, catalog_agency: str) -> RightsAgency:
    return next(a for a in r.agencies if a.catalog_agency == catalog_agency)


def grades(r: RightsDeployment, period: int) -> dict[int, str]:
    d = r.deployment
    req = r.registry.grade_request(range(N), period)
    answer = d.key_holder.answer(d.aggregator.prepare_reveal(req))
    d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    return read_grades(d.params, req, answer.response)


def oracle(catalog: Catalog, events: Sequence[Event], period: int) -> dict[int, str]:
    return dict(
        enumerate(score(EventTable.from_events(catalog, events, N), period).labels(catalog))
    )


def body(sealed: bytes) -> Adjustment:
    return codec.decode(codec.decode(sealed, SignedMessage).body, Adjustment)


def scenario(r: RightsDeployment) -> tuple[list[Event], RightsAgency, bytes, dict[str, int]]:
    """Two subjects with tax arrears in P1; the tax bureau's envelope and their leaves."""
    events = [
        ev(r, 3, "tax.arrears", P1),
        ev(r, 4, "tax.arrears", P1),
        ev(r, 3, "utility.arrears", P1),
    ]
    submit(r, events, [P1])
    tax = agency(r, "tax-bureau")
    env = r.aggregator.ledger.envelope_for(tax.id, P1)
    assert env is not None
    leaves = {}
    for i in (3, 4):
        answer = r.office.verified_access(f"resident-{i:07d}", first_period=P1, at=P1 + 2)
        (mine,) = [e for e in answer.events if e.agency == tax.id]
        leaves[f"resident-{i:07d}"] = mine.leaf
    return events, tax, env.envelope_hash, leaves


# -- messages ---------------------------------------------------------------------------


def test_orders_and_adjustments_check_their_values() -> None:
    order = AdjustmentOrder("tax-bureau", "correction", 3, H, (1, 4), "", "rights-1", bytes(16), 0)
    codec.encode(order)
    bad = [
        {"kind": "erase"},
        {"leaves": (4, 1)},
        {"leaves": ()},
        {"rule": "tax.arrears"},
        {"original": b""},
        {"kind": "repair"},  # a repair names a rule and no envelope
        {"case": ""},
        {"nonce": bytes(3)},
    ]
    for change in bad:
        with pytest.raises(InvalidMessage):
            codec.encode(dataclasses.replace(order, **change))  # type: ignore[arg-type]
    codec.encode(
        dataclasses.replace(order, kind="repair", original=b"", leaves=(), rule="tax.arrears")
    )
    adj = Adjustment("tax-bureau", "repair", H, 5, 7, (2,), H, H, bytes(16), 4, (), (), 0, ())
    codec.encode(adj)
    for change2 in (
        {"effective_period": 4},
        {"leaves": ()},
        {"order": b"x"},
        {"n_subjects": 0},
        {"proofs": (b"",)},  # one proof per ciphertext, no more
    ):
        with pytest.raises(InvalidMessage):
            codec.encode(dataclasses.replace(adj, **change2))


def test_adjustment_bounds_are_public_and_tight(city: Catalog) -> None:
    deltas, caps = adjustment_bounds(city, "transport-bureau", 1)
    assert deltas == {"negative": 30, "short": 5}  # one drunk driving, one violation
    assert caps == {("negative", "C"): 1}
    deltas, _ = adjustment_bounds(city, "transport-bureau", 9)
    assert deltas["short"] == city.agency_period_bound("transport-bureau", "short")  # capped


def test_parse_ref() -> None:
    assert parse_ref(H.hex() + "#7") == (H, 7)
    for bad in ("", "abc#1", H.hex(), H.hex() + "#-1", H.hex() + "#x", H.hex()[:-2] + "#1"):
        with pytest.raises(RightsRequestError, match="ENVELOPE#LEAF"):
            parse_ref(bad)


# -- the aggregator ---------------------------------------------------------------------


def test_aggregator_verifies_adjustments_before_touching_state(
    city: Catalog, test_keypair: Keypair
) -> None:
    r, clock = world(city, test_keypair)
    events, tax, h, leaves = scenario(r)
    agg, led = r.aggregator, r.deployment.ledger
    a3 = "resident-0000003"
    order = r.registry.adjustment_order(
        a3, tax.id, "correction", case="c1", original=h, leaves=[leaves[a3]]
    )
    (first,) = tax.compensate(order)
    (twin,) = tax.compensate(order)  # the same order twice: the agency has not seen a receipt yet
    msg = body(first)
    transport = agency(r, "transport-bureau")
    stranger = new_signing_key()
    before = led.state_digest()
    refusals: list[tuple[bytes, type[Exception]]] = [
        (first[:-1] + bytes([first[-1] ^ 1]), InvalidMessage),  # altered byte
        (seal(msg, transport._key), InvalidMessage),  # signed by another agency
        (seal(dataclasses.replace(msg, agency=transport.id), transport._key), InvalidMessage),
        (seal(dataclasses.replace(msg, agency="stranger"), stranger), UnknownParty),
        (seal(dataclasses.replace(msg, leaves=(999,)), tax._key), InvalidMessage),
        (seal(dataclasses.replace(msg, period=P1 + 1), tax._key), InvalidMessage),
        (
            seal(
                dataclasses.replace(msg, deltas=(), proofs=msg.proofs[len(msg.deltas) :]), tax._key
            ),
            InvalidMessage,
        ),
        (seal(dataclasses.replace(msg, catalog_version=H), tax._key), CatalogMismatch),
        (seal(dataclasses.replace(msg, effective_period=P1 + 1), tax._key), StalePeriod),
        (seal(dataclasses.replace(msg, n_subjects=N + 1), tax._key), InvalidMessage),
    ]
    for sealed, error in refusals:
        with pytest.raises(error):
            agg.ingest_adjustment(sealed)
        assert led.state_digest() == before
    inclusion = agg.ingest_adjustment(first)
    assert agg.ingest_adjustment(first) == inclusion  # idempotent: one effect
    assert agg.adjustment_count() == 1
    after = led.state_digest()
    other_leaf = leaves["resident-0000004"]
    replays: list[tuple[bytes, type[Exception]]] = [
        # the same leaf cancelled again under another order
        (seal(dataclasses.replace(body(twin), order=bytes(32)), tax._key), DuplicateSubmission),
        (seal(dataclasses.replace(msg, leaves=(other_leaf,)), tax._key), ReplayedNonce),
    ]
    for sealed, error in replays:
        with pytest.raises(error):
            agg.ingest_adjustment(sealed)
        assert led.state_digest() == after
    # the same order carried out again (a retry after a crash): its first effect, once
    assert agg.ingest_adjustment(twin) == inclusion
    assert led.state_digest() == after and agg.adjustment_count() == 1
    tax.accept_adjustment(first, inclusion)
    want = [
        e for e in events if not (e.subject == r.registry.slot_of(a3) and e.rule == "tax.arrears")
    ]
    assert grades(r, P1 + 2) == oracle(city, want, P1 + 2)
    # a month later the same adjustment bytes would be stale: it takes effect when logged
    (late,) = tax.compensate(
        r.registry.adjustment_order(
            "resident-0000004", tax.id, "correction", case="c2", original=h, leaves=[other_leaf]
        )
    )
    clock.advance(days=31)
    with pytest.raises(StalePeriod, match="takes effect in the period it is logged in"):
        agg.ingest_adjustment(late)


def test_agencies_act_only_on_valid_registry_orders(city: Catalog, test_keypair: Keypair) -> None:
    r, clock = world(city, test_keypair)
    _, tax, h, leaves = scenario(r)
    a3, a4 = "resident-0000003", "resident-0000004"
    order = AdjustmentOrder(
        tax.id,
        "correction",
        r.registry.slot_of(a3),
        h,
        (leaves[a3],),
        "",
        "c1",
        bytes(16),
        int(clock.now().timestamp()),
    )
    with pytest.raises(InvalidMessage):  # not the registry's signature
        tax.compensate(seal(order, new_signing_key()))
    with pytest.raises(InvalidMessage, match="not for this agency"):
        tax.compensate(
            r.registry.adjustment_order(
                a3, "court", "correction", case="c", original=h, leaves=[leaves[a3]]
            )
        )
    with pytest.raises(InvalidMessage, match="not one of the subject's"):
        tax.compensate(
            r.registry.adjustment_order(
                a3, tax.id, "correction", case="c", original=h, leaves=[leaves[a4]]
            )
        )
    with pytest.raises(InvalidMessage, match="no envelope"):
        tax.compensate(
            r.registry.adjustment_order(a3, tax.id, "correction", case="c", original=H, leaves=[0])
        )
    with pytest.raises(InvalidMessage, match="not one of this agency's rules"):
        tax.compensate(
            r.registry.adjustment_order(
                a3, tax.id, "repair", case="c", rule="court.judgment-default"
            )
        )
    with pytest.raises(RightsRequestError, match="no live, uncancelled event"):
        tax.compensate(
            r.registry.adjustment_order(
                "resident-0000005", tax.id, "repair", case="c", rule="tax.arrears"
            )
        )
    stale = r.registry.adjustment_order(
        a3, tax.id, "correction", case="c", original=h, leaves=[leaves[a3]]
    )
    clock.advance(seconds=601)
    with pytest.raises(InvalidMessage, match="fresh"):
        tax.compensate(stale)
    # an inclusion proof for someone else's entry is no receipt
    (sealed,) = tax.compensate(
        r.registry.adjustment_order(
            a3, tax.id, "correction", case="c", original=h, leaves=[leaves[a3]]
        )
    )
    with pytest.raises(InvalidMessage):
        tax.accept_adjustment(sealed, r.aggregator.log_inclusion(h))
    (other,) = tax.compensate(
        r.registry.adjustment_order(
            a4, tax.id, "correction", case="c", original=h, leaves=[leaves[a4]]
        )
    )
    with pytest.raises(InvalidMessage, match="not for an adjustment this agency made"):
        tax.accept_adjustment(sealed, r.aggregator.ingest_adjustment(other))


# -- the office -------------------------------------------------------------------------


def test_deletion_erases_the_record_and_its_effect(city: Catalog, test_keypair: Keypair) -> None:
    r, _ = world(city, test_keypair)
    events, _, h, leaves = scenario(r)
    a3 = "resident-0000003"
    ref = f"{h.hex()}#{leaves[a3]}"
    req = r.office.open_correction(a3, ref, kind="deletion")
    (rec,) = r.office.grant_correction(req.id)
    assert rec.kind == "deletion" and rec.original == h
    desk = r.office.desk
    assert desk.get(req.id).status == "granted"
    assert [(k, ref_) for k, _, _, ref_, _ in desk.removals(a3)] == [("deletion", ref)]
    answer = r.office.verified_access(a3, first_period=P1, at=P1 + 2)
    assert [e.event.rule for e in answer.events] == ["utility.arrears"]  # the record is gone
    assert answer.grade == answer.revealed_grade
    slot = r.registry.slot_of(a3)
    want = [e for e in events if not (e.subject == slot and e.rule == "tax.arrears")]
    assert grades(r, P1 + 2) == oracle(city, want, P1 + 2)


def test_requests_must_cite_the_subjects_own_logged_records(
    city: Catalog, test_keypair: Keypair
) -> None:
    r, _ = world(city, test_keypair)
    _, tax, h, leaves = scenario(r)
    office = r.office
    with pytest.raises(RightsRequestError, match="no logged envelope"):
        office.open_correction("resident-0000003", f"{H.hex()}#0")
    with pytest.raises(RightsRequestError, match="correction, appeal or deletion"):
        office.open_correction("resident-0000003", f"{h.hex()}#0", kind="repair")
    with pytest.raises(UnknownParty):
        office.open_access("nobody")
    # resident 3 cites resident 4's record: refused before anything is ordered or logged
    req = office.open_correction("resident-0000003", f"{h.hex()}#{leaves['resident-0000004']}")
    before = r.deployment.ledger.state_digest()
    with pytest.raises(RightsRequestError, match="not one of the subject's records"):
        office.grant_correction(req.id)
    assert r.deployment.ledger.state_digest() == before
    assert office.desk.get(req.id).status == "open"
    assert office.links(req.id) == []
    with pytest.raises(RightsRequestError, match="not an open access request"):
        office.answer_access(req.id, first_period=P1)
    assert tax.id == office.desk.get(req.id).details["agency"]


# -- property: any set of corrections leaves exactly the oracle's scores ----------------


@settings(max_examples=6, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), picks=st.lists(st.integers(0, 10_000), max_size=4))
def test_corrections_leave_exactly_the_oracles_scores(
    city: Catalog, test_keypair: Keypair, seed: int, picks: list[int]
) -> None:
    r, _ = world(city, test_keypair)
    d = r.deployment
    sim = simulate_city(city, subjects=N, periods=2, seed=seed, first_period=P1)
    events = sorted(
        {
            Event(int(d.slot_of[e.subject]), e.rule, e.date, e.evidence)
            for per in sim.events.values()
            for evs in per.values()
            for e in evs
        }
    )
    submit(r, events, [P1, P1 + 1])
    cancelled: set[Event] = set()
    for k in picks:
        if len(cancelled) == len(events):
            break
        target = [e for e in events if e not in cancelled][k % (len(events) - len(cancelled))]
        who = f"resident-{int(np.flatnonzero(d.slot_of == target.subject)[0]):07d}"
        proven = r.office.verified_access(who, first_period=P1, at=P1 + 2)
        (hit,) = [p for p in proven.events if p.event == target]
        req = r.office.open_correction(who, hit.ref)
        r.office.grant_correction(req.id)
        cancelled.add(target)
    left = [e for e in events if e not in cancelled]
    total, _ = r.aggregator.live_sums(P1 + 2)
    sums = d.params.backend().decrypt(total, test_keypair[1])
    want = score(EventTable.from_events(city, left, N), P1 + 2).score
    assert [city.scheme.base_score + int(v) for v in sums] == [int(v) for v in want]
    assert grades(r, P1 + 2) == oracle(city, left, P1 + 2)
