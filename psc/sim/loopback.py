"""The reference run across processes: every party its own OS process on 127.0.0.1.

``psc demo`` (and ``make demo``).  Setup writes a loopback deployment
(:mod:`psc.service.deploy`) and starts every served party with ``psc serve`` on a free
port: the aggregator, the registry, each agency, the key holder's reveal desk and, with a
committee, each of its ``n`` members.  The relying party (a bank) and the residents are
clients: they run in this process and reach the parties only over HTTP, as sealed CBOR.
Nothing but bytes passes between processes; each party opens its own keys and SQLite
state from its files.  Phases, as in :func:`psc.sim.driver.run`:

``setup``   the registry enrols the city, publishes parameters, registers every party;
            the deployment is written to disk, each agency's records filed in its own
            record store (the simulation plays the agencies' back offices), and every
            party process started
``submit``  each period, every agency's operator asks its agency process to submit: it
            encrypts, commits, proves and signs its envelope and sends it to the
            aggregator process, which verifies, logs and adds it (``ingest`` is part of it)
``reveal``  the residents ask the registry process for a signed grade request and send it
            to the key holder's desk, which has the aggregator prepare it, decrypts
            through the committee processes (or the trusted key), has the notice logged
            and answers; then the bank asks for one subject's grade the same way
``access``  sampled residents get a signed access request from the registry, ask every
            agency process for their events, check them against log inclusions from the
            aggregator process and recompute their grade
``he``      with ``reveal="he"``: the same events graded under CKKS by the grading
            authority as its own process (:mod:`psc.sim.loopback_he`)
``audit``   every party is stopped; the aggregator's log file is verified with its public
            key alone; grades are compared with the oracle (the simulation's god view)

**God view (simulation only).**  With a committee, every member process records the
grade noise it draws in ``DIR/simulation/noise`` (``ServiceConfig.simulation_noise_witness``,
written only by this run, read by nothing but its audit); after the run the audit also
reads the combiner's store for the members it excluded and what each subject spent.  That
is what the single-process driver's god view sees, so the checks are the same.

Every process is stopped on every path out of :func:`run_processes` (a failed check, an
exception, Ctrl-C); a party whose parent dies stops itself (:mod:`psc.service.processes`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from psc.catalog import Catalog
from psc.dp.accounting import ApproxDP
from psc.events import Event
from psc.hazmat.paillier import MIN_KEY_BITS, PaillierPrivateKey, PaillierPublicKey
from psc.hazmat.threshold.dealer import deal
from psc.ledger.log_verify import verify_log
from psc.parties.agency_desk import RecordStore
from psc.parties.committee import CommitteeParameters, expected_misgrade_rate, subject_key
from psc.parties.relying_party import read_grades
from psc.parties.subject import Subject
from psc.protocol import codec
from psc.protocol.committee_messages import CommitteeGrades
from psc.protocol.messages import IngestReceipt
from psc.protocol.service_messages import AccessAsk, GradeAsk, SubmitPeriod
from psc.protocol.signing import digest, open_signed
from psc.service.client import HttpAggregator, HttpPeer
from psc.service.config import load_config
from psc.service.deploy import load_committee, write_deployment
from psc.service.desks import PEER_TIMEOUT
from psc.service.processes import Parties, Party
from psc.sim.city import City
from psc.sim.committee_fields import fill_committee_fields
from psc.sim.deployment import Deployment, SimulationNoiseWitness
from psc.sim.god_view import (
    AccessTally,
    HeRun,
    OracleComparison,
    committee_noise_totals,
    compare_with_oracle,
    fill_he_result,
    misgrade_rate_plausible,
    sample_access_subjects,
)
from psc.sim.loopback_he import HeAcrossProcesses
from psc.sim.meter import Meter
from psc.sim.results import RunResult, run_result
from psc.sim.sources import demo_keypair

#: Progress lines (phase names and counts), e.g. ``print`` to stderr; ``None``: quiet.
Progress = Callable[[str], None] | None


@dataclass
class Observed:
    """What the clients of a run across processes got back (the parties' own files are
    read afterwards by :func:`processes_result`)."""

    root: Path  # the deployment directory
    setup: Deployment  # what setup made (the simulation keeps it; no party reads it)
    meter: Meter  # phases, and messages and bytes the clients sent and received
    revealed: dict[int, str]  # slot -> revealed grade label (every subject)
    relying_party: tuple[int, str]  # the bank's slot and the grade it got
    requests: list[bytes]  # the grade requests answered (the residents', the bank's)
    access: list[tuple[int, list[Event], str]]  # (slot, verified events, own grade)
    urls: dict[str, str] = field(default_factory=dict)  # party -> URL (all stopped)
    he: HeAcrossProcesses | None = None  # reveal="he": the CKKS grading's observations


def identity(index: int) -> str:
    """The synthetic resident ``index``'s identity (as :func:`psc.sim.deployment.setup`)."""
    return f"resident-{index:07d}"


