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
``he-submit``, ``he-ingest`` and ``he-reveal`` (the grading authority's circuit and
decryptions, split into ``grade`` and ``decrypt`` in :class:`HeReveal`).

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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    from psc.exact.ring import LatticeParams
    from psc.he_grading import GradingAuthority

from psc.backends.paillier import ShortExponentPool
from psc.catalog import Catalog, period_label, period_start
from psc.dp.accounting import ApproxDP
from psc.events import Event, EventTable, IntArray
from psc.ledger import SQLiteLedger
from psc.oracle import cap_counts, caps_from_counts, grades_of, score
from psc.packing import SlotLayout
from psc.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    ShortExponentRandomizer,
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
from psc.protocol.committee.member_store import MemberStore
from psc.protocol.logview import LedgerLogView, LogView
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
    epsilon_breakdown: str = ""  # e.g. "score 1 + cap counters 1": the parts of that loss
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
    exact_summary: str = ""  # reveal="exact": parameters and times of the exact reveal
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


@dataclass(frozen=True)
class AgencyRandomness:
    """One agency's precomputed randomizers: its secret short-exponent base ``h`` and
    ``(alpha, h_s^alpha mod n^2)`` pairs (:class:`~psc.paillier.ShortExponentRandomizer`).
    Secret: whoever holds it opens the agency's ciphertexts."""

    base: int
    exponents: list[tuple[int, int]]


class PrecomputedPool(ShortExponentPool):
    """A short-exponent randomness pool filled from what worker processes computed
    (:func:`precompute`); also accepts plain ``(r, r^n mod n^2)`` pairs."""

    def __init__(
        self, public_key: PaillierPublicKey, values: AgencyRandomness | list[tuple[int, int]]
    ) -> None:
        if isinstance(values, AgencyRandomness):
            super().__init__(
                public_key, randomizer=ShortExponentRandomizer(public_key, values.base)
            )
            self.add_exponents(values.exponents)
        else:
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


def _randomizers(n: int, base: int, count: int) -> list[tuple[int, int]]:
    """Worker: ``count`` fresh ``(alpha, h_s^alpha mod n^2)`` for the base ``h``, exponents
    from the OS CSPRNG (the worker builds its own fixed-base table)."""
    z = ShortExponentRandomizer(PaillierPublicKey(mpz(n)), base)
    z.prepare(count)
    out = []
    for _ in range(count):
        alpha = z.draw(secrets.randbelow)
        out.append((alpha, int(z.rn(alpha))))
    return out


