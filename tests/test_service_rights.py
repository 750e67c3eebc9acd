"""The rights office as its own process, against the other parties' processes.

A loopback deployment (INSECURE 512-bit test key, the trusted key holder) with two
agencies; the aggregator, the registry, the agencies, the key holder's desk and the rights
office each run as ``psc serve`` on 127.0.0.1, started and stopped by
:class:`psc.service.processes.Parties`.  Residents and the operator are this test's
clients: canonical-CBOR asks (``protocols/service.md`` §10), records back.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from psc.catalog import load_catalog, period_index, period_start
from psc.events import Event
from psc.exceptions import InvalidMessage, RightsRequestError, UnknownParty
from psc.ledger.log_verify import verify_log
from psc.parties.agency_desk import RecordStore
from psc.parties.relying_party import read_grades
from psc.protocol import codec
from psc.protocol.messages import LogInclusion
from psc.protocol.rights_asks import (
    AdjustmentBatch,
    InclusionBatch,
    RightsAccessAsk,
    RightsAnswerAccess,
    RightsCorrectionAsk,
    RightsGrant,
    RightsRecord,
    RightsRepairAsk,
    RightsRepairDecision,
    RightsWithdrawalAsk,
)
from psc.protocol.service_messages import GradeAsk, SubmitPeriod
from psc.protocol.signing import digest
from psc.service.client import HttpPeer
from psc.service.config import load_config, load_params
from psc.service.deploy import write_deployment
from psc.service.processes import Parties, Party, child_env
from psc.sim.city import agency_instances
from psc.testing import insecure_keypair

pytestmark = pytest.mark.timeout(600)

N_SUBJECTS = 24
AGENCIES = ("intermediate-court", "transport-bureau")
NOW = period_index(dt.datetime.now(dt.UTC).date())
PERIOD = NOW - 1  # the period the agencies submit; its records still count now
FAULT_CHILD = Path(__file__).parent / "faults" / "rights_office_child.py"


def _event(rule: str, slot: int, tag: str) -> Event:
    day = period_start(PERIOD) + dt.timedelta(days=2)
    return Event(slot, rule, day, digest(tag.encode()).hex())


@pytest.fixture
def deployment(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    catalog = load_catalog("city")
    instances = [a for a in agency_instances(catalog) if a.id in AGENCIES]
    root, _ = write_deployment(
        tmp_path / "dep",
        catalog=catalog,
        catalog_name="city",
        subjects=N_SUBJECTS,
        keypair=insecure_keypair(0, 512),
        agencies=instances,
    )
    slots = json.loads((root / "registry" / "slots.json").read_text())
    return root, {str(k): int(v) for k, v in slots.items()}


@pytest.fixture
def parties() -> Iterator[Parties]:
    with Parties() as ps:
        yield ps


def _start_others(root: Path, ps: Parties) -> dict[str, Party]:
    agg = ps.start("aggregator", root / "aggregator.toml")
    out = {"aggregator": agg, "registry": ps.start("registry", root / "registry.toml")}
    for a in AGENCIES:
        out[a] = ps.start("agency", root / "agencies" / f"{a}.toml", {"aggregator": agg.url})
    out["key-holder"] = ps.start("key-holder", root / "key_holder.toml", {"aggregator": agg.url})
    return out


def _peers(others: dict[str, Party]) -> dict[str, str]:
    return {name: p.url for name, p in others.items()}


def _file_and_submit(root: Path, others: dict[str, Party], events: dict[str, list[Event]]) -> None:
    for a in AGENCIES:
        RecordStore.write(root / "agencies" / a / "records.sqlite", events.get(a, []))
    for a in AGENCIES:
        with HttpPeer(others[a].url, timeout=120) as peer:
            peer.post("/v1/period-submissions", codec.encode(SubmitPeriod(PERIOD)))


def _record(peer: HttpPeer, path: str, ask: object) -> RightsRecord:
    return codec.decode(peer.post(path, codec.encode(ask)), RightsRecord)  # type: ignore[arg-type]


def _log_size(root: Path) -> int:
    conn = sqlite3.connect(f"file:{root / 'aggregator' / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM log_leaves").fetchone()[0])
    finally:
        conn.close()


def _verify_log(root: Path) -> int:
    params = load_params(load_config(root / "aggregator.toml"))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(params.aggregator_key)
    report = verify_log(root / "aggregator" / "ledger.sqlite", key)
    assert report.unsigned_leaves == 0
    return report.size


def _own_grade(root: Path, others: dict[str, Party], identity: str, slot: int) -> str:
    """The resident's own grade now, revealed by the key holder's process."""
    params = load_params(load_config(root / "aggregator.toml"))
    with HttpPeer(others["registry"].url) as reg, HttpPeer(others["key-holder"].url) as kh:
        request = reg.post("/v1/grade-asks", codec.encode(GradeAsk((identity,), NOW)))
        return read_grades(params, request, kh.post("/v1/grade-requests", request))[slot]


def _access(office: HttpPeer, identity: str, ask_id: bytes) -> tuple[RightsRecord, dict]:  # type: ignore[type-arg]
    opened = _record(office, "/v1/rights/access-asks", RightsAccessAsk(ask_id, identity, "access"))
    assert opened.status == "open" and opened.identity == identity
    done = _record(office, "/v1/rights/access-answers", RightsAnswerAccess(opened.id, PERIOD, NOW))
    assert done.id == opened.id and done.status == "granted"
    return done, json.loads(done.outcome)


def test_access_and_a_granted_correction_across_processes(
    deployment: tuple[Path, dict[str, int]], parties: Parties
) -> None:
    root, slots = deployment
    identity = sorted(slots)[3]
    slot = slots[identity]
    court = _event("court.judgment-default", slot, "court/1")
    traffic = _event("traffic.violation", slot, "traffic/1")
    others = _start_others(root, parties)
    _file_and_submit(root, others, {"intermediate-court": [court], "transport-bureau": [traffic]})
    office_p = parties.start("rights-office", root / "rights_office.toml", _peers(others))
    before_grade = _own_grade(root, others, identity, slot)
    with HttpPeer(office_p.url, timeout=300) as office:
        _refused_asks_change_nothing(root, office, identity)
        # access: every event proven against the log, the grade revealed and explained
        rec, answer = _access(office, identity, b"\x01" * 16)
        assert answer["verified"] is True
        assert sorted(e["rule"] for e in answer["events"]) == sorted([court.rule, traffic.rule])
        assert answer["revealed_grade"] == answer["grade"]
        # the same ask again answers the same request, opening nothing
        again = _record(
            office, "/v1/rights/access-asks", RightsAccessAsk(b"\x01" * 16, identity, "access")
        )
        assert again.id == rec.id and again.status == "granted"
        ref = next(e["ref"] for e in answer["events"] if e["rule"] == court.rule)

        # correction: ordered by the registry, sealed by the agency, logged by the aggregator
        size = _verify_log(root)
        opened = _record(
            office,
            "/v1/rights/correction-asks",
            RightsCorrectionAsk(b"\x02" * 16, identity, "correction", ref, "not mine"),
        )
        granted = _record(office, "/v1/rights/grants", RightsGrant(opened.id))
        assert granted.status == "granted" and len(granted.adjustments) == 1
        # one adjustment entry, and the reveal notices of the office's proving access (none:
        # the grant proves the event with an access answer only, no reveal)
        assert _verify_log(root) == size + 1
        # a retried grant answers the record and logs nothing
        assert _record(office, "/v1/rights/grants", RightsGrant(opened.id)) == granted
        assert _verify_log(root) == size + 1
        # the aggregator: the same adjustment again returns its inclusion, logs nothing
        with HttpPeer(others["aggregator"].url) as agg:
            h = granted.adjustments[0].hex()
            sealed = agg.get(f"/v1/log/adjustments/{h}")
            first = agg.get(f"/v1/log/adjustment-inclusions/{h}")
            assert agg.post("/v1/adjustments", sealed) == first
            batch = agg.post("/v1/adjustment-batches", codec.encode(AdjustmentBatch((sealed,))))
            assert codec.decode(batch, InclusionBatch).inclusions == (first,)
            assert _verify_log(root) == size + 1

        # the subject's next grade reflects it: the court's -50 no longer counts
        after_grade = _own_grade(root, others, identity, slot)
        _, later = _access(office, identity, b"\x03" * 16)
        cancelled = [e for e in later["events"] if e["cancelled_by"]]
        assert [e["ref"] for e in cancelled] == [ref]
        assert cancelled[0]["cancelled_by"] == granted.adjustments[0].hex()
        assert later["revealed_grade"] == later["grade"] == after_grade
        assert later["score"] == answer["score"] + 50
        # after the log grew: the inclusion of the same entry, under the newer head
        with HttpPeer(others["aggregator"].url) as agg:
            old = codec.decode(first, LogInclusion)
            new = codec.decode(agg.post("/v1/adjustments", sealed), LogInclusion)
            assert (new.index, new.entry) == (old.index, old.entry)
            assert new.tree_head.size > old.tree_head.size
    assert after_grade != before_grade or later["score"] != answer["score"]


def _digest(path: Path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [(t, list(conn.execute(f'SELECT * FROM "{t}" ORDER BY 1'))) for t in sorted(names)]
    finally:
        conn.close()
    return digest(repr(rows).encode()).hex()


def _refused_asks_change_nothing(root: Path, office: HttpPeer, identity: str) -> None:
    files = [
        root / "rights_office" / "desk.sqlite",
        root / "aggregator" / "ledger.sqlite",
        *(root / "agencies" / a / "outbox.sqlite" for a in AGENCIES),
    ]
    before = [_digest(f) for f in files]
    ghost = "0" * 64 + "#0"
    for path, ask, error in (
        ("/v1/rights/access-asks", RightsAccessAsk(b"\x09" * 16, "nobody", "access"), UnknownParty),
        (
            "/v1/rights/correction-asks",
            RightsCorrectionAsk(b"\x0a" * 16, identity, "correction", ghost, ""),
            RightsRequestError,
        ),
        (
            "/v1/rights/correction-asks",
            RightsCorrectionAsk(b"\x0b" * 16, identity, "correction", "not-a-ref", ""),
            RightsRequestError,
        ),
        ("/v1/rights/grants", RightsGrant(999), RightsRequestError),
        ("/v1/rights/access-answers", RightsAnswerAccess(999, PERIOD, NOW), RightsRequestError),
    ):
        with pytest.raises(error):
            office.post(path, codec.encode(ask))
    with pytest.raises(InvalidMessage):  # not canonical CBOR of any ask
        office.post("/v1/rights/grants", b"\xa0")
    assert [_digest(f) for f in files] == before


@pytest.mark.parametrize("boundary", ["intent", "ledger", "agency", "links"])
def test_a_grant_killed_at_a_commit_boundary_completes_once_on_restart(
    deployment: tuple[Path, dict[str, int]], parties: Parties, boundary: str
) -> None:
    root, slots = deployment
    identity = sorted(slots)[5]
    slot = slots[identity]
    court = _event("court.judgment-default", slot, "court/2")
    others = _start_others(root, parties)
    _file_and_submit(root, others, {"intermediate-court": [court]})
    peers = _peers(others)
    office_p = parties.start("rights-office", root / "rights_office.toml", peers)
    with HttpPeer(office_p.url, timeout=300) as office:
        _, answer = _access(office, identity, b"\x04" * 16)
        ref = answer["events"][0]["ref"]
        opened = _record(
            office,
            "/v1/rights/correction-asks",
            RightsCorrectionAsk(b"\x05" * 16, identity, "correction", ref, ""),
        )
    office_p.stop()
    parties.running.remove(office_p)
    size = _verify_log(root)

    # the office, killed (SIGKILL) as it passes the boundary of the grant
    child = subprocess.Popen(
        [
            sys.executable,
            str(FAULT_CHILD),
            str(root / "rights_office.toml"),
            boundary,
            str(opened.id),
            json.dumps(peers),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=child_env(),
    )
    try:
        _, err = child.communicate(timeout=240)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
    logged = 0 if boundary == "intent" else 1  # the order recorded, or its effect logged too
    assert _verify_log(root) == size + logged  # and the desk has not decided
    desk = sqlite3.connect(root / "rights_office" / "desk.sqlite")
    status = desk.execute("SELECT status FROM rights_requests WHERE id = ?", (opened.id,))
    assert status.fetchone()[0] == "open"
    desk.close()

    # restarted from its files: recovery completes the grant, logging nothing more
    office_p = parties.start("rights-office", root / "rights_office.toml", peers)
    with HttpPeer(office_p.url, timeout=300) as office:
        rec = codec.decode(office.get(f"/v1/rights/requests/{opened.id}"), RightsRecord)
        assert rec.status == "granted" and len(rec.adjustments) == 1
        assert _record(office, "/v1/rights/grants", RightsGrant(opened.id)) == rec
        _, later = _access(office, identity, b"\x06" * 16)
        assert [e["cancelled_by"] for e in later["events"]] == [rec.adjustments[0].hex()]
        assert later["score"] == answer["score"] + 50
    assert _verify_log(root) == size + 1 + 1  # + the reveal of the later access only


def test_a_repair_refused_then_granted_and_a_withdrawal_across_processes(
    deployment: tuple[Path, dict[str, int]], parties: Parties
) -> None:
    root, slots = deployment
    identity = sorted(slots)[7]
    slot = slots[identity]
    traffic = _event("traffic.violation", slot, "traffic/7")  # minor: no publication minimum
    others = _start_others(root, parties)
    _file_and_submit(root, others, {"transport-bureau": [traffic]})
    office_p = parties.start("rights-office", root / "rights_office.toml", _peers(others))
    with HttpPeer(office_p.url, timeout=300) as office:
        _, answer = _access(office, identity, b"\x07" * 16)
        ref = answer["events"][0]["ref"]
        size = _verify_log(root)
        # performance not proven: refused with its reason, nothing logged
        first = _record(
            office,
            "/v1/rights/repair-asks",
            RightsRepairAsk(b"\x08" * 16, identity, traffic.rule, ref, ""),
        )
        refused = _record(
            office, "/v1/rights/repair-decisions", RightsRepairDecision(first.id, False)
        )
        assert refused.status == "refused" and "performance" in refused.reason
        assert refused.adjustments == () and _verify_log(root) == size
        # proven: the agency's adjustment is checked, then logged, then the desk decides
        second = _record(
            office,
            "/v1/rights/repair-asks",
            RightsRepairAsk(b"\x0c" * 16, identity, traffic.rule, ref, "paid"),
        )
        granted = _record(
            office, "/v1/rights/repair-decisions", RightsRepairDecision(second.id, True)
        )
        assert granted.status == "granted" and len(granted.adjustments) == 1
        assert _verify_log(root) == size + 1
        again = _record(
            office, "/v1/rights/repair-decisions", RightsRepairDecision(second.id, True)
        )
        assert again == granted and _verify_log(root) == size + 1
        _, later = _access(office, identity, b"\x0d" * 16)
        assert later["events"][0]["cancelled_by"] == granted.adjustments[0].hex()
        assert later["score"] == answer["score"] + 5
        assert later["revealed_grade"] == later["grade"]
        # a consent withdrawal is recorded at once
        withdrawn = _record(
            office,
            "/v1/rights/withdrawal-asks",
            RightsWithdrawalAsk(b"\x0e" * 16, identity, "token-1", "bank"),
        )
        assert withdrawn.kind == "consent-withdrawal" and withdrawn.ref == "token-1"
        assert withdrawn.status != "open"
