"""The reference driver: one deployment, several scoring periods, end to end.

Readable first: each phase below is a comment and a few calls on the role objects of
:mod:`psc.parties`; every message is sealed by its sender, travels as bytes and is
opened (decoded, verified) by its receiver.  The parties live in one process here (separate
processes are a later issue); nothing but bytes passes between them.

Phases (timed separately, see :class:`~psc.sim.results.RunResult`):

``setup``       keys, subject enrolment, public parameters, registrations
``precompute``  agencies precompute Paillier randomness (offline work, parallel)
``submit``      agencies encrypt, commit and sign each period's envelope
``ingest``      the aggregator verifies, logs and accumulates each envelope
``reveal``      every subject's grade (through the registry) and one relying party's
``access``      sampled subjects fetch their events with proofs and recompute their grade
``audit``       the log is verified end to end; grades are compared with the oracle

With ``reveal="he"`` the same catalog, events and evaluation period are then graded a
second time under CKKS encryption (:mod:`psc.hazmat.he`), in phases ``he-keygen``,
``he-submit``, ``he-ingest`` and ``he-reveal`` (the grading authority's circuit and
decryptions, split into ``grade`` and ``decrypt`` in :class:`~psc.sim.results.HeReveal`).

**The simulation's god view.**  The driver sees every party (it runs them all), so it can
check results no single party could: the plaintext oracle over all events and, in
committee runs, the noise each member actually drew (:class:`~psc.sim.deployment.SimulationNoiseWitness`).
That view is the harness's, never a protocol role's: nothing it learns flows back into a
party or a message.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from psc.hazmat.exact.ring import LatticeParams
    from psc.parties.grading_authority import GradingAuthority

from psc.catalog import period_label, period_start
from psc.dp.accounting import ApproxDP
from psc.events import Event, IntArray
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
)
from psc.hazmat.threshold.dealer import deal
from psc.ledger.log_verify import verify_log
from psc.oracle import cap_counts, caps_from_counts, grades_of, score
from psc.parties.committee import (
    RevealPolicy,
    open_committee_store,
    reveal_layout,
)
from psc.parties.relying_party import read_grades
from psc.parties.subject import Subject
from psc.sim.city import City
from psc.sim.deployment import CommitteeSetup, SimulationNoiseWitness, setup
from psc.sim.god_view import _committee_result, _he_result, _noisy_grade
from psc.sim.results import RunResult
from psc.sim.sources import PrecomputedPool, SimClock, demo_keypair, precompute


def run(
    city: City,
    *,
    key_bits: int = 2048,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey] | None = None,
    ledger_path: str | Path = ":memory:",
    access_sample: int = 25,
    workers: int = 2,
    randbytes: Callable[[int], bytes] = os.urandom,
    reveal: str = "trusted",
    committee: tuple[int, int] = (3, 5),
    epsilon: Fraction = Fraction(1),
    committee_path: str | Path = ":memory:",
    he_authority: GradingAuthority | None = None,
    exact_params: LatticeParams | None = None,
) -> RunResult:
    """Run every phase for ``city`` and check the grades against the oracle.

    ``keypair`` overrides key generation (tests pass small fixed keys).  Keys below 2048
    bits are accepted here only because this is a demo; the secure default is 3072.

    ``reveal="committee"``: a trusted dealer deals a ``committee = (k, n)`` threshold key
    instead (``keypair`` is then not used) and the key holder reveals through the
    committee's DP grade reveal (``epsilon`` per subject and period, ``honest = k``, each
    subject's budget 12 releases; the committee's store at ``committee_path``).  Grades
    are then noisy by design, yet checked exactly: the driver's god view
    (:class:`~psc.sim.deployment.SimulationNoiseWitness`, never a protocol party) records the noise each
    member drew, and every revealed grade must equal the oracle's grade of the subject's
    true raw score plus the total noise drawn for it, with its caps.  The run is ``ok``
    when that holds, the protocol checks pass and the misgrade rate against the noiseless
    oracle agrees with what the noise predicts (within 5 standard errors).

    ``reveal="exact"``: as ``"he"``, then the same events are graded by the dealer-free
    k-of-n BFV committee (:mod:`psc.sim.exact_driver`; ``exact_params``: lattice
    parameters, the city's by default) and compared with the noiseless oracle.

    ``reveal="he"``: the Paillier run reveals through the trusted key holder (exact), then
    the same events are graded under CKKS encryption (:mod:`psc.hazmat.he`; a new
    grading authority, or ``he_authority`` whose keys tests reuse) and both are compared
    with the oracle and with each other.
    """
    if reveal not in ("trusted", "committee", "he", "exact"):
        raise ValueError(f"reveal must be 'trusted', 'committee', 'he' or 'exact', got {reveal!r}")
    phases: defaultdict[str, float] = defaultdict(float)
    wire: Counter[str] = Counter()
    scratch: Path | None = None

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            phases[name] += time.perf_counter() - t0

    def send(kind: str, data: bytes) -> bytes:
        wire[kind] += len(data)
        return data

    catalog = city.catalog
    first, last = city.periods[0], city.periods[-1]
    clock = SimClock(dt.datetime.combine(period_start(first), dt.time(8), dt.UTC))

    # -- Phase 1, setup: the key holder makes the Paillier key; every party makes its
    #    Ed25519 key; the registry enrols subjects (random pseudonymous slots), publishes
    #    the parameters (catalog hash, public key, slot layout sized for the catalog and
    #    the number of agency instances) and signs every registration.
    #    With the committee, a trusted dealer deals the k-of-n key instead (and erases
    #    it); the slots get headroom for the members' noise and masks.
    cs: CommitteeSetup | None = None
    with phase("setup"):
        layout: SlotLayout | None = None
        if reveal == "committee":
            k, n = committee
            tpk, key_shares = deal(k, n, bits=key_bits, allow_insecure=key_bits < MIN_KEY_BITS)
            policy = RevealPolicy(Fraction(epsilon), min(Fraction(1, 4), Fraction(epsilon)), k)
            layout = reveal_layout(
                catalog, key_bits, multiplicity=city.multiplicity, members=n, policy=policy
            )
            store = (
                sqlite3.connect(":memory:", isolation_level=None)
                if str(committee_path) == ":memory:"
                else open_committee_store(str(committee_path))
            )
            assert policy.cap_epsilon is not None
            # twelve releases of score and cap counters
            budget = ApproxDP(12 * (policy.epsilon + policy.cap_epsilon), Fraction(1, 10**9))
            cs = CommitteeSetup(
                tpk, key_shares, policy, store, budget, workers, randbytes, SimulationNoiseWitness()
            )
            if str(committee_path) != ":memory:":  # members' durable release records
                cs.member_dir = Path(committee_path).parent / "committee-members"
                cs.member_dir.mkdir(parents=True, exist_ok=True)
            if workers > 1 and str(ledger_path) == ":memory:":
                # members in their own processes read the public log from the ledger file
                scratch = Path(tempfile.mkdtemp(prefix="psc-ledger-"))
                ledger_path = scratch / "ledger.sqlite"
            pk, sk = tpk.public, None
        else:
            pk, sk = keypair if keypair is not None else demo_keypair(key_bits)
        d = setup(
            catalog,
            city.agencies,
            city.n_subjects,
            (pk, sk),
            clock=clock,
            ledger_path=ledger_path,
            randbytes=randbytes,
            revealer=cs.make if cs is not None else None,
            layout=layout,
        )
        for kind, data in d.sent:
            send(kind, data)
        params, aggregator, key_holder, ledger = d.params, d.aggregator, d.key_holder, d.ledger
        registry, agencies, bank, slot_of = d.registry, d.agencies, d.bank, d.slot_of
        registrations, slots, insecure = d.registrations, d.slots, pk.bits < MIN_KEY_BITS

    # -- Phase 2, precompute: each agency makes the encryption randomizers r^n mod n^2 it
    #    will need, ahead of time and in parallel (the expensive part of Paillier).
    with phase("precompute"):
        # every ciphertext block and every validity-proof commitment takes one randomizer
        counts = [a.randomizers_per_submission() * len(city.periods) for a in agencies]
        for a, values in zip(agencies, precompute(pk, counts, workers), strict=True):
            a.use_pool(PrecomputedPool(pk, values))
        if cs is not None:  # members draw noise shares and randomizers ahead of time
            n_labels = 1 + len(catalog.cap_labels())
            # randomizers: one per share block and one per proof commitment
            units = (params.layout.blocks(city.n_subjects) + 1) * n_labels
            cs.prepare(city.n_subjects + 1, 2 * units)

    # -- Phases 3 and 4, each period: every agency maps its records to dense delta vectors
    #    and cap counters, encrypts them, commits to its events and signs the envelope
    #    (submit); the aggregator verifies each envelope before touching state, then logs
    #    and accumulates it in one transaction and returns a signed receipt (ingest).
    envelopes = 0
    for p in city.periods:
        clock.advance_to(dt.datetime.combine(period_start(p + 1), dt.time(9), dt.UTC))
        for inst, agency in zip(city.agencies, agencies, strict=True):
            evs = [
                Event(int(slot_of[e.subject]), e.rule, e.date, e.evidence)
                for e in city.events[inst.id][p]
            ]
            with phase("submit"):
                envelope = send("submission", agency.submit(evs, p))
            with phase("ingest"):
                receipt = send("ingest-receipt", aggregator.ingest(envelope))
            with phase("submit"):
                agency.accept_receipt(receipt)
            envelopes += 1

    # -- Phase 5, reveal: every subject asks for its own grade through the registry (one
    #    request; the aggregator sends the key holder the blocks it needs; the key holder
    #    decrypts each block once, has the aggregator log a notice of the release (hashes
    #    only), checks that it was logged, and only then gives the grades to the requester:
    #    the aggregator never sees a grade).  Then a bank asks for one subject's grade for a
    #    purpose it registered.
    clock.advance_to(clock.now + dt.timedelta(hours=1))

    def reveal_one(request: bytes) -> bytes:
        send("grade-request", request)
        answer = key_holder.answer(send("reveal-request", aggregator.prepare_reveal(request)))
        logged = aggregator.release(send("reveal-notice", answer.notice))
        key_holder.check_logged(answer, send("log-inclusion", logged))
        return send("grade-response", answer.response)

    with phase("reveal"):
        request = registry.grade_request(range(city.n_subjects), last)
        revealed = read_grades(params, request, reveal_one(request))
        batch = cs.revealer.last if cs is not None and cs.revealer is not None else None
        rp_request = bank.request_grade(int(slot_of[0]), d.bank_purpose, last)
        rp_grade = bank.read_grade(rp_request, reveal_one(rp_request))

    # The god view (not a protocol phase; timed with the audit): in committee runs, the
    # total noise every revealed grade carries, summed over the members whose noise shares
    # the combiner added (all but those excluded for a missing or bad noise share).
    noise: IntArray = np.zeros(city.n_subjects, dtype=np.int64)
    cap_noise: dict[str, IntArray] = {
        label: np.zeros(city.n_subjects, dtype=np.int64) for label in catalog.cap_labels()
    }
    witnessed: npt.NDArray[np.bool_] = np.ones(city.n_subjects, dtype=bool)
    if cs is not None:
        with phase("audit"):
            assert cs.witness is not None and batch is not None
            skipped = {
                i
                for i, why in batch.excluded.items()
                if why.startswith(("no noise share", "bad noise share"))
            }
            added = [i for i in range(1, len(cs.key_shares) + 1) if i not in skipped]
            by_slot, witnessed = cs.witness.totals(last, added, city.n_subjects)
            noise[:] = by_slot
            for label in catalog.cap_labels():
                cap_by_slot, cap_ok = cs.witness.totals(last, added, city.n_subjects, label)
                cap_noise[label] = cap_by_slot
                witnessed &= cap_ok

    # -- Phase 6, subject access: sampled subjects ask every agency (through the registry)
    #    for their events; each answer's inclusion proofs are checked against the
    #    commitment roots the log holds, and the subject recomputes its grade.
    rng = np.random.default_rng(city.seed + 1)
    table = city.table(slot_of)
    with_events = np.unique(table.subject)
    without = np.setdiff1d(np.arange(city.n_subjects), with_events)
    n_without = min(without.size, access_sample // 5)  # a few with nothing to explain
    pick = np.concatenate(
        [
            rng.choice(
                with_events, size=min(access_sample - n_without, with_events.size), replace=False
            ),
            rng.choice(without, size=n_without, replace=False),
        ]
    )
    checked = consistent = noiseless_consistent = 0
    with phase("access"):
        inclusions = {
            rec.envelope_hash: send("log-inclusion", aggregator.log_inclusion(rec.envelope_hash))
            for rec in ledger.envelopes()
        }
        identity_of = {s: ident for ident, s in slots.items()}
        for slot in (int(s) for s in pick):
            subject = Subject(slot, params)
            for reg in registrations:
                subject.learn_agency(reg)
            events = []
            for agency in agencies:
                req = send(
                    "access-request", registry.access_request(identity_of[slot], first, last)
                )
                resp = send("access-response", agency.answer_access(req))
                events += subject.verify_access(req, resp, inclusions)
            _, grade = subject.explain(events, last)
            checked += 1
            noiseless_consistent += grade == revealed[slot]
            if cs is not None:  # god view: the subject's own score + the noise drawn for it
                cn = {label: int(v[slot]) for label, v in cap_noise.items()}
                grade = _noisy_grade(catalog, events, last, int(noise[slot]), cn)
                consistent += bool(witnessed[slot]) and grade == revealed[slot]
            else:
                consistent += grade == revealed[slot]

    # -- Phase 7, audit: anyone with the aggregator's public key verifies the whole log;
    #    the revealed grades are compared with the plaintext oracle (committee: with the
    #    oracle's grade of raw score + the noise drawn, which only the god view knows).
    with phase("audit"):
        report = verify_log(ledger.connection, d.aggregator_public_key)
        oracle = score(table, last)
        labels = catalog.labels
        got = np.array([labels.index(revealed[s]) for s in range(city.n_subjects)])
        expected = oracle.grade.astype(np.int64)
        live_counts = cap_counts(table, last)
        if cs is not None:
            noisy_counts = {label: c + cap_noise[label] for label, c in live_counts.items()}
            noisy_caps = caps_from_counts(catalog, noisy_counts, city.n_subjects)
            expected = grades_of(catalog, oracle.raw + noise, noisy_caps).astype(np.int64)
        mismatches = int(np.count_nonzero((got != expected) | ~witnessed))
        noiseless_mismatches = int(np.count_nonzero(got != oracle.grade))
        rp_slot = int(slot_of[0])
        rp_ok = rp_grade == labels[int(expected[rp_slot])] and bool(witnessed[rp_slot])

    hist = Counter(revealed.values())
    n_blocks = sum(a.ciphertexts_per_submission() for a in agencies) * len(city.periods)
    notes = []
    if insecure:
        notes.append(f"{pk.bits}-bit Paillier key: INSECURE, for tests and quick demos only")
    result = RunResult(
        subjects=city.n_subjects,
        agencies=len(agencies),
        periods=len(city.periods),
        evaluation_period=period_label(last),
        key_bits=pk.bits,
        slot_bits=params.layout.slot_bits,
        slots_per_ciphertext=params.layout.slots,
        events=city.n_events,
        grades={lab: hist.get(lab, 0) for lab in labels},
        oracle_grades=oracle.histogram(catalog),
        grades_match_oracle=mismatches == 0 and rp_ok and consistent == checked,
        mismatches=mismatches,
        phase_seconds={k: round(v, 3) for k, v in phases.items()},
        bytes_submitted=wire["submission"],
        bytes_by_message=dict(wire),
        ciphertext_blocks=n_blocks,
        log_size=report.size,
        envelopes=envelopes,
        relying_party_grade=rp_grade,
        access_checked=checked,
        access_consistent=consistent,
        log_verified=report.size == ledger.log.size and report.unsigned_leaves == 0,
        log_public_key=params.aggregator_key.hex(),
        notes=notes,
        access_noiseless_consistent=noiseless_consistent,
        misgrade_rate_vs_noiseless_oracle=noiseless_mismatches / city.n_subjects,
    )
    result.ok = result.grades_match_oracle and result.log_verified
    if cs is not None:
        assert batch is not None
        _committee_result(result, cs, batch, oracle.raw, live_counts, oracle.grade.astype(np.int64))
        result.noise_witnessed = int(np.count_nonzero(witnessed))
        rate, want = result.misgrade_rate_vs_noiseless_oracle, result.expected_misgrade_rate
        result.ok = (
            result.ok
            and checked == len(pick)
            and rp_grade == revealed[rp_slot]  # the repeat got the stored grade
            and abs(rate - want) <= 5 * (want / city.n_subjects) ** 0.5 + 1 / city.n_subjects
        )
        cs.close()
    ledger.close()
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if reveal == "he":
        _he_result(result, city, slot_of, last, got, oracle.grade, rp_slot, phase, he_authority)
        result.phase_seconds = {k: round(v, 3) for k, v in phases.items()}
    if reveal == "exact":  # issue 10: the dealer-free exact reveal (psc/sim/exact_driver.py)
        from psc.sim.exact_driver import exact_reveal

        exact_reveal(result, city, slot_of, last, oracle.grade, rp_slot, phase, exact_params)
        result.phase_seconds = {k: round(v, 3) for k, v in phases.items()}
    return result