def run_processes(
    city: City,
    directory: str | Path,
    *,
    key_bits: int = 2048,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
    reveal: str = "committee",
    committee: tuple[int, int] = (3, 5),
    epsilon: Fraction = Fraction(1),
    access_sample: int = 25,
    progress: Progress = None,
) -> Observed:
    """Run ``city``'s periods with every party in its own process (see the module doc).

    ``city`` must end no later than last month (the parties keep real time).
    ``directory`` must be new or empty: the deployment is written there.  ``reveal``:
    ``"committee"`` (a dealt ``committee = (k, n)`` key, DP grades, ``epsilon`` per
    subject and period), ``"trusted"`` (one key holder; ``keypair`` overrides the key) or
    ``"he"`` (the trusted reveal, then the same events graded under CKKS by the grading
    authority as its own process, :mod:`psc.sim.loopback_he`).  Check the result with
    :func:`processes_result`.
    """
    if reveal not in ("committee", "trusted", "he"):
        raise ValueError(f"across processes, reveal is committee, trusted or he, not {reveal!r}")
    say = progress or (lambda _line: None)
    meter = Meter()
    cat = city.catalog
    first, last = city.periods[0], city.periods[-1]

    # -- setup: keys, enrolment, parameters, registrations; the deployment's files; each
    #    agency's records filed in its own record store; every party's process
    say("setup ...")
    with meter.phase("setup"):
        dealt = None
        if reveal == "committee":
            dealt = deal(*committee, bits=key_bits, allow_insecure=key_bits < MIN_KEY_BITS)
            pk, sk = dealt[0].public, None
        else:
            pk, sk = keypair if keypair is not None else demo_keypair(key_bits)
        root, d = write_deployment(
            directory,
            catalog=cat,
            catalog_name=_catalog_name(cat),
            subjects=city.n_subjects,
            keypair=(pk, sk),
            committee=dealt,
            epsilon=epsilon,
            agencies=city.agencies,
            noise_witness=Path("simulation") / "noise" if dealt is not None else None,
        )
        for inst, agency in zip(city.agencies, d.agencies, strict=True):  # back offices
            records = root / "agencies" / agency.id / "records.sqlite"
            RecordStore.write(
                records, (e for p in city.periods for e in city.records(inst.id, p, d.slot_of))
            )
    with Parties() as parties:
        with meter.phase("setup"):
            urls = _start_all(parties, root, [a.id for a in d.agencies], dealt is not None, say)
        peers = {name: HttpPeer(url, timeout=PEER_TIMEOUT) for name, url in urls.items()}
        try:

            def call(name: str, kind: str, path: str, body: bytes) -> bytes:
                return meter.send(f"{kind}-answer", peers[name].post(path, meter.send(kind, body)))

            # -- submit: each period, every agency process encrypts, proves and signs its
            #    envelope and sends it to the aggregator process (ingest), concurrently
            say("submit ...")
            receipts: list[IngestReceipt] = []
            with meter.phase("submit"), ThreadPoolExecutor(max_workers=len(d.agencies)) as pool:
                for p in city.periods:
                    ask = codec.encode(SubmitPeriod(p))
                    answers = pool.map(
                        lambda a, body=ask: call(
                            a.id, "submit-period", "/v1/period-submissions", body
                        ),
                        d.agencies,
                    )
                    receipts += [
                        open_signed(r, IngestReceipt, lambda m: d.params.aggregator_key)
                        for r in answers
                    ]
                    say(f"  period {p}: {len(d.agencies)} envelopes logged")

            # -- reveal: every resident's grade through the registry and the key holder's
            #    desk (which runs the committee), then the bank's one request
            say("reveal ...")
            with meter.phase("reveal"):
                idents = tuple(identity(i) for i in range(city.n_subjects))
                request = call("registry", "grade-ask", "/v1/grade-asks", _grade_ask(idents, last))
                response = call("key-holder", "grade-request", "/v1/grade-requests", request)
                revealed = read_grades(d.params, request, response)
                rp_slot = int(d.slot_of[0])
                rp_request = d.bank.request_grade(rp_slot, d.bank_purpose, last)
                rp_response = call("key-holder", "grade-request", "/v1/grade-requests", rp_request)
                rp_grade = d.bank.read_grade(rp_request, rp_response)

            # -- access: sampled residents get a signed request from the registry, their
            #    events from every agency process, inclusions from the aggregator process
            say("access ...")
            access: list[tuple[int, list[Event], str]] = []
            with meter.phase("access"):
                aggregator = HttpAggregator(peers["aggregator"])
                inclusions = {
                    r.envelope_hash: aggregator.log_inclusion(r.envelope_hash) for r in receipts
                }
                identity_of = {slot: ident for ident, slot in d.slots.items()}
                rng = np.random.default_rng(city.seed + 1)
                for slot in (
                    int(s)
                    for s in sample_access_subjects(city.table(d.slot_of), access_sample, rng)
                ):
                    subject = Subject(slot, d.params)
                    for reg in d.registrations:
                        subject.learn_agency(reg)
                    ask = codec.encode(AccessAsk(identity_of[slot], first, last))
                    events: list[Event] = []
                    for agency in d.agencies:
                        req = call("registry", "access-ask", "/v1/access-asks", ask)
                        resp = call(agency.id, "access-request", "/v1/access-requests", req)
                        events += subject.verify_access(req, resp, inclusions)
                    access.append((slot, events, subject.explain(events, last)[1]))
            # -- with reveal="he": the same events graded under CKKS, the grading authority
            #    its own process (the simulation encrypts and signs for the agencies)
            he = None
            if reveal == "he":
                from psc.sim.loopback_he import grade_he_across_processes

                say("CKKS grading (the grading authority's process) ...")
                with meter.phase("he"):
                    by_agency = {
                        inst.id: [
                            e for p in city.periods for e in city.records(inst.id, p, d.slot_of)
                        ]
                        for inst in city.agencies
                    }
                    he = grade_he_across_processes(
                        root,
                        parties,
                        by_agency,
                        first_period=first,
                        at=last,
                        relying_party_slot=rp_slot,
                    )
                urls["grading-authority"] = he.url
        finally:  # every client closed, whatever ended the run
            for client in peers.values():
                client.close()
        say("stopping every party ...")
        with meter.phase("audit"):
            parties.stop_all()
    meter.wire["submission"] = _envelope_bytes(root)  # the agencies' hop, from the log
    meter.messages["submission"] = len(receipts)
    return Observed(
        root, d, meter, revealed, (rp_slot, rp_grade), [request, rp_request], access, urls, he
    )


