"""Atomic, durable ingestion under a real ``kill -9``.

A child process ingests many envelopes into a ledger file and prints ``ACK <hash>`` only
after each ingest has committed.  The parent kills it with SIGKILL mid-stream, reopens the
database and checks: every acknowledged envelope is there; nothing is half-applied (the log
holds exactly one entry per stored envelope, in order, and every accumulator decrypts to
exactly the sum of the stored envelopes' ciphertexts); and a restarted child finishes the
job with each envelope counted once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from psc.catalog import Catalog, period_index
from psc.events import Event
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.log_verify import verify_log
from psc.ledger.store import SQLiteLedger
from psc.protocol import codec
from psc.protocol.messages import LogEntry, SignedMessage, Submission
from psc.protocol.signing import digest
from psc.sim.city import agency_instances, simulate_city
from psc.sim.deployment import setup
from psc.sim.sources import SimClock, seeded_randbytes

START = dt.datetime(2026, 1, 3, 9, tzinfo=dt.UTC)
P1 = period_index(START.date())
PERIODS = 16
INGEST = dt.datetime(2027, 5, 2, 9, tzinfo=dt.UTC)  # every period above is still in the window
N = 30

CHILD = """
import datetime as dt, json, sys
from psc.catalog import load_catalog
from psc.ledger.store import SQLiteLedger
from psc.parties.aggregator import Aggregator, ProtocolParameters
from psc.protocol.signing import _signing_key_from_seed, digest

job = json.load(open(sys.argv[1]))
now = dt.datetime.fromisoformat(job["ingest_time"])
params = ProtocolParameters.from_sealed(
    bytes.fromhex(job["parameters"]), load_catalog("city"), bytes.fromhex(job["registry_key"]),
    allow_insecure_key=True,
)
key = _signing_key_from_seed(bytes.fromhex(job["aggregator_seed"]))
ledger = SQLiteLedger(sys.argv[2], signer=key, clock_ms=lambda: int(now.timestamp() * 1000))
agg = Aggregator(params, ledger, key, clock=lambda: now)
for reg in job["registrations"]:
    agg.register_agency(bytes.fromhex(reg))
print("READY", flush=True)
for env in job["envelopes"]:
    env = bytes.fromhex(env)
    agg.ingest(env)
    print("ACK", digest(env).hex(), flush=True)
