"""Data-subject rights workflows under a simulated clock."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from psc.catalog import load_catalog
from psc.exceptions import ConsentRefused, RightsRequestError
from psc.policy.clock import CST, SimulatedClock, WorkingCalendar
from psc.policy.consent import issue_consent, verify_consent
from psc.policy.deployment import load_deployment
from psc.policy.requests import DeadlinePolicy
from psc.policy.rights import RightsDesk

CITY = load_catalog("city")
START = dt.datetime(2026, 11, 25, 10, 0, tzinfo=CST)  # a Wednesday


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture
def desk(clock: SimulatedClock) -> RightsDesk:
    return RightsDesk(sqlite3.connect(":memory:"), clock, catalog=CITY)


def test_default_deadlines(desk: RightsDesk) -> None:
    assert desk.open("access", "S-1").due == dt.date(2026, 12, 16)  # 15 working days
    assert desk.open("repair", "S-1", ref="EV-1", rule="tax.arrears").due == dt.date(
        2026, 11, 30
    )  # 3 working days
    assert desk.open("correction", "S-1", ref="EV-2").due == dt.date(
        2026, 12, 15
    )  # 20 calendar days first


def test_holidays_push_deadlines(clock: SimulatedClock) -> None:
    cal = WorkingCalendar.of(holidays=[dt.date(2026, 11, 26), dt.date(2026, 11, 27)])
    desk = RightsDesk(
        sqlite3.connect(":memory:"), clock, calendar=cal, deadlines=DeadlinePolicy(working_days=2)
    )
    assert desk.open("access", "S-1").due == dt.date(2026, 12, 1)


def test_deadlines_from_deployment(clock: SimulatedClock) -> None:
    d = load_deployment("demo")
    pol = DeadlinePolicy.from_config(d.rights)
    assert (
        pol.working_days == 15 and pol.per_kind["repair"] == 3 and pol.calendar_cap["appeal"] == 20
    )


def test_overdue_under_simulated_clock(desk: RightsDesk, clock: SimulatedClock) -> None:
    a = desk.open("access", "S-1")
    b = desk.open("explanation", "S-2")
    clock.advance(days=21)  # 2026-12-16: the due day itself is not overdue
    assert desk.overdue() == []
    desk.answer_access(b.id, {"events": [], "score": 1000, "grade": "A"}, by="clerk")
    clock.advance(days=1)
    assert [r.id for r in desk.overdue()] == [a.id]
    late = desk.answer_access(a.id, {"events": []}, by="clerk")
    assert late.status == "granted" and late.late is True
    assert desk.get(b.id).late is False
    assert desk.overdue() == []


def test_correction_records_linked_compensating_delta(
    desk: RightsDesk, clock: SimulatedClock
) -> None:
    req = desk.open(
        "correction",
        "S-1",
        ref="ENV-2026-10/ev-7",
        rule="traffic.violation",
        details={"note": "not my car"},
    )
    assert "ENV-2026-10/ev-7" in desk.flagged_refs()
    with pytest.raises(RightsRequestError, match="opposite sign"):
        desk.grant_correction(
            req.id, agency="transport-bureau", compensating_delta=-5, period="2026-10", by="agency"
        )
    with pytest.raises(RightsRequestError, match=r"\|delta\| <= 20"):
        desk.grant_correction(
            req.id, agency="transport-bureau", compensating_delta=25, period="2026-10", by="agency"
        )
    with pytest.raises(ValueError, match="YYYY-MM"):
        desk.grant_correction(
            req.id, agency="transport-bureau", compensating_delta=5, period="October", by="agency"
        )
    clock.advance(days=2)
    c = desk.grant_correction(
        req.id, agency="transport-bureau", compensating_delta=5, period="2026-10", by="agency"
    )
    assert c.original_ref == "ENV-2026-10/ev-7" and c.compensating_delta == 5
    assert desk.corrections("ENV-2026-10/ev-7") == [c]
    r = desk.get(req.id)
    assert (
        r.status == "granted"
        and "linked to ENV-2026-10/ev-7" in (r.outcome or "")
        and r.late is False
    )
    assert desk.flagged_refs() == set()
    assert [a for _, a, _ in desk.log(req.id)] == ["opened", "granted"]
    with pytest.raises(RightsRequestError, match="already granted"):
        desk.refuse(req.id, "too late", by="x")


def test_appeal_refused_with_reason(desk: RightsDesk) -> None:
    req = desk.open("appeal", "S-1", ref="EV-3")
    with pytest.raises(RightsRequestError, match="reason"):
        desk.refuse(req.id, "  ", by="agency")
    r = desk.refuse(
        req.id, "the penalty decision was upheld on review (decision 2026-44)", by="agency"
    )
    assert r.status == "refused" and r.reason and "upheld" in r.reason


def test_repair_conditions(desk: RightsDesk, clock: SimulatedClock) -> None:
    # serious rule: 6 months minimum publication; performance must be proven
    a = desk.open("repair", "S-1", ref="EV-9", rule="court.judgment-default")
    r = desk.decide_repair(
        a.id, event_date=dt.date(2026, 8, 1), performance_proven=True, by="office"
    )
    assert r.status == "refused" and "2027-02-01" in (r.reason or "")
    b = desk.open("repair", "S-1", ref="EV-9", rule="court.judgment-default")
    r = desk.decide_repair(
        b.id, event_date=dt.date(2026, 1, 1), performance_proven=False, by="office"
    )
    assert r.status == "refused" and "not proven" in (r.reason or "")
    c = desk.open("repair", "S-1", ref="EV-9", rule="court.judgment-default")
    r = desk.decide_repair(
        c.id, event_date=dt.date(2026, 1, 1), performance_proven=True, by="office"
    )
    assert r.status == "granted"
    assert desk.removals("S-1") == [
        ("repair", "S-1", "court.judgment-default", "EV-9", "2026-11-25")
    ]


def test_repair_minor_rule_immediately(desk: RightsDesk) -> None:
    a = desk.open("repair", "S-2", ref="EV-1", rule="utility.arrears")
    assert (
        desk.decide_repair(
            a.id, event_date=dt.date(2026, 11, 20), performance_proven=True, by="o"
        ).status
        == "granted"
    )


def test_deletion(desk: RightsDesk) -> None:
    a = desk.open("deletion", "S-3", ref="EV-4")
    assert desk.grant_deletion(a.id, by="office", note="purpose ended").status == "granted"
    assert desk.removals() == [("deletion", "S-3", None, "EV-4", "2026-11-25")]


@pytest.mark.parametrize(
    ("kind", "kw", "match"),
    [
        ("gossip", {}, "unknown request kind"),
        ("correction", {}, "original event"),
        ("repair", {"ref": "E"}, "rule"),
        ("consent-withdrawal", {"ref": "T"}, "relying party"),
        ("consent-withdrawal", {}, "consent token id"),
        ("access", {"rule": "no.such"}, "not in catalog"),
    ],
)
def test_open_validation(desk: RightsDesk, kind: str, kw: dict[str, str], match: str) -> None:
    with pytest.raises(RightsRequestError, match=match):
        desk.open(kind, "S-1", **kw)  # type: ignore[arg-type]


def test_wrong_kind_and_unknown_id(desk: RightsDesk) -> None:
    a = desk.open("access", "S-1")
    with pytest.raises(RightsRequestError, match="not correction or appeal"):
        desk.grant_correction(a.id, agency="x", compensating_delta=1, period="2026-01", by="x")
    with pytest.raises(RightsRequestError, match="no rights request 99"):
        desk.get(99)


def test_consent_withdrawal_end_to_end(desk: RightsDesk, clock: SimulatedClock) -> None:
    key = Ed25519PrivateKey.generate()
    tok = issue_consent(
        key,
        subject="S-1",
        relying_party="bank-1",
        purpose="credit-assessment",
        domain="public-credit",
        catalog_hash=CITY.version_hash,
        issued_at=START,
        expires_at=START + dt.timedelta(days=30),
    )
    pub = key.public_key()
    verify_consent(
        tok.encode(),
        pub,
        "bank-1",
        "credit-assessment",
        CITY,
        clock.now(),
        withdrawn=desk.is_withdrawn,
    )
    r = desk.open(
        "consent-withdrawal", "S-1", ref=tok.token_id, details={"relying_party": "bank-1"}
    )
    assert r.status == "granted" and r.late is False
    with pytest.raises(ConsentRefused) as exc:
        verify_consent(
            tok.encode(),
            pub,
            "bank-1",
            "credit-assessment",
            CITY,
            clock.now(),
            withdrawn=desk.is_withdrawn,
        )
    assert exc.value.reason == "withdrawn"
    again = desk.open(
        "consent-withdrawal", "S-1", ref=tok.token_id, details={"relying_party": "bank-1"}
    )
    assert again.status == "refused" and again.reason == "token already withdrawn"


def test_tables_persist_on_the_given_connection(tmp_path: object, clock: SimulatedClock) -> None:
    import pathlib

    db = pathlib.Path(str(tmp_path)) / "r.db"
    RightsDesk(sqlite3.connect(db), clock).open("access", "S-1")
    conn = sqlite3.connect(db)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "rights_requests",
        "rights_request_log",
        "rights_corrections",
        "rights_removals",
        "consent_withdrawals",
    } <= names
    assert [r.kind for r in RightsDesk(conn, clock).requests(status="open")] == ["access"]


# -- issue 12 item 6: the desk refuses nonsense and changes nothing ------------------------


def test_access_granted_only_with_an_answer(desk: RightsDesk) -> None:
    a = desk.open("access", "S-1")
    with pytest.raises(RightsRequestError, match="answer"):
        desk.answer_access(a.id, {}, by="clerk")
    assert desk.get(a.id).status == "open"


@pytest.mark.parametrize(
    ("agency", "match"),
    [("nope", "not an agency of catalog"), ("intermediate-court", "transport-bureau")],
)
def test_correction_only_by_the_agency_owning_the_rule(
    desk: RightsDesk, agency: str, match: str
) -> None:
    req = desk.open("correction", "S-1", ref="E", rule="traffic.violation")
    with pytest.raises(RightsRequestError, match=match):
        desk.grant_correction(req.id, agency=agency, compensating_delta=5, period="2026-11", by="x")
    assert desk.get(req.id).status == "open" and desk.corrections() == []
    # an agency instance of the owning agency (``name#2``) may record it
    desk.grant_correction(
        req.id, agency="transport-bureau#2", compensating_delta=5, period="2026-11", by="x"
    )


def test_correction_to_an_unknown_agency_without_rule(desk: RightsDesk) -> None:
    req = desk.open("appeal", "S-1", ref="E")
    with pytest.raises(RightsRequestError, match="not an agency of catalog"):
        desk.grant_correction(req.id, agency="nope", compensating_delta=5, period="2026-11", by="x")


def test_decision_cannot_predate_its_request(clock: SimulatedClock) -> None:
    conn = sqlite3.connect(":memory:")
    later = RightsDesk(conn, SimulatedClock(START + dt.timedelta(days=3)), catalog=CITY)
    r = later.open("deletion", "S-1", ref="E")
    earlier = RightsDesk(conn, clock, catalog=CITY)
    for decide in (
        lambda: earlier.grant_deletion(r.id, by="x"),
        lambda: earlier.refuse(r.id, "no", by="x"),
    ):
        with pytest.raises(RightsRequestError, match="before the request was opened"):
            decide()
    assert later.get(r.id).status == "open" and later.removals() == []


def test_open_errors_name_no_internal_field(desk: RightsDesk) -> None:
    with pytest.raises(RightsRequestError) as exc:
        desk.open("consent-withdrawal", "S-1", ref="T")
    assert "details[" not in str(exc.value) and "relying party" in str(exc.value)