def _grade_ask(identities: tuple[str, ...], period: int) -> bytes:
    return codec.encode(GradeAsk(identities, period))


def _start_all(
    parties: Parties, root: Path, agencies: list[str], committee: bool, say: Callable[[str], None]
) -> dict[str, str]:
    """Start every party in dependency order (each learns its peers' URLs); names -> URLs."""
    agg = parties.start("aggregator", root / "aggregator.toml")
    urls = {"aggregator": agg.url}
    on_agg = {"aggregator": agg.url}
    # members and the key holder check reveals against a verified replica of the log,
    # synced from the aggregator's log routes (never its files)
    log = ("--log-url", agg.url)
    jobs: list[tuple[str, str, Path, Mapping[str, str], tuple[str, ...]]] = [
        ("registry", "registry", root / "registry.toml", {}, ())
    ]
    jobs += [(a, "agency", root / "agencies" / f"{a}.toml", on_agg, ()) for a in agencies]
    if committee:
        members = sorted(root.glob("member-*.toml"))
        jobs += [(m.stem, "member", m, {}, log) for m in members]
    started = _start_many(parties, jobs)
    urls |= {name: p.url for name, p in started.items()}
    holder_peers = {"aggregator": agg.url} | {
        name: url for name, url in urls.items() if name.startswith("member-")
    }
    holder = parties.start("key-holder", root / "key_holder.toml", holder_peers, extra_args=log)
    urls["key-holder"] = holder.url
    say(f"  {len(urls)} parties running on 127.0.0.1")
    return urls


