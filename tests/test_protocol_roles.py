"""The roles end to end at small sizes: ingest checks, reveal policy, caps, expiry, access."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psc.catalog import Catalog, period_index
from psc.events import Event, EventTable
from psc.exceptions import (
    CatalogMismatch,
    EventError,
    InvalidMessage,
    ParameterError,
    PolicyViolation,
    PscError,
    UnknownParty,
)
from psc.hazmat.backends.paillier import RandomnessPool
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.oracle import score
from psc.parties.agency import Agency
from psc.parties.registry import Registry
from psc.parties.relying_party import read_grades
from psc.parties.subject import Subject
from psc.protocol import codec
from psc.protocol.messages import (
    AccessResponse,
    BlockCiphertext,
    ClassCiphertext,
    GradeRequest,
    RevealRequest,
    SignedMessage,
    Submission,
)
from psc.protocol.parameters import (
    SELF_ACCESS_PURPOSE,
    ProtocolParameters,
    delta_bounds,
    protocol_layout,
)
from psc.protocol.signing import digest, new_signing_key, seal
from psc.sim.city import agency_instances, simulate_city
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
START = dt.datetime(2026, 1, 3, 9, tzinfo=dt.UTC)
P1 = period_index(START.date())
N = 48


def world(
    catalog: Catalog,
    keypair: Keypair,
    *,
    n: int = N,
    agencies: int | None = None,
    seed: str = "roles",
) -> tuple[Deployment, SimClock]:
    clock = SimClock(START)
    d = setup(
        catalog,
        agency_instances(catalog, agencies),
        n,
        keypair,
        clock=clock,
        randbytes=seeded_randbytes(seed),
    )
    clock.advance_to(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
    return d, clock


def agency(d: Deployment, catalog_agency: str) -> Agency:
    return next(a for a in d.agencies if a.catalog_agency == catalog_agency)


def ev(slot: int, rule: str, period: int, day: int = 5) -> Event:
    date = dt.date(period // 12, period % 12 + 1, day)
    return Event(slot, rule, date, digest(f"{slot}/{rule}/{date}/{day}".encode()).hex())


def submit_all(d: Deployment, events: Sequence[Event], periods: Sequence[int]) -> None:
    for p in periods:
        for a in d.agencies:
            mine = [
                e
                for e in events
                if e.period == p and d.params.catalog.rule(e.rule).agency == a.catalog_agency
            ]
            a.accept_receipt(d.aggregator.ingest(a.submit(mine, p)))


def reveal(d: Deployment, req: bytes) -> bytes:
    answer = d.key_holder.answer(d.aggregator.prepare_reveal(req))
    d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    return answer.response


def reveal_all(d: Deployment, period: int) -> dict[int, str]:
    req = d.registry.grade_request(range(d.params.n_subjects), period)
    return read_grades(d.params, req, reveal(d, req))


def oracle_labels(catalog: Catalog, events: Sequence[Event], n: int, period: int) -> dict[int, str]:
    s = score(EventTable.from_events(catalog, events, n), period)
    return dict(enumerate(s.labels(catalog)))


# -- setup ------------------------------------------------------------------------------


def test_parameters_round_trip_and_refuse_another_catalog(
    city: Catalog, company: Catalog, test_keypair: Keypair
) -> None:
    d, _ = world(city, test_keypair)
    p = ProtocolParameters.from_sealed(
        d.sealed_params, city, d.params.registry_key, allow_insecure_key=True
    )
    assert p.layout == d.params.layout == protocol_layout(city, 512)
    assert p.n_subjects == N and p.public_key.n == test_keypair[0].n
    with pytest.raises(CatalogMismatch):
        ProtocolParameters.from_sealed(d.sealed_params, company, d.params.registry_key)
    with pytest.raises(InvalidMessage):
        ProtocolParameters.from_sealed(d.sealed_params, city, d.params.aggregator_key)


def test_setup_refuses_a_catalog_with_only_self_access(
    city: Catalog, test_keypair: Keypair
) -> None:
    """Used to escape as a bare StopIteration from the driver's setup."""
    only_self = dataclasses.replace(
        city, scheme=dataclasses.replace(city.scheme, purposes=(SELF_ACCESS_PURPOSE,))
    )
    with pytest.raises(ParameterError, match="needs one more purpose"):
        setup(only_self, agency_instances(city), N, test_keypair, clock=SimClock(START))


