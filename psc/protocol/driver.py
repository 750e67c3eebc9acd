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

With ``reveal="he"`` the same catalog, events and evaluation period are then graded a
second time under CKKS encryption (:mod:`psc.he_grading`), in phases ``he-keygen``,
``he-submit``, ``he-ingest``, ``he-grade`` and ``he-decrypt``.

**The simulation's god view.**  The driver sees every party (it runs them all), so it can
check results no single party could: the plaintext oracle over all events and, in
committee runs, the noise each member actually drew (:class:`SimulationNoiseWitness`).
That view is the harness's, never a protocol role's: nothing it learns flows back into a
party or a message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing as mp
import os
import random
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import gmpy2
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from gmpy2 import mpz

if TYPE_CHECKING:
    from psc.backends.bfv import TensealCiphertext
    from psc.he_grading import GradingAuthority

from psc.backends.paillier import RandomnessPool
from psc.catalog import Catalog, period_label, period_start
from psc.dp.accounting import ApproxDP
from psc.events import Event, EventTable, IntArray
from psc.ledger import SQLiteLedger
from psc.oracle import cap_indices, grades_of, score
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
    CommitteeReveal,
    CommitteeRevealer,
    KeyCommittee,
    LocalLink,
    MemberLink,
    MemberProcess,
    RevealPolicy,
    expected_misgrade_rate,
    open_committee_store,
    parallel,
    prepare_processes,
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
    grades: dict[str, int]  # revealed grade histogram, lowest band first (he: the CKKS path's)
    oracle_grades: dict[str, int]  # the noiseless oracle's, for comparison
    # exact: every revealed grade equals its expected grade (see grades_compared_with), the
    # relying party's too, and every access answer recomputes to the revealed grade
    grades_match_oracle: bool
    mismatches: int  # revealed grades differing from their expected grade
    phase_seconds: dict[str, float]
    bytes_submitted: int
    bytes_by_message: dict[str, int]
    ciphertext_blocks: int
    log_size: int
    envelopes: int
    relying_party_grade: str
    access_checked: int  # subjects whose access answers were verified
    access_consistent: int  # of those, whose recomputed grade (access_compared_with) equals
    #                         the revealed one
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
    # what each revealed grade is compared with for grades_match_oracle / mismatches
    grades_compared_with: str = "noiseless oracle"
    access_compared_with: str = "the subject's own recomputed grade (noiseless oracle)"
    access_noiseless_consistent: int = 0  # access answers whose noiseless grade = revealed
    misgrade_rate_vs_noiseless_oracle: float = 0.0  # fraction of revealed grades != noiseless
    expected_misgrade_rate: float = 0.0  # what the noise distribution predicts for it
    noise_witnessed: int | None = None  # committee: subjects whose drawn noise was witnessed
    excluded_members: list[int] = field(default_factory=list)
    he: HeReveal | None = None  # reveal="he": the CKKS homomorphic grading run
    ok: bool = True  # every check passed (exact grades; committee: also the misgrade rate)


@dataclass
class HeReveal:
    """What the CKKS homomorphic grading of a ``reveal="he"`` run measured and checked.

    Parameters are recorded next to every time (STYLE.md 8).  ``ms_per_subject`` is the
    evaluator's circuit (all bands and caps, mask, flood) plus the authority's decryptions,
    over every graded subject; key generation and submissions are reported apart.
    """

    profile: str  # e.g. "n32768-l22"
    ring_dimension: int  # N
    coeff_bits: list[int]  # prime bit sizes, special prime last
    modulus_bits: int  # total, against the HE standard's bound for N (128-bit, ternary)
    modulus_bound_bits: int
    scale_bits: int
    levels: int
    slots: int  # subjects per ciphertext part (N/2)
    band_composite: str
    cap_composite: str
    flood_sigma: float
    context_bytes: int  # the published context with relinearization keys
    parts: int  # ciphertext parts per vector (subjects / slots, rounded up)
    score_submissions: int  # encrypted delta vectors, one per (agency, period, class) live
    cap_submissions: int  # encrypted cap-counter vectors, one per (agency, cap label)
    submission_bytes: int
    bytes_per_subject: float  # submission bytes per subject
    queries: int  # grade queries the authority decrypted
    seconds: dict[str, float]  # keygen, submit, ingest, grade (circuit), decrypt
    ms_per_subject: float  # (grade + decrypt) / subjects
    mismatches: int  # CKKS grades differing from the oracle's
    paillier_mismatches: int  # the Paillier run's (trusted reveal) grades vs the oracle
    grades_match_paillier: bool  # every subject: CKKS grade == Paillier grade
    relying_party_grade: str  # one subject's grade by its own one-slot query
    seen: dict[str, list[str]]  # what each party saw


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
    """A randomness pool filled from ``(r, r^n mod n^2)`` pairs computed elsewhere (worker
    processes)."""

    def __init__(self, public_key: PaillierPublicKey, values: list[tuple[int, int]]) -> None:
        super().__init__(public_key)
        self.add_precomputed(values)


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


