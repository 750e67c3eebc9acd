"""The reference driver: one deployment, several scoring periods, end to end.

Readable first: each phase below is a comment and a few calls on the role objects of
:mod:`psc.protocol.roles`; every message is sealed by its sender, travels as bytes and is
opened (decoded, verified) by its receiver.  The parties live in one process here (separate
processes are a later issue); nothing but bytes passes between them.

Phases (timed separately, see :class:`RunResult`):

``setup``       keys, subject enrolment, public parameters, registrations
``precompute``  agencies precompute Paillier randomness (offline work, parallel)
``submit``      agencies encrypt, commit and sign each period's envelope
``ingest``      the aggregator verifies, logs and accumulates each envelope
``reveal``      every subject's grade (through the registry) and one relying party's
``access``      sampled subjects fetch their events with proofs and recompute their grade
``audit``       the log is verified end to end; grades are compared with the oracle
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing as mp
import os
import random
import secrets
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from gmpy2 import mpz

from psc.backends.paillier import RandomnessPool
from psc.catalog import Catalog, period_label, period_start
from psc.dp.accounting import ApproxDP
from psc.events import Event, IntArray
from psc.ledger import SQLiteLedger
from psc.oracle import cap_indices, score
from psc.packing import SlotLayout
from psc.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    _keypair_from_primes,
    generate_keypair,
)
from psc.protocol.committee import (
    CommitteeMember,
    CommitteeParameters,
    CommitteeRevealer,
    KeyCommittee,
    LocalLink,
    MemberLink,
    MemberProcess,
    RevealPolicy,
    expected_misgrade_rate,
    open_committee_store,
    parallel,
    reveal_layout,
    subject_key,
)
from psc.protocol.roles import (
    SELF_ACCESS_PURPOSE,
    Agency,
    Aggregator,
    ConsentVerifier,
    KeyHolder,
    ProtocolParameters,
    Registry,
    RelyingParty,
    Revealer,
    Subject,
    TrustedDecryptor,
    read_grades,
)
from psc.protocol.signing import new_signing_key, public_bytes
from psc.simulation import AgencyInstance, City
from psc.threshold import KeyShare, ThresholdPublicKey, deal
from psc.translog import verify_log


@dataclass
class RunResult:
    """What one driver run measured and checked."""

    subjects: int
    agencies: int
    periods: int
    evaluation_period: str  # YYYY-MM the grades are for
    key_bits: int
    slot_bits: int
    slots_per_ciphertext: int
    events: int
    grades: dict[str, int]  # revealed grade histogram, lowest band first
    oracle_grades: dict[str, int]  # the oracle's, for comparison
    grades_match_oracle: bool
    mismatches: int
    phase_seconds: dict[str, float]
    bytes_submitted: int
    bytes_by_message: dict[str, int]
    ciphertext_blocks: int
    log_size: int
    envelopes: int
    relying_party_grade: str
    access_checked: int  # subjects whose access answers were verified
    access_consistent: int  # of those, whose recomputed grade equals the revealed one
    log_verified: bool
    log_public_key: str  # the aggregator's Ed25519 key, hex: what `psc log verify` needs
    notes: list[str] = field(default_factory=list)
    # -- the reveal (issue 4): "trusted" (one key holder) or "committee" (k-of-n, DP)
    reveal: str = "trusted"
    committee_k: int | None = None  # decryption threshold
    committee_n: int | None = None  # members
    committee_honest: int | None = None  # members assumed honest (h): noise calibration
    mechanism: str | None = None  # e.g. "distributed-discrete-laplace"
    epsilon_per_release: str | None = None  # per subject and period, exact
    epsilon_spent: float | None = None  # largest per-subject epsilon spent in this run
    delta_spent: float | None = None  # its delta (tail truncation of the noise shares)
    budget_epsilon: float | None = None  # each subject's budget
    misgrade_rate: float = 0.0  # revealed grades differing from the oracle's
    expected_misgrade_rate: float = 0.0  # what the noise distribution predicts
    excluded_members: list[int] = field(default_factory=list)
    ok: bool = True  # every check passed (trusted: exact grades; committee: see notes)


class SimClock:
    """A clock that only moves forward when the driver says so (periods pass instantly)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance_to(self, when: dt.datetime) -> None:
        self.now = max(self.now, when)

    def ms(self) -> int:
        return int(self.now.timestamp() * 1000)


