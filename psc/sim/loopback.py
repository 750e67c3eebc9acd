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
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt

from psc.dp.accounting import ApproxDP
from psc.events import Event, IntArray
from psc.hazmat.paillier import MIN_KEY_BITS, PaillierPrivateKey, PaillierPublicKey
from psc.hazmat.threshold.dealer import deal
from psc.parties.agency_desk import RecordStore
from psc.parties.committee import CommitteeParameters, expected_misgrade_rate, subject_key
from psc.parties.relying_party import read_grades
from psc.parties.subject import Subject
from psc.protocol import codec
from psc.protocol.committee_messages import CommitteeGrades
from psc.protocol.messages import IngestReceipt
from psc.protocol.service_messages import AccessAsk, GradeAsk, SubmitPeriod
from psc.protocol.signing import open_signed
from psc.service.client import HttpAggregator, HttpPeer
from psc.service.deploy import load_committee, load_config, write_deployment
from psc.service.desks import PEER_TIMEOUT
from psc.service.processes import Parties, Party
from psc.sim.city import City
from psc.sim.committee_fields import fill_committee_fields
from psc.sim.results import RunResult
from psc.sim.sources import demo_keypair

#: Progress lines (phase names and counts), e.g. ``print`` to stderr; ``None``: quiet.
Progress = Callable[[str], None] | None