def _randomizers(n: int, count: int) -> list[tuple[int, int]]:
    """Worker: ``count`` fresh ``(r, r^n mod n^2)`` from the OS CSPRNG."""
    pk = PaillierPublicKey(mpz(n))
    out = []
    for _ in range(count):
        r, rn = pk.random_r_rn(secrets.randbelow)
        out.append((int(r), int(rn)))
    return out


def precompute(
    public_key: PaillierPublicKey, counts: list[int], workers: int
) -> list[list[tuple[int, int]]]:
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
    take role subclasses (the rights workflows' :mod:`psc.protocol.rights`), and
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


class SimulationNoiseWitness:
    """**Simulation god view only; never a protocol role.**  Records the grade noise shares
    every committee member actually draws, so the driver can check each DP grade exactly.

    Given to each :class:`~psc.protocol.committee.CommitteeMember` as its
    ``_simulation_noise_witness`` (:data:`~psc.protocol.committee.NoiseWitness`).  Members
    may run in their own processes (:class:`~psc.protocol.committee.MemberProcess`), so
    each appends its draws to its own file in a private temporary directory; the driver
    reads them back with :meth:`totals` after the reveal.  Whoever reads these files can
    undo the differential privacy of every grade in the run: no agency, aggregator,
    combiner, member, relying party or subject reads them, no message carries them, and a
    deployment never makes one.  :meth:`close` deletes the files.
    """

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="psc-noise-witness-"))

    def _path(self, member: int) -> Path:
        return self._dir / f"member-{member}.npy"

    def __call__(
        self, member: int, release: str, period: int, slots: IntArray, noise: IntArray
    ) -> None:
        """Member's process: append one noise share's score-target draws (grades only)."""
        if release != "grade":  # statistics releases are not checked by the driver
            return
        rows = np.stack([np.full(slots.size, period), slots, noise]).astype(np.int64)
        with open(self._path(member), "ab") as f:
            np.save(f, rows)

    def totals(
        self, period: int, members: Sequence[int], n_slots: int
    ) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Driver, after the reveal: per slot, the sum of the noise ``members`` drew for its
        grade in ``period``, and whether every one of them drew exactly one share for it
        (a slot without that cannot be checked exactly and counts as a mismatch)."""
        total = np.zeros(n_slots, dtype=np.int64)
        ok = np.ones(n_slots, dtype=bool)
        for m in members:
            draws = np.zeros(n_slots, dtype=np.int64)
            path = self._path(m)
            if path.exists():
                end = path.stat().st_size
                with open(path, "rb") as f:
                    while f.tell() < end:
                        rows = np.load(f)
                        mine = rows[:, rows[0] == period]
                        np.add.at(total, mine[1], mine[2])
                        np.add.at(draws, mine[1], 1)
            ok &= draws == 1
        return total, ok

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


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
    witness: SimulationNoiseWitness | None = None  # god view (driver only), see its class
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
            CommitteeMember(cparams, s, k, _simulation_noise_witness=self.witness)
            for s, k in zip(self.key_shares, keys, strict=True)
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
        prepare_processes(procs, noise_shares, randomizers)

    def close(self) -> None:
        for link in self.links:
            if isinstance(link, MemberProcess):
                link.close()
        if self.pool is not None:
            self.pool.shutdown()
        self.store.close()
        if self.witness is not None:
            self.witness.close()


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
) -> RunResult:
    """Run every phase for ``city`` and check the grades against the oracle.

    ``keypair`` overrides key generation (tests pass small fixed keys).  Keys below 2048
    bits are accepted here only because this is a demo; the secure default is 3072.

    ``reveal="committee"``: a trusted dealer deals a ``committee = (k, n)`` threshold key
    instead (``keypair`` is then not used) and the key holder reveals through the
    committee's DP grade reveal (``epsilon`` per subject and period, ``honest = k``, each
    subject's budget 12 releases; the committee's store at ``committee_path``).  Grades
    are then noisy by design, yet checked exactly: the driver's god view
    (:class:`SimulationNoiseWitness`, never a protocol party) records the noise each
    member drew, and every revealed grade must equal the oracle's grade of the subject's
    true raw score plus the total noise drawn for it, with its caps.  The run is ``ok``
    when that holds, the protocol checks pass and the misgrade rate against the noiseless
    oracle agrees with what the noise predicts (within 5 standard errors).

    ``reveal="he"``: the Paillier run reveals through the trusted key holder (exact), then
    the same events are graded under CKKS encryption (:mod:`psc.he_grading`; a new
    grading authority, or ``he_authority`` whose keys tests reuse) and both are compared
    with the oracle and with each other.
    """
    if reveal not in ("trusted", "committee", "he"):
        raise ValueError(f"reveal must be 'trusted', 'committee' or 'he', got {reveal!r}")
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
            cs = CommitteeSetup(
                tpk, key_shares, policy, store, budget, workers, randbytes, SimulationNoiseWitness()
            )
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
        batch = cs.revealer.last if cs is not None and cs.revealer is not None else None
        rp_request = bank.request_grade(int(slot_of[0]), d.bank_purpose, last)
        rp_grade = bank.read_grade(rp_request, reveal_one(rp_request))

    # The god view (not a protocol phase; timed with the audit): in committee runs, the
    # total noise every revealed grade carries, summed over the members whose noise shares
    # the combiner added (all but those excluded for a missing or bad noise share).
    noise: IntArray = np.zeros(city.n_subjects, dtype=np.int64)
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
                grade = _noisy_grade(catalog, events, last, int(noise[slot]))
                consistent += bool(witnessed[slot]) and grade == revealed[slot]
            else:
                consistent += grade == revealed[slot]

    # -- Phase 7, audit: anyone with the aggregator's public key verifies the whole log;
    #    the revealed grades are compared with the plaintext oracle (committee: with the
    #    oracle's grade of raw score + the noise drawn, which only the god view knows).
    with phase("audit"):
        report = verify_log(ledger.connection, d.aggregator_public_key)
        oracle = score(table, last)
        caps = cap_indices(table, last)
        labels = catalog.labels
        got = np.array([labels.index(revealed[s]) for s in range(city.n_subjects)])
        expected = oracle.grade.astype(np.int64)
        if cs is not None:
            expected = grades_of(catalog, oracle.raw + noise, caps).astype(np.int64)
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
        _committee_result(result, cs, batch, oracle.raw, caps, oracle.grade.astype(np.int64))
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
    if reveal == "he":
        _he_result(result, city, slot_of, last, got, oracle.grade, rp_slot, phase, he_authority)
        result.phase_seconds = {k: round(v, 3) for k, v in phases.items()}
    return result


def _noisy_grade(catalog: Catalog, events: Sequence[Event], period: int, noise: int) -> str:
    """God view: the oracle's grade of a subject's verified events with ``noise`` added to
    its raw score (unclamped, as the committee grades it), with its caps."""
    mine = [Event(0, e.rule, e.date, e.evidence) for e in events]
    t = EventTable.from_events(catalog, mine, 1)
    raw = score(t, period).raw + noise
    return catalog.labels[int(grades_of(catalog, raw, cap_indices(t, period))[0])]


def _committee_result(
    result: RunResult,
    cs: CommitteeSetup,
    batch: CommitteeReveal,
    raw: IntArray,
    cap: IntArray,
    oracle: IntArray,
) -> None:
    """Fill in what the committee reveal spent and how accurate it was."""
    assert cs.committee is not None and cs.revealer is not None
    p = cs.committee.params
    spent = [cs.committee.budget.spent(subject_key(s)) for s in range(result.subjects)]
    worst = max(spent, key=lambda x: x.epsilon if isinstance(x, ApproxDP) else 0)
    assert isinstance(worst, ApproxDP)
    excluded = set(batch.excluded)
    last = cs.revealer.last
    if last is not None:
        excluded |= set(last.excluded)
    result.reveal = "committee"
    result.grades_compared_with = (
        "the oracle's grade of raw score + the total noise the members drew for that "
        "subject (exact; the noise is known only to the simulation's god view)"
    )
    result.access_compared_with = (
        "the subject's own recomputed raw score + the noise drawn for it (god view)"
    )
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
        f"{p.policy.honest}): noisy by design. grades_match_oracle is exact: each revealed "
        "grade equals the oracle's grade of the subject's raw score plus the noise the "
        "members actually drew (recorded by the simulation's god view, "
        "SimulationNoiseWitness, which no protocol party reads); against the noiseless "
        f"oracle the misgrade rate is {result.misgrade_rate_vs_noiseless_oracle:.4f} "
        f"(the noise predicts {result.expected_misgrade_rate:.4f}); cap counters are "
        "revealed exactly"
    )


def _he_result(
    result: RunResult,
    city: City,
    slot_of: IntArray,
    at: int,
    paillier: IntArray,
    oracle: npt.NDArray[np.int8],
    rp_slot: int,
    phase: Callable[[str], AbstractContextManager[None]],
    authority: GradingAuthority | None,
) -> None:
    """``reveal="he"``: grade the same events under CKKS encryption and check the grades.

    The parties of this path (:mod:`psc.he_grading`): agencies, the aggregator (evaluator,
    no secret key) and one grading authority (the secret key).  Its messages are the
    ciphertexts and grade queries of ``protocols/he-grading.md`` (not signed envelopes:
    the Paillier run above carries the signatures, log and access).
    """
    from psc.he_grading import (
        FLOOD_SIGMA,
        GradingAuthority,
        GradingCircuit,
        HomomorphicGrader,
        live_inputs,
    )
    from psc.he_params import MAX_MODULUS_BITS
    from psc.packing import worst_case_sum

    catalog, n = city.catalog, city.n_subjects
    seconds: dict[str, float] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with phase(f"he-{name}"):
            yield
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - t0, 3)

    # -- HE phase 1, keygen: the grading authority makes CKKS keys for the smallest profile
    #    with the depth the catalog's circuit needs and publishes the public context
    #    (relinearization keys, no secret key).
    with timed("keygen"):
        circuit = (
            authority.circuit if authority is not None else GradingCircuit.for_catalog(catalog)
        )
        auth = authority if authority is not None else GradingAuthority.generate(circuit)
        grader = HomomorphicGrader(circuit, auth.public)
    S, params = circuit.slots, circuit.params
    parts = -(-n // S)

    # -- HE phases 2 and 3, submit and ingest: every agency maps its own records (the same
    #    events and slots as the Paillier run) to dense vectors of the deltas live at the
    #    close of the evaluation period, one per (period, retention class), and a live
    #    counter per cap label its rules can set; it encrypts them under the public context
    #    and sends the bytes.  The aggregator parses each and adds it into its sums.
    score_bound = worst_case_sum(catalog)
    cap_bound = round(circuit.cap_unit + 0.5)
    sums: dict[str, TensealCiphertext] = {}
    sent = n_score = n_cap = 0
    per_agency: list[str] = []
    for inst in city.agencies:
        evs = [
            Event(int(slot_of[e.subject]), e.rule, e.date, e.evidence)
            for p in city.periods
            for e in city.events[inst.id][p]
        ]
        with timed("submit"):
            subs, counters = live_inputs(EventTable.from_events(catalog, evs, n), at)
            vectors = [("score", v) for key, v in subs.items() if key != "none"]
            vectors += [
                (lab, counters[lab])
                for lab, _ in circuit.cap_levels
                if any(
                    r.grade_cap == lab and r.agency == inst.catalog_agency for r in catalog.rules
                )
            ]
            wire = []
            for label, v in vectors:
                be = grader.scores if label == "score" else grader.caps
                ct = be.encrypt(v, bound=score_bound if label == "score" else cap_bound)
                wire.append((label, be.serialize(ct)))
        mine = sum(len(b) for _, b in wire)
        sent += mine
        k_score = sum(1 for label, _ in wire if label == "score")
        n_score, n_cap = n_score + k_score, n_cap + len(wire) - k_score
        per_agency.append(
            f"{inst.id}: the public context and its own records; sent {k_score} score and "
            f"{len(wire) - k_score} cap-counter ciphertexts ({mine:,} bytes)"
        )
        with timed("ingest"):
            for label, data in wire:
                be = grader.scores if label == "score" else grader.caps
                ct = be.deserialize(data)
                acc = sums.get(label)
                sums[label] = ct if acc is None else be.sum((acc, ct))
    with timed("ingest"):  # anyone can encrypt zeros: inputs nobody contributed to
        zeros = np.zeros(n, dtype=np.int64)
        for label in ["score", *(lab for lab, _ in circuit.cap_levels)]:
            if label not in sums:
                be = grader.scores if label == "score" else grader.caps
                sums[label] = be.encrypt(zeros, bound=0)
    scores = sums.pop("score")

    # -- HE phase 4, grade: the aggregator runs the circuit once per part of N/2 subjects,
    #    then masks and floods one query per part for the registry's batch request (every
    #    subject's own grade, as in the reveal phase) and a one-slot query for the bank.
    requests = [list(range(q * S, min(n, (q + 1) * S))) for q in range(parts)] + [[rp_slot]]
    with timed("grade"):
        queries = grader.grade_many(scores, sums, requests)

    # -- HE phase 5, decrypt: the authority decrypts each query, refuses one whose other
    #    slots do not round to 0, and releases only the rounded grades.
    with timed("decrypt"):
        answers = [auth.decrypt_grades(q) for q in queries]
    he = np.zeros(n, dtype=np.int64)
    for answer in answers[:-1]:
        for slot, g in answer.items():
            he[slot] = g
    labels = catalog.labels
    rp_grade = labels[answers[-1][rp_slot]]
    mismatches = int(np.count_nonzero(he != oracle))
    qbytes = [len(q.ciphertext) for q in queries]
    seen = {
        "agencies": per_agency,
        "aggregator": [
            f"{n_score} score and {n_cap} cap-counter ciphertexts ({sent:,} bytes) and the "
            f"public context with relinearization keys ({auth.public.byte_size:,} bytes); "
            f"ran the circuit on {parts} part(s) of {S} slots; no secret key, nothing in "
            "the clear"
        ],
        "grading-authority": [
            f"query {i + 1} (the registry's batch request): part {q.part}, one "
            f"{b:,}-byte flooded ciphertext whose {len(q.slots):,} requested slots round to "
            f"grades and every other slot to 0; released {len(q.slots):,} grades"
            for i, (q, b) in enumerate(zip(queries[:-1], qbytes, strict=False))
        ]
        + [
            f"query {len(queries)} (the bank): slot {rp_slot}, one {qbytes[-1]:,}-byte "
            "flooded ciphertext; released one grade"
        ],
        "registry": [
            f"the grades of all {n:,} subjects (the batch request made on their behalf, to "
            "notify each subject of its own grade)"
        ],
        "relying-party": [f"slot {rp_slot}: grade {rp_grade}"],
    }
    total = seconds.get("grade", 0.0) + seconds.get("decrypt", 0.0)
    result.reveal = "he"
    result.he = HeReveal(
        profile=circuit.profile.name,
        ring_dimension=params.n,
        coeff_bits=list(params.coeff_bits),
        modulus_bits=params.modulus_bits,
        modulus_bound_bits=MAX_MODULUS_BITS[params.n],
        scale_bits=params.scale_bits,
        levels=params.levels,
        slots=S,
        band_composite=circuit.profile.band.name,
        cap_composite=circuit.profile.cap.name,
        flood_sigma=FLOOD_SIGMA,
        context_bytes=auth.public.byte_size,
        parts=parts,
        score_submissions=n_score,
        cap_submissions=n_cap,
        submission_bytes=sent,
        bytes_per_subject=round(sent / n, 1),
        queries=len(queries),
        seconds=seconds,
        ms_per_subject=round(1000 * total / n, 3),
        mismatches=mismatches,
        paillier_mismatches=int(np.count_nonzero(paillier != oracle)),
        grades_match_paillier=bool(np.array_equal(he, paillier)),
        relying_party_grade=rp_grade,
        seen=seen,
    )
    hist = np.bincount(he, minlength=len(labels))
    result.grades = {lab: int(c) for lab, c in zip(labels, hist, strict=True)}
    result.mismatches = mismatches + result.he.paillier_mismatches
    rp_ok = rp_grade == labels[int(oracle[rp_slot])]
    result.grades_match_oracle = result.grades_match_oracle and mismatches == 0 and rp_ok
    result.grades_compared_with = (
        "noiseless oracle (both the CKKS grades and the Paillier run's trusted reveal)"
    )
    result.ok = result.ok and result.grades_match_oracle and result.he.grades_match_paillier
    result.notes.append(
        f"grades computed under CKKS encryption ({circuit.profile.name}: N={params.n}, "
        f"{params.modulus_bits}-bit modulus of at most {MAX_MODULUS_BITS[params.n]} for "
        f"128-bit security, {params.levels} levels); one grading authority holds the secret "
        "key and decrypts only masked, flooded grade queries. The Paillier run revealed "
        "through the trusted key holder; both are compared with the oracle. Submissions "
        "carry only the deltas live at the evaluation period, and all-zero vectors are "
        "left out (they add nothing; a deployment sends them so quiet agencies do not show)"
    )