class PrecomputedPool(RandomnessPool):
    """A randomness pool filled from randomizers computed elsewhere (worker processes)."""

    def __init__(self, public_key: PaillierPublicKey, values: list[int]) -> None:
        super().__init__(public_key)
        self._ahead = [mpz(v) for v in values]
        self.made_ahead = len(values)

    def __len__(self) -> int:
        return len(self._ahead) + super().__len__()

    def take(self) -> mpz:
        if self._ahead:
            self.taken += 1
            return self._ahead.pop()
        return super().take()


def seeded_randbytes(seed: str) -> Callable[[int], bytes]:
    """A deterministic ``randbytes`` (SHAKE-256 of the seed and a counter): test vectors only.

    Never use it for anything real: every "random" value it gives is public given the seed.
    """
    counter = 0

    def randbytes(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(f"{seed}/{counter}".encode()).digest(n)

    return randbytes


def _randomizers(n: int, count: int) -> list[int]:
    """Worker: ``count`` fresh ``r^n mod n^2`` from the OS CSPRNG."""
    pk = PaillierPublicKey(mpz(n))
    return [int(pk.random_rn(secrets.randbelow)) for _ in range(count)]


def precompute(public_key: PaillierPublicKey, counts: list[int], workers: int) -> list[list[int]]:
    """Randomizers for several agencies, spread over ``workers`` processes."""
    total = sum(counts)
    if total == 0:
        return [[] for _ in counts]
    if workers <= 1:
        flat = _randomizers(int(public_key.n), total)
    else:
        chunk = -(-total // (workers * 4))
        sizes = [min(chunk, total - i) for i in range(0, total, chunk)]
        with ProcessPoolExecutor(max_workers=workers) as ex:
            parts = ex.map(_randomizers, [int(public_key.n)] * len(sizes), sizes)
            flat = [v for part in parts for v in part]
    out, i = [], 0
    for c in counts:
        out.append(flat[i : i + c])
        i += c
    return out


def demo_keypair(bits: int, seed: int = 0) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """A Paillier keypair: fresh from the CSPRNG at ``bits >= 2048``; below that an
    *insecure* one from seeded primes (tests and quick demos only)."""
    if bits >= MIN_KEY_BITS:
        return generate_keypair(bits)
    rnd = random.Random(f"psc-demo-key/{bits}/{seed}")
    half = bits // 2
    while True:
        p = int(gmpy2.next_prime(rnd.getrandbits(half) | (1 << (half - 1))))
        q = int(gmpy2.next_prime(rnd.getrandbits(half) | (1 << (half - 1))))
        if p != q and (p * q).bit_length() == bits:
            return _keypair_from_primes(p, q, allow_insecure=True)


@dataclass
class Deployment:
    """Every party of one deployment after setup, wired to one clock (see :func:`setup`)."""

    params: ProtocolParameters
    sealed_params: bytes
    registry: Registry
    aggregator: Aggregator
    key_holder: KeyHolder
    agencies: list[Agency]
    registrations: list[bytes]  # registry-signed agency registrations, in agency order
    bank: RelyingParty  # a relying party registered for bank_purpose
    bank_purpose: str  # the catalog's first purpose other than subject self-access
    bank_registration: bytes
    ledger: SQLiteLedger
    slots: dict[str, int]  # identity -> slot (the registry's secret)
    slot_of: IntArray  # population index -> slot (for the simulation only)
    aggregator_public_key: Ed25519PublicKey
    sent: list[tuple[str, bytes]]  # setup messages, for byte counts


def setup(
    catalog: Catalog,
    agencies: Sequence[AgencyInstance],
    n_subjects: int,
    keypair: tuple[PaillierPublicKey, PaillierPrivateKey | None],
    *,
    clock: Callable[[], dt.datetime],
    ledger_path: str | Path = ":memory:",
    randbytes: Callable[[int], bytes] = os.urandom,
    clock_ms: Callable[[], int] | None = None,
    registry_cls: type[Registry] = Registry,
    agency_cls: type[Agency] = Agency,
    aggregator_cls: type[Aggregator] = Aggregator,
    consent: Callable[[ProtocolParameters], ConsentVerifier] | None = None,
    revealer: Callable[[ProtocolParameters, Ed25519PrivateKey], Revealer] | None = None,
    layout: SlotLayout | None = None,
) -> Deployment:
    """Phase 1 of the driver (also used by tests and the vector generator).

    Identities are ``resident-0000000`` ... in population order.  All keys, nonces, salts and
    slot permutations come from ``randbytes``; times from ``clock``.  The ``*_cls`` hooks
    take role subclasses (the rights workflows' :mod:`psc.protocol.rights_flow`), and
    ``consent`` makes the key holder's consent gate from the parameters (e.g. a
    :class:`psc.protocol.consent_gate.TokenConsentVerifier`; default: no tokens).
    ``revealer`` makes the key holder's reveal step from the parameters and a fresh
    signing key (the committee's combiner key); default: :class:`TrustedDecryptor` with
    the keypair's private key.  ``layout`` widens the slots (the committee's headroom).
    """
    pk, sk = keypair
    sent: list[tuple[str, bytes]] = []
    multiplicity = max((a.instances for a in agencies), default=1)
    registry = registry_cls(catalog, new_signing_key(randbytes), clock=clock, randbytes=randbytes)
    idents = [f"resident-{i:07d}" for i in range(n_subjects)]
    slots = registry.enroll(idents)
    slot_of = np.array([slots[i] for i in idents], dtype=np.int64)
    agg_key, kh_key = new_signing_key(randbytes), new_signing_key(randbytes)
    params, sealed_params = registry.publish(
        pk,
        multiplicity=multiplicity,
        aggregator_key=public_bytes(agg_key),
        key_holder_key=public_bytes(kh_key),
        allow_insecure_key=pk.bits < MIN_KEY_BITS,
        layout=layout,
    )
    sent.append(("public-parameters", sealed_params))
    ms = clock_ms if clock_ms is not None else (lambda: int(clock().timestamp() * 1000))
    ledger = SQLiteLedger(ledger_path, signer=agg_key, clock_ms=ms)
    aggregator = aggregator_cls(params, ledger, agg_key, clock=clock)
    gate = consent(params) if consent is not None else None
    if revealer is not None:
        reveal_step: Revealer = revealer(params, new_signing_key(randbytes))
    elif sk is not None:
        reveal_step = TrustedDecryptor(params, sk)
    else:
        raise ValueError("setup needs the private key or a revealer")
    key_holder = KeyHolder(params, reveal_step, kh_key, consent=gate, clock=clock)
    parties: list[Agency] = []
    registrations: list[bytes] = []
    for inst in agencies:
        agency = agency_cls(
            inst.id,
            inst.catalog_agency,
            params,
            new_signing_key(randbytes),
            clock=clock,
            randbytes=randbytes,
        )
        reg = registry.register_agency(
            inst.id, inst.catalog_agency, agency.public_key, multiplicity=multiplicity
        )
        sent.append(("agency-registration", reg))
        aggregator.register_agency(reg)
        registrations.append(reg)
        parties.append(agency)
    bank = RelyingParty(
        "example-bank", params, new_signing_key(randbytes), clock=clock, randbytes=randbytes
    )
    purpose = next(p for p in catalog.scheme.purposes if p != SELF_ACCESS_PURPOSE)
    rp_reg = registry.register_relying_party(bank.id, [purpose], bank.public_key)
    sent.append(("relying-party-registration", rp_reg))
    aggregator.register_relying_party(rp_reg)
    key_holder.register_relying_party(rp_reg)
    return Deployment(
        params,
        sealed_params,
        registry,
        aggregator,
        key_holder,
        parties,
        registrations,
        bank,
        purpose,
        rp_reg,
        ledger,
        slots,
        slot_of,
        agg_key.public_key(),
        sent,
    )


@dataclass
class CommitteeSetup:
    """The k-of-n key committee of a ``reveal="committee"`` run: dealt at setup, wired into
    the key holder as its :class:`~psc.protocol.committee.CommitteeRevealer`.

    The dealer's key (``deal``) and each member's key share stay inside; members run in
    their own processes when ``workers > 1`` (:class:`~psc.protocol.committee.MemberProcess`)
    and the combiner checks share proofs in a worker pool.  :meth:`close` ends them.
    """

    public: ThresholdPublicKey
    key_shares: list[KeyShare]
    policy: RevealPolicy
    store: sqlite3.Connection
    budget: ApproxDP
    workers: int
    randbytes: Callable[[int], bytes]
    links: list[MemberLink] = field(default_factory=list)
    committee: KeyCommittee | None = None
    revealer: CommitteeRevealer | None = None
    pool: ProcessPoolExecutor | None = None

    def make(self, params: ProtocolParameters, combiner_key: Ed25519PrivateKey) -> Revealer:
        """The key holder's reveal step (``setup(..., revealer=...)``)."""
        keys = [new_signing_key(self.randbytes) for _ in self.key_shares]
        cparams = CommitteeParameters(
            params.catalog,
            self.public,
            params.layout,
            params.multiplicity,
            self.policy,
            tuple(public_bytes(k) for k in keys),
            public_bytes(combiner_key),
            allow_insecure_key=params.allow_insecure_key,
        )
        members = [
            CommitteeMember(cparams, s, k) for s, k in zip(self.key_shares, keys, strict=True)
        ]
        if self.workers > 1:
            self.links = [MemberProcess(m) for m in members]
            self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("fork"))
            self.committee = KeyCommittee(
                cparams,
                combiner_key,
                self.links,
                self.store,
                budget=self.budget,
                map_members=parallel,
                verify_pool=self.pool,
            )
        else:
            self.links = [LocalLink(m) for m in members]
            self.committee = KeyCommittee(
                cparams, combiner_key, self.links, self.store, budget=self.budget
            )
        self.revealer = CommitteeRevealer(self.committee)
        return self.revealer

    def prepare(self, noise_shares: int, randomizers: int) -> None:
        """Members, offline: draw noise shares and encryption randomizers ahead of time."""
        for link in self.links:
            if isinstance(link, LocalLink):
                link.member.prepare(noise_shares, randomizers)
        procs = [link for link in self.links if isinstance(link, MemberProcess)]
        parallel(lambda link: str(_prepare(link, noise_shares, randomizers)).encode(), procs)

    def close(self) -> None:
        for link in self.links:
            if isinstance(link, MemberProcess):
                link.close()
        if self.pool is not None:
            self.pool.shutdown()
        self.store.close()


def _prepare(link: MemberLink, noise_shares: int, randomizers: int) -> int:
    assert isinstance(link, MemberProcess)
    return link.prepare(noise_shares, randomizers)


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
) -> RunResult:
    """Run every phase for ``city`` and check the grades against the oracle.

    ``keypair`` overrides key generation (tests pass small fixed keys).  Keys below 2048
    bits are accepted here only because this is a demo; the secure default is 3072.

    ``reveal="committee"``: a trusted dealer deals a ``committee = (k, n)`` threshold key
    instead (``keypair`` is then not used) and the key holder reveals through the
    committee's DP grade reveal (``epsilon`` per subject and period, ``honest = k``, each
    subject's budget 12 releases; the committee's store at ``committee_path``).  Grades
    are then noisy: the run is ``ok`` when the protocol checks pass and the misgrade rate
    agrees with what the noise predicts (within 5 standard errors).
    """
    if reveal not in ("trusted", "committee"):
        raise ValueError(f"reveal must be 'trusted' or 'committee', got {reveal!r}")
    phases: defaultdict[str, float] = defaultdict(float)
    wire: Counter[str] = Counter()

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
            budget = ApproxDP(12 * Fraction(epsilon), Fraction(1, 10**9))
            cs = CommitteeSetup(tpk, key_shares, policy, store, budget, workers, randbytes)
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
        counts = [a.ciphertexts_per_submission() * len(city.periods) for a in agencies]
        for a, values in zip(agencies, precompute(pk, counts, workers), strict=True):
            a.use_pool(PrecomputedPool(pk, values))
        if cs is not None:  # members draw noise shares and randomizers ahead of time
            n_labels = 1 + len(catalog.cap_labels())
            cs.prepare(city.n_subjects + 1, (params.layout.blocks(city.n_subjects) + 1) * n_labels)

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
        rp_request = bank.request_grade(int(slot_of[0]), d.bank_purpose, last)
        rp_grade = bank.read_grade(rp_request, reveal_one(rp_request))

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
    checked = consistent = 0
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
            consistent += grade == revealed[slot]

    # -- Phase 7, audit: anyone with the aggregator's public key verifies the whole log;
    #    the revealed grades are compared with the plaintext oracle.
    with phase("audit"):
        report = verify_log(ledger.connection, d.aggregator_public_key)
        oracle = score(table, last)
        labels = catalog.labels
        got = np.array([labels.index(revealed[s]) for s in range(city.n_subjects)])
        mismatches = int(np.count_nonzero(got != oracle.grade))
        rp_ok = rp_grade == labels[int(oracle.grade[int(slot_of[0])])]

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
    )
    result.ok = result.grades_match_oracle
    result.misgrade_rate = mismatches / city.n_subjects
    if cs is not None:
        _committee_result(
            result, cs, oracle.raw, cap_indices(table, last), oracle.grade.astype(np.int64)
        )
        result.ok = (
            result.log_verified
            and checked == len(pick)
            and rp_grade == revealed[int(slot_of[0])]  # the repeat got the stored grade
            and abs(result.misgrade_rate - result.expected_misgrade_rate)
            <= 5 * (result.expected_misgrade_rate / city.n_subjects) ** 0.5 + 1 / city.n_subjects
        )
        cs.close()
    ledger.close()
    return result


