"""Replay protocols/vectors/protocol.json against fresh parties (no shared state with the generator)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from protocols import gen_protocol
from psc import exceptions
from psc.catalog import load_catalog
from psc.hazmat.paillier import _keypair_from_primes
from psc.ledger.store import SQLiteLedger
from psc.parties.aggregator import Aggregator
from psc.parties.key_holder import KeyHolder, TrustedDecryptor
from psc.parties.relying_party import read_grades
from psc.parties.subject import Subject
from psc.protocol.logview import LedgerLogView
from psc.protocol.parameters import ProtocolParameters
from psc.protocol.signing import _signing_key_from_seed
from psc.sim.sources import SimClock

VECTORS = Path(__file__).resolve().parents[1] / "protocols" / "vectors" / "protocol.json"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


class Fresh:
    """A fresh aggregator and key holder set up only from the vector file."""

    def __init__(self, v: dict[str, Any]) -> None:
        s = v["setup"]
        self.catalog = load_catalog(s["catalog"])
        assert self.catalog.version_hash == s["catalog_version"]
        self.pk, self.sk = _keypair_from_primes(
            int(s["paillier_p"]), int(s["paillier_q"]), allow_insecure=True
        )
        self.clock = SimClock(dt.datetime.fromisoformat(s["setup_time"]))
        self.params = ProtocolParameters.from_sealed(
            bytes.fromhex(s["parameters"]),
            self.catalog,
            bytes.fromhex(s["registry_key"]),
            allow_insecure_key=True,
        )
        assert self.params.public_key.n == self.pk.n
        agg_key = _signing_key_from_seed(bytes.fromhex(s["aggregator_seed"]))
        kh_key = _signing_key_from_seed(bytes.fromhex(s["key_holder_seed"]))
        self.ledger = SQLiteLedger(":memory:", signer=agg_key, clock_ms=self.clock.ms)
        self.aggregator = Aggregator(self.params, self.ledger, agg_key, clock=self.clock)
        self.key_holder = KeyHolder(
            self.params,
            TrustedDecryptor(self.params, self.sk),
            kh_key,
            log_view=LedgerLogView(self.params, self.ledger),
            clock=self.clock,
        )
        self.registrations = [bytes.fromhex(r) for r in s["agency_registrations"]]
        for reg in self.registrations:
            self.aggregator.register_agency(reg)
        rp = bytes.fromhex(s["relying_party_registration"])
        self.aggregator.register_relying_party(rp)
        self.key_holder.register_relying_party(rp)
        self.clock.advance_to(dt.datetime.fromisoformat(s["ingest_time"]))

    def ingest_good(self, v: dict[str, Any]) -> None:
        for g in v["good"]:
            receipt = self.aggregator.ingest(bytes.fromhex(g["envelope"]))
            assert receipt.hex() == g["receipt"], (g["agency"], g["period"])


@pytest.fixture(scope="module")
def fresh(vectors: dict[str, Any]) -> Fresh:
    f = Fresh(vectors)
    f.ingest_good(vectors)
    return f


def test_good_envelopes_give_the_exact_receipts_and_state(
    fresh: Fresh, vectors: dict[str, Any]
) -> None:
    assert fresh.ledger.state_digest().hex() == vectors["state_digest_after_good"]
    registrations = len(vectors["setup"]["agency_registrations"]) + 1  # and the bank
    assert fresh.ledger.log.size == registrations + len(vectors["good"])
    assert len(fresh.ledger.envelopes()) == len(vectors["good"])


def test_replays_are_counted_once(fresh: Fresh, vectors: dict[str, Any]) -> None:
    before = fresh.ledger.state_digest()
    by_env = {g["envelope"]: g["receipt"] for g in vectors["good"]}
    for env in vectors["replays"]:
        assert fresh.aggregator.ingest(bytes.fromhex(env)).hex() == by_env[env]
    assert fresh.ledger.state_digest() == before


def test_every_bad_vector_is_named_and_covers_the_issue(vectors: dict[str, Any]) -> None:
    names = {b["name"] for b in vectors["bad"]}
    for required in (
        "bad_signature",
        "bad_catalog_version",
        "bad_replayed_nonce",
        "bad_truncated_ciphertext",
        "bad_wrong_slot_count",
        "bad_stale_period",
        "bad_unregistered_agency",
        "bad_out_of_range_slot",
        "bad_proof_for_another_envelope",
        "bad_truncated_proof",
        "bad_replayed_proof",
    ):
        assert required in names


BAD = json.loads(VECTORS.read_text())["bad"]


@pytest.mark.parametrize("case", BAD, ids=[b["name"] for b in BAD])
def test_bad_vector_is_rejected_and_changes_nothing(fresh: Fresh, case: dict[str, Any]) -> None:
    error = getattr(exceptions, case["error"])
    before = fresh.ledger.state_digest()
    with pytest.raises(error) as info:
        fresh.aggregator.ingest(bytes.fromhex(case["envelope"]))
    assert str(info.value)  # a clear message, never an empty one
    assert type(info.value).__name__ == case["error"]  # exactly the named error
    assert fresh.ledger.state_digest() == before, case["name"]


def test_reveal_vector(vectors: dict[str, Any]) -> None:
    f = Fresh(vectors)
    f.ingest_good(vectors)
    r = vectors["reveal"]
    request = bytes.fromhex(r["request"])
    reveal = f.aggregator.prepare_reveal(request)
    assert reveal.hex() == r["reveal_request"]
    answer = f.key_holder.answer(reveal)
    assert answer.response.hex() == r["response"]
    assert answer.notice.hex() == r["notice"]
    logged = f.aggregator.release(answer.notice)
    assert logged.hex() == r["log_inclusion"]
    f.key_holder.check_logged(answer, logged)
    response = answer.response
    grades = read_grades(f.params, request, response)
    assert {str(k): g for k, g in grades.items()} == r["grades"]
    # the key holder answers a request once; a replayed reveal request is refused
    with pytest.raises(exceptions.InvalidMessage):
        f.key_holder.answer(reveal)


def test_access_vector(vectors: dict[str, Any]) -> None:
    f = Fresh(vectors)
    a = vectors["access"]
    subject = Subject(a["slot"], f.params)
    for reg in f.registrations:
        subject.learn_agency(reg)
    inclusions = {bytes.fromhex(k): bytes.fromhex(v) for k, v in a["log_inclusions"].items()}
    request = bytes.fromhex(a["request"])
    events = subject.verify_access(request, bytes.fromhex(a["response"]), inclusions)
    got = [{"rule": e.rule, "date": e.date.isoformat(), "evidence": e.evidence} for e in events]
    assert got == a["events"]
    assert len(events) == 3
    for name, resp in a["bad"].items():
        with pytest.raises(exceptions.InvalidMessage):
            subject.verify_access(request, bytes.fromhex(resp), inclusions)
        assert name.startswith("bad_")


def test_generator_is_deterministic() -> None:
    assert json.loads(VECTORS.read_text()) == json.loads(
        json.dumps(gen_protocol.build(), sort_keys=True)
    )