def test_registry_policies(city: Catalog, test_keypair: Keypair) -> None:
    d, _ = world(city, test_keypair)
    key = new_signing_key().public_key().public_bytes_raw()
    with pytest.raises(ValueError, match="not an agency"):
        d.registry.register_agency("x", "no-such-agency", key, multiplicity=1)
    with pytest.raises(ParameterError, match="instances"):
        d.registry.register_agency("tax-bureau#2", "tax-bureau", key, multiplicity=1)
    with pytest.raises(PolicyViolation):
        d.registry.register_relying_party("rp", ["marketing"], key)
    with pytest.raises(ValueError, match="already enrolled"):
        d.registry.enroll(["someone"])
    with pytest.raises(UnknownParty):
        d.registry.slot_of("nobody")
    fresh = Registry(city, new_signing_key())
    slots = fresh.enroll([f"p{i}" for i in range(50)])
    assert sorted(slots.values()) == list(range(50))


def test_aggregator_refuses_more_instances_than_the_layout_allows(
    city: Catalog, test_keypair: Keypair
) -> None:
    d, _ = world(city, test_keypair)
    other = Registry(city, new_signing_key())
    reg = other.register_agency("tax-bureau#2", "tax-bureau", bytes(32), multiplicity=5)
    with pytest.raises(InvalidMessage):  # not signed by the deployment's registry
        d.aggregator.register_agency(reg)
    key = new_signing_key().public_key().public_bytes_raw()
    d.registry._instances["tax-bureau"] = []  # a registry that forgot its own count
    reg2 = d.registry.register_agency("tax-bureau#2", "tax-bureau", key, multiplicity=5)
    with pytest.raises(ParameterError):
        d.aggregator.register_agency(reg2)
    before = d.ledger.state_digest()
    d.aggregator.register_agency(d.registrations[0])  # idempotent
    assert d.ledger.state_digest() == before


# -- submit and ingest ------------------------------------------------------------------


def test_agency_refuses_foreign_or_misdated_events(city: Catalog, test_keypair: Keypair) -> None:
    d, _ = world(city, test_keypair)
    court = agency(d, "intermediate-court")
    with pytest.raises(EventError, match="not intermediate-court"):
        court.submit([ev(1, "tax.arrears", P1)], P1)
    with pytest.raises(EventError, match="not in period"):
        court.submit([ev(1, "court.judgment-default", P1 + 1)], P1)
    court.submit([], P1)
    with pytest.raises(ValueError, match="already submitted"):
        court.submit([], P1)


def test_ingest_is_idempotent_and_receipts_check(city: Catalog, test_keypair: Keypair) -> None:
    d, _ = world(city, test_keypair)
    court, tax = agency(d, "intermediate-court"), agency(d, "tax-bureau")
    env = court.submit([ev(3, "court.judgment-default", P1)], P1)
    r1 = d.aggregator.ingest(env)
    state = d.ledger.state_digest()
    for _ in range(3):
        assert d.aggregator.ingest(env) == r1
    assert d.ledger.state_digest() == state
    registrations = len(d.agencies) + 1
    assert d.ledger.log.size == registrations + 1
    acc = d.ledger.accumulator(P1, "judgment", "")
    assert acc is not None and acc.contributions == 1
    assert court.accept_receipt(r1).log_index == registrations
    tax.submit([], P1)
    with pytest.raises(InvalidMessage):
        tax.accept_receipt(r1)  # a receipt for someone else's envelope


