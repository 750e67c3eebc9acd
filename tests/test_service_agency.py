"""An agency as its own process: kill -9 after it submitted, a restart from its files, and
the same receipt and verified access answers afterwards (its commitment re-derived)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from psc.catalog import period_index, period_start
from psc.events import Event
from psc.ledger.store import SQLiteLedger
from psc.parties.agency_desk import RecordStore
from psc.parties.subject import Subject
from psc.protocol import codec
from psc.protocol.messages import IngestReceipt
from psc.protocol.service_messages import AccessAsk, SubmitPeriod
from psc.protocol.signing import digest, open_signed
from psc.service.client import HttpAggregator, HttpPeer
from psc.service.config import load_config, load_params
from psc.service.deploy import init_deployment
from psc.service.processes import Parties
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)


def test_an_agency_killed_after_submitting_restarts_and_answers_access(tmp_path: Path) -> None:
    root = init_deployment(tmp_path / "dep", subjects=16, keypair=insecure_keypair(0, 512))
    params = load_params(load_config(root / "aggregator.toml"))
    cfg = sorted((root / "agencies").glob("*.toml"))[0]
    agency = load_config(cfg)
    rule = next(r for r in params.catalog.rules if r.agency == agency.catalog_agency and r.delta)
    period = period_index(dt.datetime.now(dt.UTC).date()) - 1
    day = period_start(period) + dt.timedelta(days=2)
    slots = json.loads((root / "registry" / "slots.json").read_text())
    ident, slot = sorted(slots.items())[0]
    RecordStore.write(
        agency.path(agency.records), [Event(slot, rule.id, day, digest(b"doc").hex())]
    )
    ask = codec.encode(SubmitPeriod(period))
    with Parties() as ps:
        agg = ps.start("aggregator", root / "aggregator.toml")
        registry = ps.start("registry", root / "registry.toml")
        proc = ps.start("agency", cfg, {"aggregator": agg.url})
        with HttpPeer(proc.url, timeout=120) as client:
            receipt = client.post("/v1/period-submissions", ask)
        proc.kill()
        restarted = ps.start("agency", cfg, {"aggregator": agg.url})
        with (
            HttpPeer(restarted.url, timeout=120) as client,
            HttpPeer(registry.url, timeout=60) as reg,
            HttpPeer(agg.url, timeout=60) as agg_client,
        ):
            assert client.post("/v1/period-submissions", ask) == receipt  # counted once
            r = open_signed(receipt, IngestReceipt, lambda m: params.aggregator_key)
            inclusions = {
                r.envelope_hash: HttpAggregator(agg_client).log_inclusion(r.envelope_hash)
            }
            request = reg.post("/v1/access-asks", codec.encode(AccessAsk(ident, period, period)))
            subject = Subject(slot, params)
            ledger = SQLiteLedger(root / "aggregator" / "ledger.sqlite")  # registrations
            for rec in ledger.parties("agency"):
                subject.learn_agency(rec.registration)
            ledger.close()
            events = subject.verify_access(
                request, client.post("/v1/access-requests", request), inclusions
            )
    assert [(e.rule, e.date) for e in events] == [(rule.id, day)]