@dataclass
class Observed:
    """What the clients of a run across processes got back, and what the god view read
    from the parties' files after stopping them (committee runs)."""

    revealed: dict[int, str]  # slot -> revealed grade label (every subject)
    relying_party_grade: str
    access: dict[int, list[Event]]  # sampled slot -> its verified events
    envelopes: int
    bytes_by_message: Counter[str]
    urls: dict[str, str]
    excluded: set[int] = field(default_factory=set)  # members the combiner excluded
    worst: ApproxDP | None = None  # the largest loss a subject spent
    budget_epsilon: Fraction = Fraction(0)  # each subject's budget
    phase_seconds: dict[str, float] = field(default_factory=dict)


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
    _dealt: object = None,
) -> tuple[Observed, Path, object]:
    """Run ``city``'s periods with every party in its own process (see the module doc).

    ``city`` must end no later than last month (the parties keep real time).
    ``directory`` must be new or empty: the deployment is written there.  ``reveal``:
    ``"committee"`` (a dealt ``committee = (k, n)`` key, DP grades, ``epsilon`` per
    subject and period) or ``"trusted"`` (one key holder; ``keypair`` overrides the key).
    Returns what the clients observed, the deployment directory and the setup
    (:class:`~psc.sim.deployment.Deployment`).
    """
    if reveal not in ("committee", "trusted"):
        raise ValueError(f"across processes, reveal is 'committee' or 'trusted', not {reveal!r}")
    say = progress or (lambda _line: None)
    phases: defaultdict[str, float] = defaultdict(float)
    wire: Counter[str] = Counter()

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if name not in phases:
            say(f"{name} ...")
        try:
            yield
        finally:
            phases[name] += time.perf_counter() - t0

    cat = city.catalog
    first, last = city.periods[0], city.periods[-1]
    root = Path(directory)

    # -- setup: keys, enrolment, parameters, registrations; files; every party's process
    with phase("setup"):
        dealt = None
        pk: PaillierPublicKey
        sk: PaillierPrivateKey | None
        if reveal == "committee":
            k, n = committee
            dealt = deal(k, n, bits=key_bits, allow_insecure=key_bits < MIN_KEY_BITS)
            pk, sk = dealt[0].public, None
        else:
            pk, sk = keypair if keypair is not None else demo_keypair(key_bits)
        root, d = write_deployment(
            root,
            catalog=cat,
            catalog_name=str(cat.source).removeprefix("builtin:"),
            subjects=city.n_subjects,
            keypair=(pk, sk),
            committee=dealt,
            epsilon=epsilon,
            agencies=city.agencies,
            noise_witness=Path("simulation") / "noise" if dealt is not None else None,
        )
        slot_of = d.slot_of
        for inst, agency in zip(city.agencies, d.agencies, strict=True):  # back offices
            RecordStore.write(
                root / "agencies" / agency.id / "records.sqlite",
                (
                    Event(int(slot_of[e.subject]), e.rule, e.date, e.evidence)
                    for p in city.periods
                    for e in city.events[inst.id][p]
                ),
            )
    with Parties() as parties:
        with phase("setup"):
            urls = _start_all(parties, root, [a.id for a in d.agencies], dealt is not None, say)
        peers = {name: HttpPeer(url, timeout=PEER_TIMEOUT) for name, url in urls.items()}

        def call(name: str, kind: str, path: str, body: bytes) -> bytes:
            wire[kind] += len(body)
            out = peers[name].post(path, body)
            wire[f"{kind}-answer"] += len(out)
            return out

        # -- submit: each period, every agency process submits to the aggregator process
        receipts: list[IngestReceipt] = []
        with phase("submit"), ThreadPoolExecutor(max_workers=len(d.agencies)) as pool:
            for p in city.periods:
                ask = codec.encode(SubmitPeriod(p))
                sealed = pool.map(
                    lambda a, body=ask: call(a.id, "submit-period", "/v1/period-submissions", body),
                    d.agencies,
                )
                for data in sealed:
                    receipts.append(
                        open_signed(data, IngestReceipt, lambda m: d.params.aggregator_key)
                    )
                say(f"  period {p}: {len(d.agencies)} envelopes logged")

        # -- reveal: every resident through the registry, then the bank's one request
        with phase("reveal"):
            idents = tuple(identity(i) for i in range(city.n_subjects))
            request = call("registry", "grade-ask", "/v1/grade-asks", _ask(idents, last))
            response = call("key-holder", "grade-request", "/v1/grade-requests", request)
            revealed = read_grades(d.params, request, response)
            rp_request = d.bank.request_grade(int(slot_of[0]), d.bank_purpose, last)
            rp_response = call("key-holder", "grade-request", "/v1/grade-requests", rp_request)
            rp_grade = d.bank.read_grade(rp_request, rp_response)

        # -- access: sampled residents, their events from every agency process, checked
        #    against inclusions from the aggregator process
        with phase("access"):
            aggregator = HttpAggregator(peers["aggregator"])
            inclusions = {
                r.envelope_hash: aggregator.log_inclusion(r.envelope_hash) for r in receipts
            }
            access: dict[int, list[Event]] = {}
            for index in access_pick(city, slot_of, access_sample):
                slot = int(slot_of[index])
                subject = Subject(slot, d.params)
                for reg in d.registrations:
                    subject.learn_agency(reg)
                ask = codec.encode(AccessAsk(identity(index), first, last))
                events: list[Event] = []
                for agency in d.agencies:
                    req = call("registry", "access-ask", "/v1/access-asks", ask)
                    resp = call(agency.id, "access-request", "/v1/access-requests", req)
                    events += subject.verify_access(req, resp, inclusions)
                access[slot] = events
        for client in peers.values():
            client.close()
        with phase("audit"):
            parties.stop_all()
    observed = Observed(
        revealed, rp_grade, access, len(receipts), wire, urls, phase_seconds=dict(phases)
    )
    if dealt is not None:
        _read_combiner(root, d.params, observed, [request, rp_request], city.n_subjects)
    return observed, root, d


def _ask(identities: tuple[str, ...], period: int) -> bytes:
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