def test_ciphertext_under_another_key_or_with_a_wrong_bound_is_refused(
    city: Catalog, test_keypair: Keypair, other_keypair: Keypair
) -> None:
    d, _ = world(city, test_keypair)
    court = agency(d, "intermediate-court")
    env = court.submit([], P1)
    sub = codec.decode(codec.decode(env, SignedMessage).body, Submission)
    bound = delta_bounds(city, "intermediate-court")["judgment"]
    foreign_params = dataclasses.replace(
        d.params, public_key=other_keypair[0], layout=protocol_layout(city, 512)
    )
    foreign = foreign_params.backend(RandomnessPool(other_keypair[0]))
    zeros = np.zeros(N, dtype=np.int64)
    own = d.params.backend(RandomnessPool(test_keypair[0]))
    cases = {
        "foreign key": foreign.serialize(foreign.encrypt(zeros, bound=bound)),
        "low bound": own.serialize(own.encrypt(zeros, bound=bound - 1)),
        "garbage": b"PSCP" + bytes(40),
    }
    before = d.ledger.state_digest()
    for name, ct in cases.items():
        bad = seal(dataclasses.replace(sub, deltas=(ClassCiphertext("judgment", ct),)), court._key)
        with pytest.raises(InvalidMessage):
            d.aggregator.ingest(bad)
        assert d.ledger.state_digest() == before, name
    d.aggregator.ingest(env)  # the genuine one still goes through


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_alteration_is_rejected(
    city: Catalog, test_keypair: Keypair, data: st.DataObject
) -> None:
    d, env, state = _byte_flip_world(city, test_keypair)
    pos = data.draw(st.integers(0, len(env) - 1), label="position")
    xor = data.draw(st.integers(1, 255), label="xor")
    bad = bytearray(env)
    bad[pos] ^= xor
    with pytest.raises(PscError):
        d.aggregator.ingest(bytes(bad))
    assert d.ledger.state_digest() == state


_FLIP: dict[str, tuple[Deployment, bytes, bytes]] = {}


def _byte_flip_world(city: Catalog, keypair: Keypair) -> tuple[Deployment, bytes, bytes]:
    if "w" not in _FLIP:
        d, _ = world(city, keypair, n=20, seed="flip")
        transport = agency(d, "transport-bureau")
        d.aggregator.ingest(agency(d, "tax-bureau").submit([ev(2, "tax.arrears", P1)], P1))
        env = transport.submit(
            [ev(1, "traffic.drunk-driving", P1), ev(2, "traffic.violation", P1)], P1
        )
        _FLIP["w"] = (d, env, d.ledger.state_digest())
    return _FLIP["w"]


def test_byte_flip_world_accepts_the_unaltered_envelope(
    city: Catalog, test_keypair: Keypair
) -> None:
    d, env, _ = _byte_flip_world(city, test_keypair)
    # run last in this module's order of definition: an accepted envelope is kept
    receipt = d.aggregator.ingest(env)
    assert d.aggregator.ingest(env) == receipt
    _FLIP.clear()


# -- reveal -----------------------------------------------------------------------------


