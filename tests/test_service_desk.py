"""The key holder's reveal desk as its own process, its aggregator killed: the requester
gets a 503 PeerUnavailable (not a 500, not a grade), and once the aggregator is back on its
port the same request bytes are answered, the notice logged once."""

from __future__ import annotations

import datetime as dt
import sqlite3
import tomllib
from pathlib import Path

import pytest

from psc.catalog import period_index
from psc.parties.relying_party import RelyingParty
from psc.service.client import HttpAggregator, HttpPeer, PeerUnavailable
from psc.service.config import load_config, load_params, read_key
from psc.service.deploy import init_deployment, open_agencies
from psc.service.processes import Parties, start_party
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)


def _reveals(ledger: Path) -> int:
    conn = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM reveals").fetchone()[0])
    finally:
        conn.close()


def test_the_desk_answers_503_without_its_aggregator_and_resumes_after(tmp_path: Path) -> None:
    root = init_deployment(tmp_path / "dep", subjects=12, keypair=insecure_keypair(0, 512))
    params = load_params(load_config(root / "aggregator.toml"))
    period = period_index(dt.datetime.now(dt.UTC).date()) - 1
    doc = tomllib.loads((root / "bank.toml").read_text())
    bank = RelyingParty(doc["id"], params, read_key(root / "bank.key"))
    ledger = root / "aggregator" / "ledger.sqlite"
    with Parties() as ps:
        agg = ps.start("aggregator", root / "aggregator.toml")
        with HttpPeer(agg.url, timeout=60) as peer:
            for agency in open_agencies(root, params):
                agency.accept_receipt(HttpAggregator(peer).ingest(agency.submit([], period)))
        desk = ps.start("key-holder", root / "key_holder.toml", {"aggregator": agg.url})
        with HttpPeer(desk.url, timeout=120, retries=0) as client:
            first = bank.request_grade(1, doc["purpose"], period)
            assert bank.read_grade(first, client.post("/v1/grade-requests", first))
            agg.kill()
            request = bank.request_grade(2, doc["purpose"], period)
            with pytest.raises(PeerUnavailable, match="PeerUnavailable"):
                client.post("/v1/grade-requests", request)
            assert desk.alive()
            back = start_party("aggregator", root / "aggregator.toml", port=agg.port)
            ps.running.append(back)
            before = _reveals(ledger)
            grade = bank.read_grade(request, client.post("/v1/grade-requests", request))
            assert grade in params.catalog.labels
            assert client.post("/v1/grade-requests", request)  # a retry: nothing new logged
            assert _reveals(ledger) == before + 1