def _committee_result(
    result: RunResult, cs: CommitteeSetup, raw: IntArray, cap: IntArray, oracle: IntArray
) -> None:
    """Fill in what the committee reveal spent and how accurate it was."""
    assert cs.committee is not None and cs.revealer is not None
    p = cs.committee.params
    spent = [cs.committee.budget.spent(subject_key(s)) for s in range(result.subjects)]
    worst = max(spent, key=lambda x: x.epsilon if isinstance(x, ApproxDP) else 0)
    assert isinstance(worst, ApproxDP)
    excluded: set[int] = set()
    last = cs.revealer.last
    if last is not None:
        excluded |= set(last.excluded)
    result.reveal = "committee"
    result.committee_k, result.committee_n = p.k, p.n
    result.committee_honest = p.policy.honest
    result.mechanism = "distributed-discrete-laplace"
    eps = p.policy.epsilon
    result.epsilon_per_release = (
        f"{eps.numerator}/{eps.denominator}" if eps.denominator > 1 else str(eps)
    )
    result.epsilon_spent = float(worst.epsilon)
    result.delta_spent = float(worst.delta)
    budget = cs.budget
    result.budget_epsilon = float(budget.epsilon)
    result.expected_misgrade_rate = expected_misgrade_rate(p, raw, cap, oracle)
    result.excluded_members = sorted(excluded)
    result.notes.append(
        f"grades revealed by a {p.k}-of-{p.n} key committee with distributed discrete Laplace "
        f"noise (epsilon {result.epsilon_per_release} per subject and period, honest = "
        f"{p.policy.honest}): noisy by design, so the run is judged by the misgrade rate "
        f"({result.misgrade_rate:.4f}) against the noise's prediction "
        f"({result.expected_misgrade_rate:.4f}); cap counters are revealed exactly"
    )