print("DONE", flush=True)
"""


@pytest.fixture(scope="module")
def job(
    city: Catalog,
    test_keypair: tuple[PaillierPublicKey, PaillierPrivateKey],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, Any], Any]:
    instances = agency_instances(city, 2 * len(city.agencies))  # every agency twice
    sim = simulate_city(
        city, subjects=N, agencies=len(instances), periods=PERIODS, seed=5, first_period=P1
    )
    clock = SimClock(START)
    d = setup(city, instances, N, test_keypair, clock=clock, randbytes=seeded_randbytes("crash"))
    clock.advance_to(INGEST)
    rng = np.random.default_rng(9)
    envelopes = []
    for p in sim.periods:
        for inst, agency in zip(instances, d.agencies, strict=True):
            evs = list(sim.events[inst.id][p])
            # at least one event per envelope, so every accumulator moves
            rule = next(r for r in city.rules if r.agency == inst.catalog_agency)
            day = dt.date(p // 12, p % 12 + 1, 28)
            slot = int(rng.integers(0, N))
            if not any(e.subject == slot and e.rule == rule.id for e in evs):
                evs.append(Event(slot, rule.id, day, digest(f"{p}/{inst.id}".encode()).hex()))
            envelopes.append(agency.submit(evs, p).hex())
    data = {
        "ingest_time": INGEST.isoformat(),
        "parameters": d.sealed_params.hex(),
        "registry_key": d.params.registry_key.hex(),
        "aggregator_seed": d.aggregator._key.private_bytes_raw().hex(),
        "registrations": [r.hex() for r in d.registrations],
        "envelopes": envelopes,
    }
    base = tmp_path_factory.mktemp("crash")
    (base / "job.json").write_text(json.dumps(data))
    (base / "child.py").write_text(CHILD)
    return base, data, d


def _run_child(base: Path, db: Path, kill_after: int | None) -> tuple[list[str], bool]:
    """Run the child; SIGKILL it after ``kill_after`` acknowledgements.  (acks, finished)."""
    acks: list[str] = []
    done = False
    with subprocess.Popen(
        [sys.executable, str(base / "child.py"), str(base / "job.json"), str(db)],
        stdout=subprocess.PIPE,
        text=True,
        # the child imports the psc of this checkout, whatever is installed
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ACK "):
                acks.append(line.split()[1])
                if kill_after is not None and len(acks) == kill_after:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            done = done or line.strip() == "DONE"
        # lines the child printed before it died were acknowledged after a commit: keep them
        for line in proc.stdout:
            if line.startswith("ACK "):
                acks.append(line.split()[1])
            done = done or line.strip() == "DONE"
        proc.wait(timeout=120)
    if kill_after is not None:
        assert proc.returncode == -signal.SIGKILL
    return acks, done


def _check_consistent(db: Path, d: Any, sk: PaillierPrivateKey, acked: set[str]) -> int:
    led = SQLiteLedger(db)
    try:
        envs = led.envelopes()
        stored = {e.envelope_hash.hex() for e in envs}
        assert acked <= stored, "an acknowledged envelope was lost"
        # the log: the registrations, then exactly one entry per stored envelope, in order
        regs = len(d.registrations)
        assert led.log.size == regs + len(envs)
        kinds = [codec.decode(led.log.entry(i), LogEntry).kind for i in range(led.log.size)]
        assert kinds == ["registration"] * regs + ["submission"] * len(envs)
        for i, e in enumerate(envs):
            assert e.log_index == regs + i
            assert codec.decode(led.log.entry(regs + i), LogEntry).digest == e.envelope_hash
        verify_log(led.connection, d.aggregator._key.public_key())
        assert len(led.connection.execute("SELECT * FROM nonces").fetchall()) == len(envs)
        # accumulators: exactly the sum of the stored envelopes, no more, no less
        backend = d.params.backend()
        want: dict[tuple[int, str, str], Any] = {}
        count: dict[tuple[int, str, str], int] = defaultdict(int)
        for e in envs:
            sub = codec.decode(codec.decode(e.envelope, SignedMessage).body, Submission)
            items = [(c.retention, "", c.ciphertext) for c in sub.deltas]
            items += [(c.retention, c.cap, c.ciphertext) for c in sub.caps]
            for retention, label, ct in items:
                key = (sub.period, retention, label)
                v = backend.decrypt(backend.deserialize(ct), sk)
                want[key] = v if key not in want else want[key] + v
                count[key] += 1
        accs = led.accumulators()
        assert {(a.period, a.retention, a.label) for a in accs} == set(want)
        for a in accs:
            key = (a.period, a.retention, a.label)
            got = backend.decrypt(backend.deserialize(a.ciphertext).with_bound(a.bound), sk)
            assert np.array_equal(got, want[key]), key
            assert a.contributions == count[key]
        return len(envs)
    finally:
        led.close()


def test_kill_minus_nine_during_ingestion_loses_nothing_and_half_applies_nothing(
    job: tuple[Path, dict[str, Any], Any],
    test_keypair: tuple[PaillierPublicKey, PaillierPrivateKey],
    tmp_path: Path,
) -> None:
    base, data, d = job
    sk = test_keypair[1]
    db = tmp_path / "ledger.sqlite"
    total = len(data["envelopes"])
    acked: set[str] = set()
    for kill_after in (7, 60, 150):
        acks, finished = _run_child(base, db, kill_after)
        assert not finished
        acked |= set(acks)
        stored = _check_consistent(db, d, sk, acked)
        assert stored < total
    acks, finished = _run_child(base, db, None)  # restart and finish
    assert finished and len(acks) == total
    assert _check_consistent(db, d, sk, acked | set(acks)) == total