def _start_many(
    parties: Parties, jobs: list[tuple[str, str, Path, Mapping[str, str], tuple[str, ...]]]
) -> dict[str, Party]:
    """Start several parties at once (each import takes a moment); all or an exception."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            name: pool.submit(parties.start, role, cfg, peers, extra_args=extra)
            for name, role, cfg, peers, extra in jobs
        }
        return {name: f.result() for name, f in futures.items()}


def _envelope_bytes(root: Path) -> int:
    """God view: the bytes of every envelope the aggregator stored (agency to aggregator,
    a hop the clients of this run do not see)."""
    conn = sqlite3.connect(f"file:{root / 'aggregator' / 'ledger.sqlite'}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT COALESCE(SUM(LENGTH(envelope)), 0) FROM envelopes").fetchone()[0]
        )
    finally:
        conn.close()


def recent_first_period(periods: int, today: dt.date | None = None) -> int:
    """The first of ``periods`` months ending last month (what a live aggregator accepts)."""
    from psc.catalog import period_index

    now = period_index(today or dt.datetime.now(dt.UTC).date())
    return now - periods


def processes_result(city: City, observed: Observed) -> RunResult:
    """The audit of a run across processes: the single-process driver's checks.

    The aggregator's log file is verified with its public key alone; every revealed grade
    is compared with its expected grade (:func:`~psc.sim.god_view.compare_with_oracle`):
    the noiseless oracle's (trusted), or the oracle's grade of the raw score plus the noise
    the members drew (committee: the god view reads the member processes' draws from
    ``DIR/simulation/noise`` and, from the combiner's store, the members it excluded; the
    store does not keep why, so every excluded member's noise is left out, which can only
    make the check fail, never pass wrongly).  Access answers are checked as in the
    driver (:class:`~psc.sim.god_view.AccessTally`).
    """
    root, d, meter = observed.root, observed.setup, observed.meter
    cat, last = city.catalog, city.periods[-1]
    committee = (root / "committee.json").exists()
    with meter.phase("audit"):
        report = verify_log(root / "aggregator" / "ledger.sqlite", d.aggregator_public_key)
        noise = None
        if committee:
            cparams = load_committee(root, d.params)
            excluded = _combiner_excluded(root, cparams, observed.requests)
            witness = SimulationNoiseWitness(root / "simulation" / "noise")
            why = {i: "no noise share (excluded; the store keeps no reason)" for i in excluded}
            noise = committee_noise_totals(
                witness, why, cparams.n, last, city.n_subjects, cat.cap_labels()
            )
        table = city.table(d.slot_of)
        comparison = compare_with_oracle(
            cat, table, last, observed.revealed, relying_party=observed.relying_party, noise=noise
        )
        tally = AccessTally()
        for slot, events, own in observed.access:
            tally.record(cat, events, last, own, observed.revealed[slot], slot=slot, noise=noise)
    result = run_result(
        city,
        d.params,
        d.agencies,
        meter,
        comparison,
        tally,
        report.size,
        report.unsigned_leaves == 0,
    )
    result.processes = dict(observed.urls)
    if observed.he is not None:
        _he_fields(result, city, observed.he, comparison)
    if committee and noise is not None:
        worst, budget = _combiner_spent(root, cparams.epsilon, city.n_subjects)
        fill_committee_fields(
            result,
            cparams,
            worst,
            budget,
            excluded,
            expected_misgrade_rate(
                cparams,
                comparison.oracle.raw,
                comparison.cap_counts,
                comparison.oracle.grade.astype(np.int64),
            ),
        )
        result.noise_witnessed = int(np.count_nonzero(noise.witnessed))
        result.ok = (
            result.ok
            and result.access_checked == len(observed.access)
            and misgrade_rate_plausible(
                result.misgrade_rate_vs_noiseless_oracle,
                result.expected_misgrade_rate,
                result.subjects,
            )
        )
    return result


def _combiner_excluded(root: Path, cparams: CommitteeParameters, requests: list[bytes]) -> set[int]:
    """God view: the members the combiner excluded from its answers to ``requests`` (its
    signed answers, from its store)."""
    conn = sqlite3.connect(f"file:{root / 'key_holder' / 'committee.sqlite'}?mode=ro", uri=True)
    try:
        out: set[int] = set()
        for req in requests:
            row = conn.execute(
                "SELECT answer FROM committee_answers WHERE request_hash = ?", (digest(req),)
            ).fetchone()
            if row is not None:
                ans = open_signed(bytes(row[0]), CommitteeGrades, lambda m: cparams.combiner_key)
                out |= set(ans.excluded)
        return out
    finally:
        conn.close()


def _combiner_spent(
    root: Path, per_release: Fraction, n_subjects: int
) -> tuple[ApproxDP, Fraction]:
    """God view: the largest loss a subject spent, from the combiner's budget ledger, and
    each subject's budget (the key holder's ``budget_releases`` releases)."""
    from psc.dp.budget import BudgetLedger

    conn = sqlite3.connect(f"file:{root / 'key_holder' / 'committee.sqlite'}?mode=ro", uri=True)
    try:
        ledger = BudgetLedger(conn, default_budget=None)
        spent = [ledger.spent(subject_key(s)) for s in range(n_subjects)]
    finally:
        conn.close()
    worst = max(spent, key=lambda x: x.epsilon if isinstance(x, ApproxDP) else 0)
    assert isinstance(worst, ApproxDP)
    releases = load_config(root / "key_holder.toml").budget_releases
    return worst, releases * per_release


def _he_fields(
    result: RunResult, city: City, he: HeAcrossProcesses, comparison: OracleComparison
) -> None:
    """``reveal="he"``: check the CKKS grades the authority's process answered against the
    oracle and the Paillier run's, as the single-process driver does
    (:func:`~psc.sim.god_view.fill_he_result`)."""
    from psc.hazmat.he.circuit import GradingCircuit

    seen = [
        f"{inst.id}: the public context and its own records; its submissions encrypted and "
        "signed with its key file by the simulation (the agency process holds no CKKS code)"
        for inst in city.agencies
    ]
    run = HeRun(
        grades=list(he.answers),
        requests=list(he.asked),
        score_submissions=he.score_submissions,
        cap_submissions=he.submissions - he.score_submissions,
        submission_bytes=he.bytes_sent,
        context_bytes=he.context_bytes,
        seconds=dict(he.seconds),
        per_agency=seen,
        where="its own process",
    )
    fill_he_result(result, city.catalog, GradingCircuit.for_catalog(city.catalog), run, comparison)


def _catalog_name(catalog: Catalog) -> str:
    """What each party's config names the catalog by: a built-in name or an absolute file
    path (each party loads it itself).  Raises ``ValueError`` for an in-memory catalog."""
    source = str(catalog.source)
    if source.startswith("builtin:"):
        return source.removeprefix("builtin:")
    path = Path(source)
    if not path.is_file():
        raise ValueError(
            f"the catalog {source!r} is not a file: across processes each party loads the "
            "catalog itself; write it to a TOML file (or run --in-process)"
        )
    return str(path.resolve())