def access_pick(city: City, slot_of: IntArray, sample: int) -> npt.NDArray[np.int64]:
    """Residents (population indices) whose access the run checks: mostly ones with events,
    a fifth without (the same draw as the single-process driver, seeded by the city)."""
    rng = np.random.default_rng(city.seed + 1)
    table = city.table()
    with_events = np.unique(table.subject)
    without = np.setdiff1d(np.arange(city.n_subjects), with_events)
    n_without = min(without.size, sample // 5)
    return np.concatenate(
        [
            rng.choice(with_events, size=min(sample - n_without, with_events.size), replace=False),
            rng.choice(without, size=n_without, replace=False),
        ]
    ).astype(np.int64)


def _read_combiner(
    root: Path, params: object, observed: Observed, requests: list[bytes], n_subjects: int
) -> None:
    """God view, after the run: which members the combiner excluded from the answers to
    ``requests``, and each subject's spent epsilon, from the combiner's store."""
    from psc.dp.budget import BudgetLedger
    from psc.protocol.parameters import ProtocolParameters
    from psc.protocol.signing import digest

    assert isinstance(params, ProtocolParameters)
    cparams = load_committee(root, params)
    conn = sqlite3.connect(root / "key_holder" / "committee.sqlite")
    try:
        for req in requests:
            row = conn.execute(
                "SELECT answer FROM committee_answers WHERE request_hash = ?", (digest(req),)
            ).fetchone()
            if row is not None:
                ans = open_signed(bytes(row[0]), CommitteeGrades, lambda m: cparams.combiner_key)
                observed.excluded |= set(ans.excluded)
        ledger = BudgetLedger(conn, default_budget=None)
        spent = [ledger.spent(subject_key(s)) for s in range(n_subjects)]
        worst = max(spent, key=lambda x: x.epsilon if isinstance(x, ApproxDP) else 0)
        assert isinstance(worst, ApproxDP)
        observed.worst = worst
        releases = load_config(root / "key_holder.toml").budget_releases
        observed.budget_epsilon = releases * cparams.epsilon
    finally:
        conn.close()


def recent_first_period(periods: int, today: dt.date | None = None) -> int:
    """The first of ``periods`` months ending last month (what a live aggregator accepts)."""
    from psc.catalog import period_index

    now = period_index(today or dt.datetime.now(dt.UTC).date())
    return now - periods


def processes_result(city: City, observed: Observed, root: Path, setup: object) -> RunResult:
    """The audit of a run across processes: the same checks as the single-process driver.

    The log file is verified with the aggregator's public key alone; every revealed grade
    is compared with its expected grade: the noiseless oracle's (trusted), or the
    oracle's grade of the raw score plus the noise the members drew (committee; the god
    view reads the members' noise from ``DIR/simulation/noise``: the members whose noise
    the combiner added are taken as all but those it excluded, so a member excluded only
    for its decryption share makes the check fail, never pass wrongly).
    """
    from psc.catalog import period_label
    from psc.ledger.log_verify import verify_log
    from psc.oracle import cap_counts, caps_from_counts, grades_of, score
    from psc.sim.deployment import Deployment, SimulationNoiseWitness
    from psc.sim.god_view import _noisy_grade

    assert isinstance(setup, Deployment)
    d, cat, last = setup, city.catalog, city.periods[-1]
    t0 = time.perf_counter()
    report = verify_log(root / "aggregator" / "ledger.sqlite", d.aggregator_public_key)
    envelope_bytes = _envelope_bytes(root)
    table = city.table(d.slot_of)
    oracle = score(table, last)
    labels = cat.labels
    n = city.n_subjects
    committee = (root / "committee.json").exists()
    noise: IntArray = np.zeros(n, dtype=np.int64)
    cap_noise = {label: np.zeros(n, dtype=np.int64) for label in cat.cap_labels()}
    witnessed: npt.NDArray[np.bool_] = np.ones(n, dtype=bool)
    live_counts = cap_counts(table, last)
    expected = oracle.grade.astype(np.int64)
    if committee:
        cparams = load_committee(root, d.params)
        added = [i for i in range(1, cparams.n + 1) if i not in observed.excluded]
        witness = SimulationNoiseWitness(root / "simulation" / "noise")
        noise[:], witnessed = witness.totals(last, added, n)
        for label in cat.cap_labels():
            cap_noise[label], ok = witness.totals(last, added, n, label)
            witnessed &= ok
        noisy = {label: c + cap_noise[label] for label, c in live_counts.items()}
        expected = grades_of(cat, oracle.raw + noise, caps_from_counts(cat, noisy, n)).astype(
            np.int64
        )
    got = np.array([labels.index(observed.revealed[s]) for s in range(n)])
    mismatches = int(np.count_nonzero((got != expected) | ~witnessed))
    rp_slot = int(d.slot_of[0])
    rp_ok = observed.relying_party_grade == labels[int(expected[rp_slot])] and bool(
        witnessed[rp_slot]
    )
    consistent = noiseless = 0
    for slot, events in observed.access.items():
        own = _noisy_grade(cat, events, last, 0, {})
        noiseless += own == observed.revealed[slot]
        if committee:
            cn = {label: int(v[slot]) for label, v in cap_noise.items()}
            own = _noisy_grade(cat, events, last, int(noise[slot]), cn)
            consistent += bool(witnessed[slot]) and own == observed.revealed[slot]
        else:
            consistent += own == observed.revealed[slot]
    hist = Counter(observed.revealed.values())
    phases = dict(observed.phase_seconds)
    phases["audit"] = phases.get("audit", 0.0) + time.perf_counter() - t0
    pk = d.params.public_key
    result = RunResult(
        subjects=n,
        agencies=len(d.agencies),
        periods=len(city.periods),
        evaluation_period=period_label(last),
        key_bits=pk.bits,
        slot_bits=d.params.layout.slot_bits,
        slots_per_ciphertext=d.params.layout.slots,
        events=city.n_events,
        grades={lab: hist.get(lab, 0) for lab in labels},
        oracle_grades=oracle.histogram(cat),
        grades_match_oracle=mismatches == 0 and rp_ok and consistent == len(observed.access),
        mismatches=mismatches,
        phase_seconds={k: round(v, 3) for k, v in phases.items()},
        bytes_submitted=envelope_bytes,
        bytes_by_message=dict(observed.bytes_by_message) | {"submission": envelope_bytes},
        ciphertext_blocks=sum(a.ciphertexts_per_submission() for a in d.agencies)
        * len(city.periods),
        log_size=report.size,
        envelopes=observed.envelopes,
        relying_party_grade=observed.relying_party_grade,
        access_checked=len(observed.access),
        access_consistent=consistent,
        log_verified=report.unsigned_leaves == 0,
        log_public_key=d.params.aggregator_key.hex(),
        access_noiseless_consistent=noiseless,
        misgrade_rate_vs_noiseless_oracle=int(np.count_nonzero(got != oracle.grade)) / n,
    )
    result.processes = dict(observed.urls)
    if pk.bits < MIN_KEY_BITS:
        result.notes.append(f"{pk.bits}-bit Paillier key: INSECURE, for tests and quick demos only")
    result.ok = result.grades_match_oracle and result.log_verified
    if committee:
        _committee_fields(
            result, cparams, observed, oracle.raw, live_counts, oracle.grade.astype(np.int64)
        )
        result.noise_witnessed = int(np.count_nonzero(witnessed))
        rate, want = result.misgrade_rate_vs_noiseless_oracle, result.expected_misgrade_rate
        result.ok = result.ok and abs(rate - want) <= 5 * (want / n) ** 0.5 + 1 / n
    return result


def _committee_fields(
    result: RunResult,
    cparams: CommitteeParameters,
    observed: Observed,
    raw: IntArray,
    counts: Mapping[str, IntArray],
    oracle: IntArray,
) -> None:
    """What the committee spent and how accurate it was (read from the combiner's store)."""
    assert observed.worst is not None
    fill_committee_fields(
        result,
        cparams,
        observed.worst,
        observed.budget_epsilon,
        observed.excluded,
        expected_misgrade_rate(cparams, raw, counts, oracle),
    )


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
