"""Issue 6, end to end: consent tokens at the reveal gate and rights workflows on the ledger.

Every party is a protocol role with real Ed25519 signatures, a real SQLite ledger and
transparency log, an (insecure, small) Paillier key and one simulated clock.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import Catalog, period_index
from psc.events import Event, EventTable
from psc.exceptions import ConsentRefused, InvalidMessage, PolicyViolation, RightsRequestError
from psc.hazmat.backends.paillier import PackedCiphertext
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.log_verify import verify_log
from psc.oracle import score
from psc.parties.key_holder import Revealer
from psc.parties.relying_party import read_grades
from psc.parties.rights import AdjustmentEntry, verify_adjustment
from psc.policy.clock import SimulatedClock
from psc.policy.consent import ConsentToken, issue_consent
from psc.protocol import codec
from psc.protocol.messages import AccessResponse
from psc.protocol.signing import digest, open_signed, public_bytes, seal
from psc.sim.city import agency_instances
from psc.sim.rights_deployment import RightsDeployment, setup_rights
from psc.sim.sources import seeded_randbytes

Keypair = tuple[PaillierPublicKey, PaillierPrivateKey]
START = dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC)
P1 = period_index(START.date())  # January 2026
NOW = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)  # April: evaluation period P1 + 3
N = 24


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
        randbytes=seeded_randbytes("rights-e2e"),
    )
    clock.advance(seconds=(NOW - START).total_seconds())
    return r, clock


def ident(i: int) -> str:
    return f"resident-{i:07d}"


def ev(r: RightsDeployment, i: int, rule: str, period: int, day: int = 5) -> Event:
    date = dt.date(period // 12, period % 12 + 1, day)
    slot = r.registry.slot_of(ident(i))
    return Event(slot, rule, date, digest(f"{i}/{rule}/{date}".encode()).hex())


def submit(r: RightsDeployment, events: Sequence[Event], periods: Sequence[int]) -> None:
    cat = r.deployment.params.catalog
    for p in periods:
        for a in r.agencies:
            mine = [
                e for e in events if e.period == p and cat.rule(e.rule).agency == a.catalog_agency
            ]
            a.accept_receipt(r.aggregator.ingest(a.submit(mine, p)))


def reveal(r: RightsDeployment, request: bytes) -> bytes:
    d = r.deployment
    answer = d.key_holder.answer(d.aggregator.prepare_reveal(request))
    d.key_holder.check_logged(answer, d.aggregator.release(answer.notice))
    return answer.response


def all_grades(r: RightsDeployment, period: int) -> dict[int, str]:
    req = r.registry.grade_request(range(N), period)
    return read_grades(r.deployment.params, req, reveal(r, req))


def oracle(catalog: Catalog, events: Sequence[Event], period: int) -> dict[int, str]:
    return dict(
        enumerate(score(EventTable.from_events(catalog, events, N), period).labels(catalog))
    )


def exact_scores(r: RightsDeployment, sk: PaillierPrivateKey, period: int) -> list[int]:
    """What the encrypted live sums hold, decrypted with the (test) private key."""
    total, _ = r.aggregator.live_sums(period)
    sums = r.deployment.params.backend().decrypt(total, sk)
    return [r.deployment.params.catalog.scheme.base_score + int(v) for v in sums]


def oracle_scores(catalog: Catalog, events: Sequence[Event], period: int) -> list[int]:
    return [int(v) for v in score(EventTable.from_events(catalog, events, N), period).score]


class SpyRevealer(Revealer):
    """Counts decryptions: a refused request must never reach the revealer."""

    def __init__(self, inner: Revealer) -> None:
        self.inner = inner
        self.calls = 0

    def grades(
        self,
        slots: Sequence[int],
        score: Mapping[int, PackedCiphertext],
        caps: Mapping[str, Mapping[int, PackedCiphertext]],
    ) -> dict[int, int]:
        self.calls += 1
        return self.inner.grades(slots, score, caps)


# -- consent tokens at the reveal gate ----------------------------------------------------


def test_grade_queries_need_a_valid_matching_token_and_refusals_are_logged(
    city: Catalog, test_keypair: Keypair
) -> None:
    r, clock = world(city, test_keypair)
    d = r.deployment
    alice_key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    bob_key = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    r.directory.add(r.registry.certify_consent_key(ident(3), public_bytes(alice_key)))
    r.directory.add(r.registry.certify_consent_key(ident(4), public_bytes(bob_key)))
    alice, bob = r.registry.pseudonym_of(ident(3)), r.registry.pseudonym_of(ident(4))
    assert ident(3) not in alice and alice != bob  # tokens carry no identity
    slot = r.registry.slot_of(ident(3))
    submit(r, [ev(r, 3, "tax.arrears", P1)], [P1])
    spy = SpyRevealer(d.key_holder.revealer)
    d.key_holder.revealer = spy
    now = clock.now()

    def token(key: Ed25519PrivateKey = alice_key, **kw: object) -> bytes:
        args: dict[str, object] = dict(
            subject=alice,
            relying_party="example-bank",
            purpose="credit-assessment",
            domain=city.scheme.domain,
            catalog_hash=city.version_hash,
            issued_at=now - dt.timedelta(days=1),
            expires_at=now + dt.timedelta(days=30),
            period=P1 + 3,
        )
        args.update(kw)
        return issue_consent(key, **args).encode()  # type: ignore[arg-type]

    def ask(consent: bytes) -> str:
        req = d.bank.request_grade(slot, "credit-assessment", P1 + 3, consent=consent)
        return d.bank.read_grade(req, reveal(r, req))

    assert ask(token()) == "A"  # 970 points: one tax arrears
    assert spy.calls == 1 and len(d.ledger.reveals()) == 1

    withdrawn = token()
    r.office.withdraw_consent(ident(3), token_id_of(withdrawn), "example-bank")
    expired = token(issued_at=now - dt.timedelta(days=40), expires_at=now - dt.timedelta(days=1))
    cases: list[tuple[bytes, type[Exception], str]] = [
        (expired, ConsentRefused, "expired"),
        (token(relying_party="other-bank"), ConsentRefused, "relying-party"),
        (token(purpose="tenancy-screening"), ConsentRefused, "purpose"),
        (token(domain="employment"), ConsentRefused, "domain"),
        (token(period=P1 + 2), ConsentRefused, "period"),  # another period's grade
        (token(expires_at=now + dt.timedelta(days=36500)), ConsentRefused, "too-long"),
        (withdrawn, ConsentRefused, "withdrawn"),
        (token(key=bob_key), InvalidMessage, "bad-token"),  # signed by someone else
        (token(key=bob_key, subject=bob), InvalidMessage, "bad-token"),  # bob's, for alice's slot
        (token(subject=bob), ConsentRefused, "subject"),  # alice's key, naming another subject
        (b"", ConsentRefused, "missing"),
    ]
    for consent, error, reason in cases:
        with pytest.raises(error) as info:
            ask(consent)
        if isinstance(info.value, ConsentRefused):
            assert info.value.reason == reason
            assert reason in str(info.value)
        logged = r.refusals.entries()[-1]
        assert (logged.reason, logged.relying_party, logged.purpose) == (
            reason,
            "example-bank",
            "credit-assessment",
        )
    assert spy.calls == 1  # nothing was decrypted for any refused request
    assert len(d.ledger.reveals()) == 1  # and nothing was released
    assert [e.reason for e in r.refusals.entries()] == [c[2] for c in cases]
    # the subject's own grade (through the registry) needs no token
    assert all_grades(r, P1 + 3)[slot] == "A"


def token_id_of(token: bytes) -> str:
    return ConsentToken.decode(token).token_id


def test_a_token_for_an_unregistered_purpose_never_reaches_the_gate(
    city: Catalog, test_keypair: Keypair
) -> None:
    r, _ = world(city, test_keypair)
    d = r.deployment
    submit(r, [], [P1])
    slot = r.registry.slot_of(ident(1))
    with pytest.raises(PolicyViolation, match="did not register"):
        d.aggregator.prepare_reveal(d.bank.request_grade(slot, "tenancy-screening", P1))
    assert r.refusals.entries() == []


# -- rights workflows on the ledger ---------------------------------------------------------


def access_and_answer(
    r: RightsDeployment, i: int, *, at: int
) -> tuple[int, dict[str, Any], list[str]]:
    req = r.office.open_access(ident(i))
    answer = r.office.answer_access(req.id, first_period=P1, at=at)
    refs = [e.ref for e in answer.events]
    return req.id, answer.to_json(), refs


def test_access_is_answered_with_verified_proofs_and_a_tampered_answer_keeps_it_open(
    city: Catalog, test_keypair: Keypair, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, clock = world(city, test_keypair)
    events = [
        ev(r, 3, "tax.arrears", P1),
        ev(r, 3, "traffic.violation", P1 + 1),
        ev(r, 3, "civic.volunteering", P1 + 2),
        ev(r, 4, "traffic.drunk-driving", P1),
    ]
    submit(r, events, [P1, P1 + 1, P1 + 2])
    desk = r.office.desk
    req = r.office.open_access(ident(3))
    assert req.due == dt.date(2026, 4, 22)  # 15 working days after Wednesday 1 April
    # a tampering agency: re-signs an answer with an altered evidence hash
    tax = next(a for a in r.agencies if a.catalog_agency == "tax-bureau")
    honest = tax.answer_access

    def tampered(sealed: bytes) -> bytes:
        resp = open_signed(honest(sealed), AccessResponse, lambda m: tax.public_key)
        pe = resp.periods[0]
        op = pe.events[0]
        bad_op = type(op)(op.rule, op.date, "0" * 64, op.salt, op.index, op.proof)
        bad = type(resp)(
            resp.agency,
            resp.subject,
            resp.request_hash,
            (type(pe)(pe.period, pe.envelope_hash, pe.commitment_size, (bad_op,)),),
        )
        return seal(bad, tax._key)

    monkeypatch.setattr(tax, "answer_access", tampered)
    with pytest.raises(InvalidMessage):
        r.office.answer_access(req.id, first_period=P1, at=P1 + 3)
    assert desk.get(req.id).status == "open"  # not closed as answered
    assert [link.action for link in r.office.links(req.id)] == ["access-failed"]
    monkeypatch.setattr(tax, "answer_access", honest)
    clock.advance(days=1)
    answer = r.office.answer_access(req.id, first_period=P1, at=P1 + 3)
    want = oracle(city, events, P1 + 3)[r.registry.slot_of(ident(3))]
    assert answer.grade == answer.revealed_grade == want
    assert answer.score == 1000 - 30 - 5 + 5
    assert sorted(e.event.rule for e in answer.events) == [
        "civic.volunteering",
        "tax.arrears",
        "traffic.violation",
    ]
    done = desk.get(req.id)
    assert done.status == "granted" and done.late is False
    assert done.outcome is not None and '"verified": true' in done.outcome
    assert [link.action for link in r.office.links(req.id)] == ["access-failed", "access-verified"]


def test_correction_is_a_logged_compensating_delta_linked_to_the_original(
    city: Catalog, test_keypair: Keypair
) -> None:
    r, clock = world(city, test_keypair)
    d = r.deployment
    events = [
        ev(r, 3, "court.judgment-default", P1),
        ev(r, 3, "tax.arrears", P1 + 1),
        ev(r, 5, "court.judgment-default", P1),  # someone else's judgment stays
        ev(r, 6, "traffic.drunk-driving", P1 + 1),  # a capping rule, to be appealed
    ]
    submit(r, events, [P1, P1 + 1, P1 + 2])
    assert all_grades(r, P1 + 3) == oracle(city, events, P1 + 3)
    _, _, refs = access_and_answer(r, 3, at=P1 + 3)
    judgment = next(
        e
        for e in r.office.verified_access(ident(3), first_period=P1, at=P1 + 3).events
        if e.event.rule.startswith("court")
    )
    assert judgment.ref in refs
    req = r.office.open_correction(ident(3), judgment.ref, note="paid before the judgment")
    assert req.due == dt.date(2026, 4, 21)  # 20 calendar days caps the 15 working days
    records = r.office.grant_correction(req.id)
    (rec,) = records
    # logged and linked: the log leaf names the original envelope and the cancelled leaf
    entry = codec.decode(d.ledger.log.entry(rec.log_index), AdjustmentEntry)
    assert entry.original == judgment.envelope and entry.leaves == (judgment.leaf,)
    assert entry.kind == "correction" and entry.effective_period == P1 + 3
    regs = r.office.agency_registrations
    adj = verify_adjustment(
        d.params, regs, rec.adjustment, r.aggregator.adjustment_inclusion(rec.adjustment_hash)
    )
    assert adj.original == judgment.envelope
    (corr,) = r.office.desk.corrections(judgment.ref)
    assert corr.compensating_delta == 50 and corr.period == "2026-04"
    assert r.office.desk.get(req.id).status == "granted"
    assert [link.adjustment_hash for link in r.office.links(req.id)] == [rec.adjustment_hash]
    # grades: from the adjustment's period on, as if the judgment had not been recorded
    corrected = [e for e in events if e != judgment.event]
    got = all_grades(r, P1 + 3)
    assert got == oracle(city, corrected, P1 + 3)
    assert got != oracle(city, events, P1 + 3)
    # ...and for later periods too; earlier periods keep the grades they had
    clock.advance(days=31)
    assert all_grades(r, P1 + 4) == oracle(city, corrected, P1 + 4)
    assert all_grades(r, P1 + 2) == oracle(city, events, P1 + 2)
    # an appeal against a capping record lifts the cap too
    (drunk,) = [
        e
        for e in r.office.verified_access(ident(6), first_period=P1, at=P1 + 4).events
        if e.event.rule == "traffic.drunk-driving"
    ]
    assert all_grades(r, P1 + 4)[r.registry.slot_of(ident(6))] == "C"
    appeal = r.office.open_correction(ident(6), drunk.ref, kind="appeal")
    r.office.grant_correction(appeal.id)
    final = [e for e in corrected if e != drunk.event]
    assert all_grades(r, P1 + 4) == oracle(city, final, P1 + 4)
    assert all_grades(r, P1 + 4)[r.registry.slot_of(ident(6))] == "A"
    # the subject's access answer now explains the correction, and still verifies
    _, answer, _ = access_and_answer(r, 3, at=P1 + 4)
    cancelled = [e for e in answer["events"] if e["cancelled_by"]]
    assert [c["rule"] for c in cancelled] == ["court.judgment-default"]
    assert answer["grade"] == answer["revealed_grade"]
    # exact scores (decrypted here with the test key): the compensations cancel exactly,
    # and when the originals' retention ends so do they: no bonus is left over
    for later in (P1 + 4, P1 + 23, P1 + 24, P1 + 36, P1 + 37):
        clock.advance(days=(dt.date(later // 12, later % 12 + 1, 2) - clock.now().date()).days)
        assert exact_scores(r, test_keypair[1], later) == oracle_scores(city, final, later)
        assert all_grades(r, later) == oracle(city, final, later)
    # the log with adjustment leaves verifies end to end
    report = verify_log(d.ledger.connection, d.aggregator_public_key)
    assert report.size == d.ledger.log.size


def test_credit_repair_removes_the_record_class_early(city: Catalog, test_keypair: Keypair) -> None:
    r, clock = world(city, test_keypair)
    events = [
        ev(r, 3, "tax.arrears", P1),
        ev(r, 3, "tax.arrears", P1 + 1),
        ev(r, 3, "traffic.violation", P1 + 1),
        ev(r, 7, "tax.arrears", P1),  # another subject's arrears stay
    ]
    submit(r, events, [P1, P1 + 1])
    slot = r.registry.slot_of(ident(3))
    before = all_grades(r, P1 + 3)
    assert before == oracle(city, events, P1 + 3) and before[slot] == "B"  # 935
    _, _, refs = access_and_answer(r, 3, at=P1 + 3)
    office, desk = r.office, r.office.desk
    count = r.aggregator.adjustment_count()
    # not proven: refused with the reason, nothing logged
    req = office.open_repair(ident(3), "tax.arrears", refs[0])
    assert req.due == dt.date(2026, 4, 6)  # 3 working days (Shenzhen Art. 82)
    assert (
        office.decide_repair(req.id, event_date=dt.date(2026, 2, 5), performance_proven=False) == []
    )
    assert desk.get(req.id).status == "refused" and "not proven" in (desk.get(req.id).reason or "")
    # too early: the minimum publication period of a moderate rule is 3 months
    req = office.open_repair(ident(3), "tax.arrears", refs[0])
    assert (
        office.decide_repair(req.id, event_date=dt.date(2026, 2, 5), performance_proven=True) == []
    )
    assert "2026-05-05" in (desk.get(req.id).reason or "")
    assert r.aggregator.adjustment_count() == count and all_grades(r, P1 + 3) == before
    # once the period has passed: both arrears stop counting, from now on
    clock.advance(days=35)  # 6 May
    req = office.open_repair(ident(3), "tax.arrears", refs[0])
    # the event date is taken from the proven records (the latest arrears: 5 February)
    records = office.decide_repair(req.id, performance_proven=True)
    assert len(records) == 2 and {rec.kind for rec in records} == {"repair"}
    assert desk.get(req.id).status == "granted"
    assert [rm[0] for rm in desk.removals(ident(3))] == ["repair"]
    repaired = [e for e in events if not (e.subject == slot and e.rule == "tax.arrears")]
    after = all_grades(r, P1 + 4)
    assert after == oracle(city, repaired, P1 + 4)
    assert exact_scores(r, test_keypair[1], P1 + 4) == oracle_scores(city, repaired, P1 + 4)
    assert exact_scores(r, test_keypair[1], P1 + 3) == oracle_scores(city, events, P1 + 3)
    assert after[slot] == "A" and oracle(city, events, P1 + 4)[slot] == "B"  # early: 36 months
    assert after[r.registry.slot_of(ident(7))] == before[r.registry.slot_of(ident(7))]
    # nothing is left to repair
    again = office.open_repair(ident(3), "tax.arrears", refs[0])
    with pytest.raises(RightsRequestError, match="no live, uncancelled event"):
        office.decide_repair(again.id, performance_proven=True)
    assert desk.get(again.id).status == "open"


def test_overdue_requests_are_reported_and_late_answers_flagged(
    city: Catalog, test_keypair: Keypair
) -> None:
    r, clock = world(city, test_keypair)
    submit(r, [ev(r, 2, "utility.arrears", P1)], [P1])
    req = r.office.open_access(ident(2))
    clock.advance(days=21)  # 22 April: the deadline was 22 April, still in time
    assert r.office.overdue() == []
    clock.advance(days=1)
    assert [o.id for o in r.office.overdue()] == [req.id]
    r.office.answer_access(req.id, first_period=P1, at=P1 + 3)
    assert r.office.desk.get(req.id).late is True
    assert r.office.overdue() == []


def test_key_holder_replay_state_survives_a_restart(
    city: Catalog, test_keypair: Keypair, tmp_path: Path
) -> None:
    """A restarted key holder still refuses a request it answered (issue 16 item 5)."""
    from psc.exceptions import InvalidMessage as Invalid
    from psc.parties.key_holder import KeyHolder
    from psc.protocol.replay import AnsweredRequests

    r, _ = world(city, test_keypair)
    d = r.deployment
    store = tmp_path / "key-holder.sqlite"
    kh = KeyHolder(
        d.params,
        d.key_holder.revealer,
        d.key_holder._key,
        log_view=d.key_holder._log,
        clock=d.key_holder._clock,
        answered=AnsweredRequests(sqlite3.connect(store)),
    )
    sealed = d.aggregator.prepare_reveal(r.registry.grade_request([0], P1 + 3))
    kh.answer(sealed)
    with pytest.raises(Invalid, match="already answered"):
        kh.answer(sealed)
    restarted = KeyHolder(
        d.params,
        d.key_holder.revealer,
        d.key_holder._key,
        log_view=d.key_holder._log,
        clock=d.key_holder._clock,
        answered=AnsweredRequests(sqlite3.connect(store)),
    )
    with pytest.raises(Invalid, match="already answered"):
        restarted.answer(sealed)
    in_memory = KeyHolder(
        d.params,
        d.key_holder.revealer,
        d.key_holder._key,
        log_view=d.key_holder._log,
        clock=d.key_holder._clock,
    )
    in_memory.answer(sealed)  # what a key holder without durable state would do


def test_recovery_leaves_an_order_that_cannot_complete_open_and_says_why(
    city: Catalog, test_keypair: Keypair
) -> None:
    r, _ = world(city, test_keypair)
    office = r.office
    req = office.open_access(ident(5))  # any open request; give it an unusable order
    office.desk.record_intent(req.id, r.agencies[0].id, b"not a signed order", {"rule": "x"})
    with pytest.raises(RightsRequestError, match="cannot be refused"):
        office.desk.refuse(req.id, "no", by="x")
    assert office.recover() == []
    assert office.desk.get(req.id).status == "open"
    (link,) = [k for k in office.links(req.id) if k.action == "recovery-failed"]
    assert link.note
