"""Replay protocols/vectors/rights.json against fresh parties (no shared state with the generator)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from psc import exceptions
from psc.catalog import load_catalog
from psc.hazmat.paillier import _keypair_from_primes
from psc.ledger.store import SQLiteLedger
from psc.parties.consent_gate import ConsentKeyDirectory, TokenConsentVerifier
from psc.parties.key_holder import KeyHolder, TrustedDecryptor
from psc.parties.relying_party import read_grades
from psc.parties.rights import RightsAggregator
from psc.policy.consent import SqliteRefusalLog
from psc.protocol.logview import LedgerLogView
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.signing import _signing_key_from_seed
from psc.sim.sources import SimClock

VECTORS = Path(__file__).resolve().parents[1] / "protocols" / "vectors" / "rights.json"
V: dict[str, Any] = json.loads(VECTORS.read_text())


class Fresh:
    """A fresh rights aggregator and gated key holder set up only from the vector file."""

    def __init__(self) -> None:
        s = V["setup"]
        self.catalog = load_catalog(s["catalog"])
        assert self.catalog.version_hash == s["catalog_version"]
        _, sk = _keypair_from_primes(
            int(s["paillier_p"]), int(s["paillier_q"]), allow_insecure=True
        )
        self.clock = SimClock(dt.datetime.fromisoformat(s["setup_time"]))
        self.params = ProtocolParameters.from_sealed(
            bytes.fromhex(s["parameters"]),
            self.catalog,
            bytes.fromhex(s["registry_key"]),
            allow_insecure_key=True,
        )
        agg_key = _signing_key_from_seed(bytes.fromhex(s["aggregator_seed"]))
        kh_key = _signing_key_from_seed(bytes.fromhex(s["key_holder_seed"]))
        self.ledger = SQLiteLedger(":memory:", signer=agg_key, clock_ms=self.clock.ms)
        self.aggregator = RightsAggregator(self.params, self.ledger, agg_key, clock=self.clock)
        self.directory = ConsentKeyDirectory(self.params)
        self.refusals = SqliteRefusalLog(sqlite3.connect(":memory:"))
        gate = TokenConsentVerifier(
            self.catalog, self.directory, clock=self.clock, refusals=self.refusals
        )
        self.key_holder = KeyHolder(
            self.params,
            TrustedDecryptor(self.params, sk),
            kh_key,
            log_view=LedgerLogView(self.params, self.ledger),
            consent=gate,
            clock=self.clock,
        )
        for reg in s["agency_registrations"]:
            self.aggregator.register_agency(bytes.fromhex(reg))
        rp = bytes.fromhex(s["relying_party_registration"])
        self.aggregator.register_relying_party(rp)
        self.key_holder.register_relying_party(rp)
        self.clock.advance_to(dt.datetime.fromisoformat(s["ingest_time"]))
        for e in s["envelopes"]:
            assert self.aggregator.ingest(bytes.fromhex(e["envelope"])).hex() == e["receipt"]
        assert self.ledger.state_digest().hex() == s["state_digest_after_envelopes"]

    def reveal(self, request: bytes) -> bytes:
        answer = self.key_holder.answer(self.aggregator.prepare_reveal(request))
        self.key_holder.check_logged(answer, self.aggregator.release(answer.notice))
        return answer.response


def test_credentials_good_and_bad() -> None:
    f = Fresh()
    cred = f.directory.add(bytes.fromhex(V["gate"]["credential"]))
    assert cred.subject.startswith("subject-")
    assert {c["name"] for c in V["gate"]["bad_credentials"]} == {
        "bad_signature",
        "bad_slot_out_of_range",
    }
    for case in V["gate"]["bad_credentials"]:
        with pytest.raises(getattr(exceptions, case["error"])):
            f.directory.add(bytes.fromhex(case["credential"]))
    assert len(f.directory) == 1


@pytest.mark.parametrize(
    "case", V["gate"]["requests"], ids=[c["name"] for c in V["gate"]["requests"]]
)
def test_gate_requests(case: dict[str, Any]) -> None:
    f = Fresh()
    f.directory.add(bytes.fromhex(V["gate"]["credential"]))
    request = bytes.fromhex(case["request"])
    if case["expect"] == "ok":
        grades = read_grades(f.params, request, f.reveal(request))
        assert list(grades.values()) == [case["grade"]]
        assert f.refusals.entries() == []
        return
    error = (
        exceptions.InvalidMessage if case["expect"] == "bad-token" else exceptions.ConsentRefused
    )
    with pytest.raises(error) as info:
        f.reveal(request)
    if isinstance(info.value, exceptions.ConsentRefused):
        assert info.value.reason == case["expect"]
    assert [e.reason for e in f.refusals.entries()] == [case["expect"]]
    assert f.ledger.reveals() == []


def test_adjustments_good_and_bad() -> None:
    f = Fresh()
    a = V["adjustments"]
    required = {
        "bad_signature",
        "bad_other_agency_signature",
        "bad_not_the_authors_envelope",
        "bad_unregistered_agency",
        "bad_leaf_beyond_commitment",
        "bad_catalog_version",
        "bad_stale_effective_period",
        "bad_wrong_slot_count",
        "bad_wrong_bound",
        "bad_slot_outside_adjustment_range",
        "bad_proof_of_another_adjustment",
    }
    assert required <= {c["name"] for c in a["bad_before"]}
    before = f.ledger.state_digest()
    for case in a["bad_before"]:
        with pytest.raises(getattr(exceptions, case["error"])):
            f.aggregator.ingest_adjustment(bytes.fromhex(case["adjustment"]))
        assert f.ledger.state_digest() == before, case["name"]
    good = bytes.fromhex(a["good"]["adjustment"])
    assert f.aggregator.ingest_adjustment(good).hex() == a["good"]["log_inclusion"]
    assert f.ledger.state_digest().hex() == a["state_digest_after_good"]
    assert f.aggregator.ingest_adjustment(good).hex() == a["good"]["log_inclusion"]  # replay
    after = f.ledger.state_digest()
    assert {c["name"] for c in a["bad_after"]} == {"bad_duplicate_leaf", "bad_replayed_nonce"}
    for case in a["bad_after"]:
        with pytest.raises(getattr(exceptions, case["error"])):
            f.aggregator.ingest_adjustment(bytes.fromhex(case["adjustment"]))
        assert f.ledger.state_digest() == after, case["name"]
    request = bytes.fromhex(a["grade_request"])
    grades = read_grades(f.params, request, f.reveal(request))
    assert {str(s): g for s, g in grades.items()} == a["grades_after"]