def precompute(
    public_key: PaillierPublicKey, counts: list[int], workers: int
) -> list[AgencyRandomness]:
    """Short-exponent randomizers for several agencies, spread over ``workers`` processes.

    Each agency gets its own secret base (drawn here from the OS CSPRNG); its work is cut
    into pieces of about ``total / (2 workers)`` randomizers so both the pieces and the
    per-piece table builds stay balanced."""
    bases = [int(ShortExponentRandomizer.generate(public_key).base) for _ in counts]
    n, total = int(public_key.n), sum(counts)
    if workers <= 1 or total == 0:
        return [
            AgencyRandomness(h, _randomizers(n, h, c) if c else [])
            for h, c in zip(bases, counts, strict=True)
        ]
    chunk = max(1, -(-total // (workers * 2)))
    tasks = [(i, min(chunk, c - j)) for i, c in enumerate(counts) for j in range(0, c, chunk)]
    out = [AgencyRandomness(h, []) for h in bases]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        parts = ex.map(
            _randomizers, [n] * len(tasks), [bases[i] for i, _ in tasks], [k for _, k in tasks]
        )
        for (i, _), part in zip(tasks, parts, strict=True):
            out[i].exponents.extend(part)
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
    revealer: Callable[[ProtocolParameters, Ed25519PrivateKey, LogView], Revealer] | None = None,
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
    # whoever decrypts checks the blocks against the public log (here: the ledger itself)
    view = LedgerLogView(params, ledger)
    if revealer is not None:
        reveal_step: Revealer = revealer(params, new_signing_key(randbytes), view)
    elif sk is not None:
        reveal_step = TrustedDecryptor(params, sk)
    else:
        raise ValueError("setup needs the private key or a revealer")
    key_holder = KeyHolder(params, reveal_step, kh_key, log_view=view, consent=gate, clock=clock)
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

    def _path(self, member: int, label: str) -> Path:
        return self._dir / f"member-{member}-{label}.npy"

    def __call__(
        self, member: int, release: str, period: int, label: str, slots: IntArray, noise: IntArray
    ) -> None:
        """Member's process: append one block's target draws (grades only)."""
        if release != "grade":  # statistics releases are not checked by the driver
            return
        rows = np.stack([np.full(slots.size, period), slots, noise]).astype(np.int64)
        with open(self._path(member, label), "ab") as f:
            np.save(f, rows)

    def totals(
        self, period: int, members: Sequence[int], n_slots: int, label: str = "score"
    ) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Driver, after the reveal: per slot, the sum of the noise ``members`` drew for its
        ``label`` (the score or a cap label) in ``period``, and whether every one of them
        drew exactly one share for it (a slot without that cannot be checked exactly and
        counts as a mismatch)."""
        total = np.zeros(n_slots, dtype=np.int64)
        ok = np.ones(n_slots, dtype=bool)
        for m in members:
            draws = np.zeros(n_slots, dtype=np.int64)
            path = self._path(m, label)
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
    #: where each member keeps its durable release record (``None``: in memory)
    member_dir: Path | None = None

    def member_store(self, index: int) -> str:
        if self.member_dir is None:
            return ":memory:"
        return str(self.member_dir / f"member-{index}.sqlite")

    def make(
        self, params: ProtocolParameters, combiner_key: Ed25519PrivateKey, log_view: LogView
    ) -> Revealer:
        """The key holder's reveal step (``setup(..., revealer=...)``); every member checks
        what it decrypts against ``log_view`` (members in their own processes reopen the
        ledger file there)."""
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
            CommitteeMember(
                cparams,
                s,
                k,
                log_view=log_view,
                store=MemberStore(self.member_store(s.index)),
                # short-exponent randomizers (packing.md 2.1), a secret base per member
                pool=ShortExponentPool(self.public.public),
                _simulation_noise_witness=self.witness,
            )
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
    (:class:`SimulationNoiseWitness`, never a protocol party) records the noise each
    member drew, and every revealed grade must equal the oracle's grade of the subject's
    true raw score plus the total noise drawn for it, with its caps.  The run is ``ok``
    when that holds, the protocol checks pass and the misgrade rate against the noiseless
    oracle agrees with what the noise predicts (within 5 standard errors).

    ``reveal="exact"``: as ``"he"``, then the same events are graded by the dealer-free
    k-of-n BFV committee of :mod:`psc.exact` (``exact_params``: lattice parameters, the
    city's by default) and compared with the noiseless oracle.

    ``reveal="he"``: the Paillier run reveals through the trusted key holder (exact), then
    the same events are graded under CKKS encryption (:mod:`psc.he_grading`; a new
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
    if reveal == "exact":  # issue 10: the dealer-free exact reveal (psc/exact/demo.py)
        from psc.exact.demo import exact_reveal

        exact_reveal(result, city, slot_of, last, oracle.grade, rp_slot, phase, exact_params)
        result.phase_seconds = {k: round(v, 3) for k, v in phases.items()}
    return result


def _noisy_grade(
    catalog: Catalog,
    events: Sequence[Event],
    period: int,
    noise: int,
    cap_noise: Mapping[str, int],
) -> str:
    """God view: the oracle's grade of a subject's verified events with ``noise`` added to
    its raw score (unclamped, as the committee grades it) and ``cap_noise`` to its cap
    counts."""
    mine = [Event(0, e.rule, e.date, e.evidence) for e in events]
    t = EventTable.from_events(catalog, mine, 1)
    raw = score(t, period).raw + noise
    counts = {label: c + cap_noise.get(label, 0) for label, c in cap_counts(t, period).items()}
    caps = caps_from_counts(catalog, counts, 1)
    return catalog.labels[int(grades_of(catalog, raw, caps)[0])]


def _committee_result(
    result: RunResult,
    cs: CommitteeSetup,
    batch: CommitteeReveal,
    raw: IntArray,
    counts: Mapping[str, IntArray],
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
    eps = p.epsilon  # score and cap counters together

    def frac(q: Fraction) -> str:
        return f"{q.numerator}/{q.denominator}" if q.denominator > 1 else str(q)

    result.epsilon_per_release = frac(eps)
    result.epsilon_breakdown = f"score {frac(p.policy.epsilon)}" + (
        f" + cap counters {frac(p.policy.cap_epsilon)}"
        if p.has_caps and p.policy.cap_epsilon is not None
        else ""
    )
    result.epsilon_spent = float(worst.epsilon)
    result.delta_spent = float(worst.delta)
    budget = cs.budget
    result.budget_epsilon = float(budget.epsilon)
    result.expected_misgrade_rate = expected_misgrade_rate(p, raw, counts, oracle)
    result.excluded_members = sorted(excluded)
    result.notes.append(
        f"grades revealed by a {p.k}-of-{p.n} key committee with distributed discrete Laplace "
        f"noise (epsilon {result.epsilon_per_release} per subject and period in all: "
        f"{frac(p.policy.epsilon)} for the score"
        + (
            f" + {frac(p.policy.cap_epsilon)} for the cap counters"
            if p.has_caps and p.policy.cap_epsilon is not None
            else ""
        )
        + f"; honest = {p.policy.honest}, quorum = {p.quorum}): noisy by design. "
        "grades_match_oracle is exact: each revealed grade equals the oracle's grade of the "
        "subject's raw score and cap counts plus the noise the members actually drew "
        "(recorded by the simulation's god view, SimulationNoiseWitness, which no protocol "
        "party reads); against the noiseless oracle the misgrade rate is "
        f"{result.misgrade_rate_vs_noiseless_oracle:.4f} (the noise predicts "
        f"{result.expected_misgrade_rate:.4f})"
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

    The parties of this path (:mod:`psc.he`): agencies (signed, encrypted submissions), the
    aggregator (forwards them to the grading log; no key) and one grading authority (the
    secret key), which evaluates the published circuit itself on its logged inputs for
    each signed request and decrypts nothing else (``protocols/he-grading.md``).
    """
    from psc.he.authority import GradingAuthority
    from psc.he.circuit import GradingCircuit
    from psc.he.flooding import FLOOD_SIGMA
    from psc.he.reference import he_submission, period_vectors
    from psc.he_params import MAX_MODULUS_BITS
    from psc.protocol.messages import GradeRequest as HeGradeRequest
    from psc.protocol.signing import seal

    catalog, n = city.catalog, city.n_subjects
    seconds: dict[str, float] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with phase(f"he-{name}"):
            yield
        seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - t0, 3)

    # -- HE phase 1, keygen: the grading authority makes CKKS keys for the smallest profile
    #    with the depth the catalog's circuit needs, publishes the public context
    #    (relinearization keys, no secret key) and registers the signing keys of the
    #    agencies, the registry and the bank.
    with timed("keygen"):
        circuit = (
            authority.circuit if authority is not None else GradingCircuit.for_catalog(catalog)
        )
        auth = (
            authority
            if authority is not None
            else GradingAuthority.generate(circuit, catalog=catalog)
        )
        auth.expect_subjects(n, first_period=city.periods[0])
        keys = {inst.id: new_signing_key() for inst in city.agencies}
        for inst in city.agencies:
            auth.register_agency(inst.id, public_bytes(keys[inst.id]), inst.catalog_agency)
        requesters = {"registry": new_signing_key(), "bank": new_signing_key()}
        for rid, k in requesters.items():
            auth.register_requester(rid, public_bytes(k))
    S, params = circuit.slots, circuit.params
    parts = -(-n // S)

    # -- HE phases 2 and 3, submit and ingest: every agency maps its own records (the same
    #    events and slots as the Paillier run) to one dense vector per (period, retention
    #    class, counter), zero vectors included, encrypts it under the public context and
    #    signs it; the aggregator forwards the bytes and the authority verifies and logs.
    sent = n_score = n_cap = 0
    per_agency: list[str] = []
    for inst in city.agencies:
        evs = [
            Event(int(slot_of[e.subject]), e.rule, e.date, e.evidence)
            for p in city.periods
            for e in city.events[inst.id][p]
        ]
        with timed("submit"):
            table = EventTable.from_events(catalog, evs, n)
            vectors = {
                k: v
                for k, v in period_vectors(table, city.periods).items()
                if k[0] == inst.catalog_agency
            }
            wire = [
                (counter, he_submission(auth, inst.id, keys[inst.id], p, cls, counter, v, a))
                for (a, p, cls, counter), v in vectors.items()
            ]
        mine = sum(len(b) for _, b in wire)
        sent += mine
        k_score = sum(1 for c, _ in wire if c == "score")
        n_score, n_cap = n_score + k_score, n_cap + len(wire) - k_score
        per_agency.append(
            f"{inst.id}: the public context and its own records; sent {k_score} score and "
            f"{len(wire) - k_score} cap-counter ciphertexts ({mine:,} bytes), signed"
        )
        with timed("ingest"):
            for _, data in wire:
                auth.log_submission(data)

    # -- HE phases 4 and 5, grade and decrypt: the registry asks for every subject's own
    #    grade (one signed request per part) and the bank for one slot; for each, the
    #    authority recomputes the live sums from its log, runs the published circuit,
    #    floods from the OS CSPRNG, decrypts and releases only the rounded grades.
    requests = [("registry", tuple(range(q * S, min(n, (q + 1) * S)))) for q in range(parts)] + [
        ("bank", (rp_slot,))
    ]
    answers: list[dict[int, int]] = []
    t_before = dict(auth.timings)
    with phase("he-reveal"):
        for rid, slots in requests:
            req = HeGradeRequest(rid, catalog.scheme.purposes[0], at, slots, os.urandom(16), b"", 0)
            answers.append(auth.reveal(seal(req, requesters[rid])))
    for name in ("grade", "decrypt"):
        spent = auth.timings.get(name, 0.0) - t_before.get(name, 0.0)
        seconds[name] = round(seconds.get(name, 0.0) + spent, 3)
    he = np.zeros(n, dtype=np.int64)
    for answer in answers[:-1]:
        for slot, g in answer.items():
            he[slot] = g
    labels = catalog.labels
    rp_grade = labels[answers[-1][rp_slot]]
    mismatches = int(np.count_nonzero(he != oracle))
    seen = {
        "agencies": per_agency,
        "aggregator": [
            f"{n_score} score and {n_cap} cap-counter ciphertexts ({sent:,} bytes) in signed "
            "submissions, forwarded to the grading log; no secret key, nothing in the clear"
        ],
        "grading-authority": [
            f"request {i + 1} (the registry's batch request): recomputed the live sums from "
            f"its log, ran the published circuit on part {slots[0] // S} of {S} slots, "
            f"flooded and decrypted; released {len(slots):,} grades"
            for i, (_, slots) in enumerate(requests[:-1])
        ]
        + [
            f"request {len(requests)} (the bank): slot {rp_slot}, the same circuit on its "
            "logged inputs; released one grade"
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
        flood_sigma=float(FLOOD_SIGMA),
        context_bytes=auth.public.byte_size,
        parts=parts,
        score_submissions=n_score,
        cap_submissions=n_cap,
        submission_bytes=sent,
        bytes_per_subject=round(sent / n, 1),
        queries=len(requests),
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
        "key, evaluates the published circuit itself on its log of signed submissions for "
        "each signed request, floods from the OS CSPRNG and releases only rounded grades. "
        "The Paillier run revealed through the trusted key holder; both are compared with "
        "the oracle. Agencies submit one dense vector per period, retention class and "
        "counter, zero vectors included"
    )
