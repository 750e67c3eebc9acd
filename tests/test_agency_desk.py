"""An agency at work: its records become one envelope per period, retries return the stored
receipt, a lost receipt re-sends the same bytes, and bad records change nothing."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from psc.catalog import Catalog, period_index
from psc.events import Event
from psc.exceptions import EventError, InvalidMessage
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.parties.agency import Agency
from psc.parties.agency_desk import AgencyDesk, RecordStore
from psc.protocol import codec
from psc.protocol.service_messages import SubmitPeriod
from psc.protocol.signing import digest
from psc.sim.city import agency_instances
from psc.sim.deployment import Deployment, setup
from psc.sim.sources import SimClock, seeded_randbytes

START = dt.datetime(2026, 1, 3, 9, tzinfo=dt.UTC)
PERIOD = period_index(dt.date(2026, 2, 1))
N = 16


@pytest.fixture
def d(
    city: Catalog, test_keypair: tuple[PaillierPublicKey, PaillierPrivateKey]
) -> Iterator[Deployment]:
    clock = SimClock(START)
    dep = setup(
        city, agency_instances(city), N, test_keypair, clock=clock, randbytes=seeded_randbytes("a")
    )
    clock.advance_to(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
    yield dep
    dep.ledger.close()


def _records(d: Deployment, agency: Agency, path: Path) -> list[Event]:
    rule = next(r for r in d.params.catalog.rules if r.agency == agency.catalog_agency and r.delta)
    events = [Event(s, rule.id, dt.date(2026, 2, 3 + s), digest(bytes([s])).hex()) for s in (1, 4)]
    RecordStore.write(path, events)
    return events


class LostReceipt:
    """The aggregator ingests, but the first answer is lost on the way back."""

    def __init__(self, d: Deployment) -> None:
        self.d, self.lost, self.sent = d, 1, []  # type: list[bytes]

    def ingest(self, sealed: bytes) -> bytes:
        self.sent.append(sealed)
        receipt = self.d.aggregator.ingest(sealed)
        if self.lost:
            self.lost -= 1
            raise ConnectionError("no answer")
        return receipt


def test_asking_twice_returns_the_stored_receipt(d: Deployment, tmp_path: Path) -> None:
    agency = d.agencies[0]
    _records(d, agency, tmp_path / "records.sqlite")
    desk = AgencyDesk(
        agency, RecordStore(tmp_path / "records.sqlite"), d.aggregator, str(tmp_path / "out")
    )
    ask = codec.encode(SubmitPeriod(PERIOD))
    receipt = desk.submit_period(ask)
    assert desk.submit_period(ask) == receipt
    assert d.ledger.envelope_count() == 1


def test_a_lost_receipt_resends_the_same_envelope_even_after_a_restart(
    d: Deployment, tmp_path: Path
) -> None:
    agency = d.agencies[0]
    _records(d, agency, tmp_path / "records.sqlite")
    link = LostReceipt(d)
    outbox = str(tmp_path / "outbox.sqlite")
    desk = AgencyDesk(agency, RecordStore(tmp_path / "records.sqlite"), link, outbox)
    ask = codec.encode(SubmitPeriod(PERIOD))
    with pytest.raises(ConnectionError):
        desk.submit_period(ask)
    desk.close()
    # the agency process restarts: a new Agency object, the same outbox file
    fresh = Agency(agency.id, agency.catalog_agency, d.params, agency._key)
    again = AgencyDesk(fresh, RecordStore(tmp_path / "records.sqlite"), link, outbox)
    receipt = again.submit_period(ask)
    assert link.sent[0] == link.sent[1], "the retry encrypted a new envelope"
    assert d.ledger.envelope_count() == 1
    assert again.submit_period(ask) == receipt


def test_a_receipt_for_another_envelope_is_refused_after_a_restart(
    d: Deployment, tmp_path: Path
) -> None:
    agency, other = d.agencies[0], d.agencies[1]
    _records(d, agency, tmp_path / "records.sqlite")

    class Swapping(LostReceipt):
        def ingest(self, sealed: bytes) -> bytes:
            if self.lost:
                return super().ingest(sealed)
            return self.d.aggregator.ingest(other.submit([], PERIOD))  # someone else's

    link = Swapping(d)
    outbox = str(tmp_path / "outbox.sqlite")
    desk = AgencyDesk(agency, RecordStore(tmp_path / "records.sqlite"), link, outbox)
    ask = codec.encode(SubmitPeriod(PERIOD))
    with pytest.raises(ConnectionError):
        desk.submit_period(ask)
    fresh = Agency(agency.id, agency.catalog_agency, d.params, agency._key)
    again = AgencyDesk(fresh, RecordStore(tmp_path / "records.sqlite"), link, outbox)
    with pytest.raises(InvalidMessage, match="did not submit"):
        again.submit_period(ask)
    row = sqlite3.connect(outbox).execute("SELECT receipt FROM submitted").fetchone()
    assert row[0] is None, "a wrong receipt was stored"


def test_a_record_of_another_agencys_rule_changes_nothing(d: Deployment, tmp_path: Path) -> None:
    agency, other = d.agencies[0], d.agencies[1]
    _records(d, other, tmp_path / "records.sqlite")  # the other agency's rules
    outbox = tmp_path / "outbox.sqlite"
    desk = AgencyDesk(agency, RecordStore(tmp_path / "records.sqlite"), d.aggregator, str(outbox))
    with pytest.raises(EventError):
        desk.submit_period(codec.encode(SubmitPeriod(PERIOD)))
    assert sqlite3.connect(outbox).execute("SELECT COUNT(*) FROM submitted").fetchone()[0] == 0
    assert d.ledger.envelope_count() == 0


def test_a_record_filed_under_the_wrong_period_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    RecordStore.write(path, [Event(0, "r", dt.date(2026, 2, 3), "00" * 32)])
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE records SET period = period + 1")
    conn.close()
    with pytest.raises(ValueError, match="not in it"):
        RecordStore(path).period(PERIOD + 1)


def _access(d: Deployment, slot: int, period: int, agency: Agency, desk: AgencyDesk) -> list[Event]:
    """A subject's verified events from ``desk``, checked against the log's inclusions."""
    from psc.parties.subject import Subject

    subject = Subject(slot, d.params)
    for reg in d.registrations:
        subject.learn_agency(reg)
    inclusions = {
        r.envelope_hash: d.aggregator.log_inclusion(r.envelope_hash) for r in d.ledger.envelopes()
    }
    ident = {s: i for i, s in d.slots.items()}[slot]
    req = d.registry.access_request(ident, period, period)
    return subject.verify_access(req, desk.answer_access(req), inclusions)


def test_a_restarted_agency_answers_access_for_what_it_submitted_before(
    d: Deployment, tmp_path: Path
) -> None:
    """The openings are re-derived from the records and the desk's secret: after a restart
    (a new Agency object, the same outbox and records) the subject gets the same verified
    events as before it."""
    agency = d.agencies[0]
    events = _records(d, agency, tmp_path / "records.sqlite")
    outbox = str(tmp_path / "outbox.sqlite")
    desk = AgencyDesk(agency, RecordStore(tmp_path / "records.sqlite"), d.aggregator, outbox)
    desk.submit_period(codec.encode(SubmitPeriod(PERIOD)))
    before = _access(d, events[0].subject, PERIOD, agency, desk)
    assert [e.rule for e in before] == [events[0].rule]
    desk.close()
    fresh = Agency(agency.id, agency.catalog_agency, d.params, agency._key, clock=agency._clock)
    again = AgencyDesk(fresh, RecordStore(tmp_path / "records.sqlite"), d.aggregator, outbox)
    assert _access(d, events[0].subject, PERIOD, fresh, again) == before
    assert oct(Path(outbox).stat().st_mode & 0o777) == "0o600"


def test_a_restart_over_changed_records_is_refused(d: Deployment, tmp_path: Path) -> None:
    """Records edited after their period was submitted no longer give the logged commitment:
    the restarted desk refuses to start rather than answer with openings the log lacks."""
    agency = d.agencies[0]
    _records(d, agency, tmp_path / "records.sqlite")
    outbox = str(tmp_path / "outbox.sqlite")
    desk = AgencyDesk(agency, RecordStore(tmp_path / "records.sqlite"), d.aggregator, outbox)
    desk.submit_period(codec.encode(SubmitPeriod(PERIOD)))
    desk.close()
    conn = sqlite3.connect(tmp_path / "records.sqlite")
    with conn:
        conn.execute("DELETE FROM records WHERE slot = 4")
    conn.close()
    fresh = Agency(agency.id, agency.catalog_agency, d.params, agency._key)
    with pytest.raises(InvalidMessage, match="changed after the submission"):
        AgencyDesk(fresh, RecordStore(tmp_path / "records.sqlite"), d.aggregator, outbox)
