"""A scoring period across processes on 127.0.0.1: the aggregator as its own process.

``psc demo --processes``.  Setup writes a loopback deployment (:mod:`psc.service.deploy`)
and starts the aggregator with ``psc serve`` on a free port; every other party runs in
this process and reaches the aggregator only through :class:`~psc.service.client.HttpAggregator`
(sealed CBOR over HTTP).  Phases, as in :func:`psc.sim.driver.run`:

``setup``   the registry enrols the city, publishes parameters, registers every party;
            the deployment is written to disk and the aggregator process started
``submit``  agencies encrypt, commit and sign each period's envelope (in this process)
``ingest``  the aggregator process verifies, logs and adds each one (over HTTP)
``reveal``  every subject's grade through the registry, and a bank's, through the
            trusted key holder (this process), the aggregator's steps over HTTP
``access``  sampled subjects fetch their events from agencies, with log inclusions from
            the aggregator process, and recompute their grade
``audit``   the aggregator is stopped; its log file is verified with its public key alone;
            grades are compared with the plaintext oracle (the simulation's god view)

The aggregator process is stopped on every path out of :func:`run_loopback` (a failed
check, an exception, Ctrl-C).  Reveal: the trusted key holder only (the committee's DP
reveal across processes is tested in ``tests/test_service_committee.py``; its god-view
check in the demo needs the members' noise, which stays in their processes).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from psc.catalog import period_label
from psc.events import Event
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.log_verify import verify_log
from psc.oracle import score
from psc.parties.key_holder import KeyHolder, TrustedDecryptor
from psc.parties.relying_party import read_grades
from psc.parties.subject import Subject
from psc.protocol.logview import LedgerLogView
from psc.protocol.signing import digest
from psc.service.client import HttpAggregator, HttpPeer
from psc.service.deploy import write_deployment
from psc.service.processes import Parties
from psc.sim.city import City
from psc.sim.sources import demo_keypair


@dataclass
class LoopbackResult:
    """What a run across processes measured and checked."""

    subjects: int
    agencies: int
    periods: int
    evaluation_period: str
    aggregator_url: str
    grades: dict[str, int]
    oracle_grades: dict[str, int]
    mismatches: int
    relying_party_grade: str
    access_checked: int
    access_consistent: int
    log_size: int
    log_verified: bool
    bytes_over_http: int
    phase_seconds: dict[str, float] = field(default_factory=dict)
    grades_match_oracle: bool = False
    ok: bool = False


def run_loopback(
    city: City,
    directory: str | Path,
    *,
    key_bits: int = 2048,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
    access_sample: int = 10,
) -> LoopbackResult:
    """Run ``city``'s periods with the aggregator as its own process (see the module doc).

    ``city`` must end no later than last month (the aggregator process keeps real time).
    ``directory`` must be new or empty: the deployment is written there.
    """
    phases: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            phases[name] += time.perf_counter() - t0

    cat = city.catalog
    first, last = city.periods[0], city.periods[-1]
    pk, sk = keypair if keypair is not None else demo_keypair(key_bits)
    wire = 0

    # -- setup: keys, enrolment, parameters, registrations; files; the aggregator process
    with phase("setup"):
        root, d = write_deployment(
            directory,
            catalog=cat,
            catalog_name=str(cat.source).removeprefix("builtin:"),
            subjects=city.n_subjects,
            keypair=(pk, sk),
            agencies=city.agencies,
        )
        params, slot_of = d.params, d.slot_of
        ledger_path = root / "aggregator" / "ledger.sqlite"
        key_holder = KeyHolder(
            params,
            TrustedDecryptor(params, sk),
            d.key_holder._key,
            log_view=LedgerLogView(params, ledger_path),
        )
        key_holder.register_relying_party(d.bank_registration)
    with Parties() as parties:
        with phase("setup"):
            server = parties.start("aggregator", root / "aggregator.toml")
        with HttpPeer(server.url, timeout=600) as peer:
            aggregator = HttpAggregator(peer)

            # -- submit (agencies, here) and ingest (the aggregator process), per period
            envelopes: list[bytes] = []
            for p in city.periods:
                for inst, agency in zip(city.agencies, d.agencies, strict=True):
                    evs = [
                        Event(int(slot_of[e.subject]), e.rule, e.date, e.evidence)
                        for e in city.events[inst.id][p]
                    ]
                    with phase("submit"):
                        envelope = agency.submit(evs, p)
                    with phase("ingest"):
                        receipt = aggregator.ingest(envelope)
                    wire += len(envelope) + len(receipt)
                    with phase("submit"):
                        agency.accept_receipt(receipt)
                    envelopes.append(envelope)

            # -- reveal: every subject (through the registry), then one bank request
            def reveal_one(request: bytes) -> bytes:
                nonlocal wire
                prepared = aggregator.prepare_reveal(request)
                answer = key_holder.answer(prepared)
                logged = aggregator.release(answer.notice)
                key_holder.check_logged(answer, logged)
                wire += len(request) + len(prepared) + len(answer.notice) + len(logged)
                return answer.response

            with phase("reveal"):
                request = d.registry.grade_request(range(city.n_subjects), last)
                revealed = read_grades(params, request, reveal_one(request))
                rp_request = d.bank.request_grade(int(slot_of[0]), d.bank_purpose, last)
                rp_grade = d.bank.read_grade(rp_request, reveal_one(rp_request))

            # -- access: sampled subjects, inclusions from the aggregator process
            table = city.table(slot_of)
            rng = np.random.default_rng(city.seed + 1)
            pick = rng.choice(
                city.n_subjects, size=min(access_sample, city.n_subjects), replace=False
            )
            identity_of = {s: ident for ident, s in d.slots.items()}
            checked = consistent = 0
            with phase("access"):
                inclusions = {digest(e): aggregator.log_inclusion(digest(e)) for e in envelopes}
                for slot in (int(s) for s in pick):
                    subject = Subject(slot, params)
                    for reg in d.registrations:
                        subject.learn_agency(reg)
                    events = []
                    for agency in d.agencies:
                        req = d.registry.access_request(identity_of[slot], first, last)
                        events += subject.verify_access(req, agency.answer_access(req), inclusions)
                    _, grade = subject.explain(events, last)
                    checked += 1
                    consistent += grade == revealed[slot]
        parties.stop_all()

    # -- audit: the log file with the aggregator's public key alone; grades vs the oracle
    with phase("audit"):
        report = verify_log(ledger_path, d.aggregator_public_key)
        oracle = score(table, last)
        labels = cat.labels
        got = np.array([labels.index(revealed[s]) for s in range(city.n_subjects)])
        mismatches = int(np.count_nonzero(got != oracle.grade))
    hist = Counter(revealed.values())
    result = LoopbackResult(
        subjects=city.n_subjects,
        agencies=len(city.agencies),
        periods=len(city.periods),
        evaluation_period=period_label(last),
        aggregator_url=server.url,
        grades={lab: hist.get(lab, 0) for lab in labels},
        oracle_grades=oracle.histogram(cat),
        mismatches=mismatches,
        relying_party_grade=rp_grade,
        access_checked=checked,
        access_consistent=consistent,
        log_size=report.size,
        log_verified=report.unsigned_leaves == 0,
        bytes_over_http=wire,
        phase_seconds={k: round(v, 3) for k, v in phases.items()},
    )
    result.grades_match_oracle = (
        mismatches == 0
        and rp_grade == labels[int(oracle.grade[int(slot_of[0])])]
        and consistent == checked
    )
    result.ok = result.grades_match_oracle and result.log_verified
    return result


def recent_first_period(periods: int, today: dt.date | None = None) -> int:
    """The first of ``periods`` months ending last month (what a live aggregator accepts)."""
    from psc.catalog import period_index

    now = period_index(today or dt.datetime.now(dt.UTC).date())
    return now - periods