def test_grades_match_the_oracle_with_caps_and_expiry(city: Catalog, test_keypair: Keypair) -> None:
    cityd = simulate_city(city, subjects=N, periods=3, seed=3, first_period=P1)
    d, clock = world(city, test_keypair)
    events = [
        Event(int(d.slot_of[e.subject]), e.rule, e.date, e.evidence)
        for per in cityd.events.values()
        for v in per.values()
        for e in v
    ]
    # make sure the interesting cases are there: a cap, a default, a volunteer
    events += [
        ev(int(d.slot_of[0]), "traffic.drunk-driving", P1),
        ev(int(d.slot_of[1]), "court.judgment-default", P1 + 1),
        ev(int(d.slot_of[1]), "tax.arrears", P1 + 1, day=9),
        ev(int(d.slot_of[2]), "civic.volunteering", P1 + 2),
    ]
    events = sorted(set(events))
    submit_all(d, events, [P1, P1 + 1, P1 + 2])
    revealed = reveal_all(d, P1 + 2)
    assert revealed == oracle_labels(city, events, N, P1 + 2)
    assert revealed[int(d.slot_of[0])] == "C"  # capped: 970 points would be an A
    # expiry: short (12 months), judgment (24) and negative (36) classes drop out in turn
    for later in (P1 + 13, P1 + 25, P1 + 37):
        clock.advance_to(dt.datetime(later // 12, later % 12 + 1, 2, tzinfo=dt.UTC))
        assert reveal_all(d, later) == oracle_labels(city, events, N, later)
    assert reveal_all(d, P1 + 37) == dict.fromkeys(range(N), "A")
    assert len(d.ledger.reveals()) == 5
    assert all(r.purpose == "subject-self-access" for r in d.ledger.reveals())


def test_live_sums_follow_new_envelopes(city: Catalog, test_keypair: Keypair) -> None:
    d, _ = world(city, test_keypair)
    slot = int(d.slot_of[7])
    tax = agency(d, "tax-bureau")
    court = agency(d, "intermediate-court")
    d.aggregator.ingest(tax.submit([ev(slot, "tax.arrears", P1)], P1))
    assert reveal_all(d, P1)[slot] == "A"  # 970
    d.aggregator.ingest(court.submit([ev(slot, "court.judgment-default", P1)], P1))
    assert reveal_all(d, P1)[slot] == "B"  # 920: the cached sum was not reused


def test_relying_party_gets_one_grade_for_a_registered_purpose(
    city: Catalog, test_keypair: Keypair
) -> None:
    d, _ = world(city, test_keypair)
    slot = int(d.slot_of[5])
    submit_all(d, [ev(slot, "tax.arrears", P1)], [P1])
    req = d.bank.request_grade(slot, "credit-assessment", P1)
    assert d.bank.read_grade(req, reveal(d, req)) == "A"  # 970: one tax arrears
    log_entries = [d.ledger.log.entry(i) for i in range(d.ledger.log.size)]
    assert sum(b"reveal" in e for e in log_entries) == 1
    # purposes: unknown to the scheme, or not registered by this party
    with pytest.raises(PolicyViolation):
        d.bank.request_grade(slot, "marketing", P1)
    with pytest.raises(PolicyViolation, match="did not register"):
        d.aggregator.prepare_reveal(d.bank.request_grade(slot, "tenancy-screening", P1))
    # a request for a period that has not happened, and one signed by a stranger
    with pytest.raises(PolicyViolation, match="not happened"):
        d.aggregator.prepare_reveal(d.bank.request_grade(slot, "credit-assessment", P1 + 12))
    forged = seal(
        GradeRequest("example-bank", "credit-assessment", P1, (slot,), bytes(16), b"", 0),
        new_signing_key(),
    )
    with pytest.raises(InvalidMessage):
        d.aggregator.prepare_reveal(forged)


def test_key_holder_checks_consent_seam_freshness_and_blocks(
    city: Catalog, test_keypair: Keypair
) -> None:
    d, clock = world(city, test_keypair)
    submit_all(d, [], [P1])
    now = int(clock().timestamp())
    with_consent = seal(
        GradeRequest("example-bank", "credit-assessment", P1, (1,), bytes(16), b"token", now),
        d.bank._key,
    )
    with pytest.raises(PolicyViolation, match="consent"):
        d.key_holder.answer(d.aggregator.prepare_reveal(with_consent))
    stale = seal(
        GradeRequest("example-bank", "credit-assessment", P1, (1,), bytes(16), b"", now - 3600),
        d.bank._key,
    )
    with pytest.raises(InvalidMessage, match="fresh"):
        d.aggregator.prepare_reveal(stale)
    # an aggregator that sends the wrong blocks is refused before anything is decrypted
    req = d.bank.request_grade(1, "credit-assessment", P1)
    rr = codec.decode(
        codec.decode(d.aggregator.prepare_reveal(req), SignedMessage).body, RevealRequest
    )
    missing = dataclasses.replace(rr, blocks=rr.blocks[:1])
    with pytest.raises(InvalidMessage, match="needed blocks"):
        d.key_holder.answer(seal(missing, d.aggregator._key))
    swapped = dataclasses.replace(
        rr,
        blocks=tuple(
            BlockCiphertext(b.label, b.block, rr.blocks[0].ciphertext[:-1]) for b in rr.blocks
        ),
    )
    with pytest.raises(InvalidMessage):
        d.key_holder.answer(seal(swapped, d.aggregator._key))
    with pytest.raises(InvalidMessage):  # not signed by the aggregator
        d.key_holder.answer(seal(rr, d.bank._key))


def test_responses_are_bound_to_their_request(city: Catalog, test_keypair: Keypair) -> None:
    d, _ = world(city, test_keypair)
    submit_all(d, [], [P1])
    r1 = d.bank.request_grade(1, "credit-assessment", P1)
    r2 = d.bank.request_grade(2, "credit-assessment", P1)
    a1 = d.key_holder.answer(d.aggregator.prepare_reveal(r1))
    a2 = d.key_holder.answer(d.aggregator.prepare_reveal(r2))
    with pytest.raises(InvalidMessage):
        d.bank.read_grade(r2, a1.response)
    with pytest.raises(InvalidMessage):
        read_grades(d.params, r1, a1.response[:-1] + bytes([a1.response[-1] ^ 1]))
    with pytest.raises(InvalidMessage):  # the aggregator logs notices, not responses
        d.aggregator.release(a1.response)
    logged = d.aggregator.release(a1.notice)
    d.key_holder.check_logged(a1, logged)
    with pytest.raises(InvalidMessage):  # a log proof for another reveal
        d.key_holder.check_logged(a2, logged)
    size = d.ledger.log.size  # a retried notice is logged once and answered again
    assert d.aggregator.release(a1.notice) == logged and d.ledger.log.size == size
    record = d.ledger.reveal(digest(r1))
    assert record is not None and record.slots == 1 and record.requester == "example-bank"
    # the aggregator's ledger never holds a grade: only the key holder's notice and hashes
    assert a1.response not in d.ledger.connection.execute("SELECT notice FROM reveals").fetchone()


def test_aggregator_and_registry_hold_no_private_paillier_key(
    city: Catalog, test_keypair: Keypair
) -> None:
    d, _ = world(city, test_keypair)
    for party in (d.aggregator, d.registry, *d.agencies, d.bank):
        assert not any(isinstance(v, PaillierPrivateKey) for v in vars(party).values())


# -- subject access ----------------------------------------------------------------------


def _access_world(
    city: Catalog, keypair: Keypair
) -> tuple[Deployment, Subject, dict[bytes, bytes]]:
    d, _ = world(city, keypair)
    s0 = int(d.slot_of[0])
    events = [
        ev(s0, "traffic.drunk-driving", P1),
        ev(s0, "traffic.violation", P1, day=7),
        ev(s0, "traffic.violation", P1 + 1, day=7),
        ev(int(d.slot_of[1]), "traffic.violation", P1, day=8),
        ev(s0, "civic.blood-donation", P1 + 1),
    ]
    submit_all(d, events, [P1, P1 + 1])
    subject = Subject(s0, d.params)
    for reg in d.registrations:
        subject.learn_agency(reg)
    inclusions = {
        r.envelope_hash: d.aggregator.log_inclusion(r.envelope_hash) for r in d.ledger.envelopes()
    }
    return d, subject, inclusions


def test_subject_access_verifies_and_explains(city: Catalog, test_keypair: Keypair) -> None:
    d, subject, inclusions = _access_world(city, test_keypair)
    events: list[Event] = []
    for a in d.agencies:
        req = d.registry.access_request("resident-0000000", P1, P1 + 1)
        events += subject.verify_access(req, a.answer_access(req), inclusions)
    assert sorted(e.rule for e in events) == [
        "civic.blood-donation",
        "traffic.drunk-driving",
        "traffic.violation",
        "traffic.violation",
    ]
    points, grade = subject.explain(events, P1 + 1)
    assert (points, grade) == (1000 - 30 - 5 - 5 + 10, "C")
    assert reveal_all(d, P1 + 1)[subject.slot] == grade


def test_tampered_access_answers_are_detected(city: Catalog, test_keypair: Keypair) -> None:
    d, subject, inclusions = _access_world(city, test_keypair)
    transport = agency(d, "transport-bureau")
    req = d.registry.access_request("resident-0000000", P1, P1 + 1)
    good = transport.answer_access(req)
    resp = codec.decode(codec.decode(good, SignedMessage).body, AccessResponse)
    pe = resp.periods[0]
    e0 = pe.events[0]

    def with_event(**changes: object) -> bytes:
        e = dataclasses.replace(e0, **changes)  # type: ignore[arg-type]
        p = dataclasses.replace(pe, events=(e, *pe.events[1:]))
        return seal(dataclasses.replace(resp, periods=(p, *resp.periods[1:])), transport._key)

    other_rule = "traffic.violation" if e0.rule != "traffic.violation" else "traffic.drunk-driving"
    tampered = {
        "rule": with_event(rule=other_rule),
        "evidence": with_event(evidence="0" * 64),
        "salt": with_event(salt=bytes(32)),
        "index": with_event(index=(e0.index + 1) % pe.commitment_size),
        "foreign rule": with_event(rule="tax.arrears"),
        "other envelope": seal(
            dataclasses.replace(
                resp,
                periods=(
                    dataclasses.replace(pe, envelope_hash=resp.periods[1].envelope_hash),
                    *resp.periods[1:],
                ),
            ),
            transport._key,
        ),
        "dropped period": seal(dataclasses.replace(resp, periods=resp.periods[:1]), transport._key),
        "unsigned": good[:-3] + bytes([good[-3] ^ 1]) + good[-2:],
        "other agency's key": seal(resp, agency(d, "tax-bureau")._key),
        "other subject": seal(dataclasses.replace(resp, subject=resp.subject + 1), transport._key),
    }
    for name, bad in tampered.items():
        with pytest.raises(InvalidMessage):
            subject.verify_access(req, bad, inclusions)
        assert name
    # without the log's word on the commitment, nothing is believed
    with pytest.raises(InvalidMessage):
        subject.verify_access(req, good, {})
    # an answer for another request is refused
    other = d.registry.access_request("resident-0000000", P1, P1 + 1)
    with pytest.raises(InvalidMessage):
        subject.verify_access(other, good, inclusions)
    # a request for P1 only, answered with P1 and P1+1: a period that was not asked for
    narrow = d.registry.access_request("resident-0000000", P1, P1)
    wide = seal(dataclasses.replace(resp, request_hash=digest(narrow)), transport._key)
    with pytest.raises(InvalidMessage, match="not asked"):
        subject.verify_access(narrow, wide, inclusions)
    # a log inclusion filed under the wrong envelope hash
    h0, h1 = list(inclusions)[:2]
    with pytest.raises(InvalidMessage):
        subject.verify_access(req, good, {**inclusions, h0: inclusions[h1]})


def test_an_omitted_event_shows_up_as_a_grade_mismatch(
    city: Catalog, test_keypair: Keypair
) -> None:
    d, subject, inclusions = _access_world(city, test_keypair)
    transport = agency(d, "transport-bureau")
    req = d.registry.access_request("resident-0000000", P1, P1 + 1)
    resp = codec.decode(
        codec.decode(transport.answer_access(req), SignedMessage).body, AccessResponse
    )
    pe = resp.periods[0]
    hidden = tuple(e for e in pe.events if e.rule != "traffic.drunk-driving")
    partial = seal(
        dataclasses.replace(
            resp, periods=(dataclasses.replace(pe, events=hidden), *resp.periods[1:])
        ),
        transport._key,
    )
    events = subject.verify_access(req, partial, inclusions)  # inclusion proofs still hold...
    _, grade = subject.explain(events, P1 + 1)
    assert grade != reveal_all(d, P1 + 1)[subject.slot]  # ...but the grade gives it away
