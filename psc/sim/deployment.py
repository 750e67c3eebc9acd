"""Setting up a simulated deployment: keys, enrolment, public parameters, registrations.

The ``setup`` phase of :func:`psc.sim.driver.run`: the registry enrols the city's subjects,
the aggregator and key holder (or a dealt k-of-n committee, :class:`CommitteeSetup`) get
their keys, every agency and relying party is registered.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from psc.catalog import Catalog
from psc.dp.accounting import ApproxDP
from psc.events import IntArray
from psc.exceptions import ParameterError
from psc.hazmat.backends.paillier import ShortExponentPool
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import (
    MIN_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
)
from psc.hazmat.threshold.dealer import deal
from psc.hazmat.threshold.keys import KeyShare, ThresholdPublicKey
from psc.ledger.store import SQLiteLedger
from psc.parties.agency import Agency
from psc.parties.aggregator import Aggregator
from psc.parties.committee import (
    CommitteeMember,
    CommitteeParameters,
    CommitteeRevealer,
    KeyCommittee,
    LocalLink,
    MemberLink,
    MemberProcess,
    RevealPolicy,
    open_committee_store,
    parallel,
    prepare_processes,
    reveal_layout,
)
from psc.parties.committee.member_store import MemberStore
from psc.parties.key_holder import ConsentVerifier, KeyHolder, Revealer, TrustedDecryptor
from psc.parties.registry import Registry
from psc.parties.relying_party import RelyingParty
from psc.protocol.logview import LedgerLogView, LogView
from psc.protocol.parameters import SELF_ACCESS_PURPOSE, ProtocolParameters
from psc.protocol.signing import new_signing_key, public_bytes
from psc.sim.city import AgencyInstance


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
    take role subclasses (the rights workflows' :mod:`psc.parties.rights`), and
    ``consent`` makes the key holder's consent gate from the parameters (e.g. a
    :class:`psc.parties.consent_gate.TokenConsentVerifier`; default: no tokens).
    ``revealer`` makes the key holder's reveal step from the parameters and a fresh
    signing key (the committee's combiner key); default: :class:`TrustedDecryptor` with
    the keypair's private key.  ``layout`` widens the slots (the committee's headroom).

    Raises :class:`~psc.exceptions.ParameterError` if the catalog has no purpose besides
    subject self-access (the example relying party needs one to ask for).
    """
    purposes = [p for p in catalog.scheme.purposes if p != SELF_ACCESS_PURPOSE]
    if not purposes:
        raise ParameterError(
            f"catalog {catalog.scheme.name!r} lists only {SELF_ACCESS_PURPOSE!r} in scheme.purposes: "
            "the reference deployment's relying party needs one more purpose to ask for, "
            "e.g. 'credit-assessment'"
        )
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
    purpose = purposes[0]
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

    Given to each :class:`~psc.parties.committee.CommitteeMember` as its
    ``_simulation_noise_witness`` (:data:`~psc.parties.committee.NoiseWitness`).  Members
    may run in their own processes (:class:`~psc.parties.committee.MemberProcess`), so
    each appends its draws to its own file in a private temporary directory; the driver
    reads them back with :meth:`totals` after the reveal.  Whoever reads these files can
    undo the differential privacy of every grade in the run: no agency, aggregator,
    combiner, member, relying party or subject reads them, no message carries them, and a
    deployment never makes one.  :meth:`close` deletes the files.
    """

    def __init__(self, directory: Path | None = None) -> None:
        """``directory``: where the draws go (members in ``psc serve`` processes write there,
        ``psc demo`` reads it); a private temporary directory by default."""
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="psc-noise-witness-"))
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._dir = directory

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
    the key holder as its :class:`~psc.parties.committee.CommitteeRevealer`.

    The dealer's key (``deal``) and each member's key share stay inside; members run in
    their own processes when ``workers > 1`` (:class:`~psc.parties.committee.MemberProcess`)
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
    #: a scratch directory for the ledger's file, deleted by :meth:`close`
    scratch: Path | None = None

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

    def prepare_grades(self, n_subjects: int, layout: SlotLayout, cap_labels: int) -> None:
        """Members, offline: what a batch grade reveal of ``n_subjects`` slots and one
        relying party's query take, for the score and ``cap_labels`` cap counters: a noise
        share per subject and query, and a randomizer per share block and per proof
        commitment."""
        units = (layout.blocks(n_subjects) + 1) * (1 + cap_labels)
        self.prepare(n_subjects + 1, 2 * units)

    def prepare(self, noise_shares: int, randomizers: int) -> None:
        """Members, offline: draw noise shares and encryption randomizers ahead of time."""
        for link in self.links:
            if isinstance(link, LocalLink):
                link.member.prepare(noise_shares, randomizers)
        procs = [link for link in self.links if isinstance(link, MemberProcess)]
        prepare_processes(procs, noise_shares, randomizers)

    def close(self) -> None:
        """End the members' processes and the proof pool, close the combiner's store,
        delete the witness's files and the scratch directory (the ledger's file, if any:
        close the ledger first)."""
        for link in self.links:
            if isinstance(link, MemberProcess):
                link.close()
        if self.pool is not None:
            self.pool.shutdown()
        self.store.close()
        if self.witness is not None:
            self.witness.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def deal_committee(
    catalog: Catalog,
    *,
    committee: tuple[int, int],
    epsilon: Fraction,
    key_bits: int,
    multiplicity: int,
    workers: int,
    randbytes: Callable[[int], bytes],
    store_path: str | Path = ":memory:",
    ledger_path: str | Path = ":memory:",
    witness: SimulationNoiseWitness | None = None,
) -> tuple[CommitteeSetup, SlotLayout, str | Path]:
    """A trusted dealer deals a ``committee = (k, n)`` threshold key of ``key_bits`` bits
    (and erases it); returns the committee, the slot layout widened for its noise and
    masks (:func:`~psc.parties.committee.reveal_layout`) and the ledger path, for
    :func:`setup`.  Members in their own processes (``workers > 1``) read the public log
    from the ledger's file: for an in-memory ``ledger_path`` the ledger path returned is a
    file in a scratch directory the committee deletes on :meth:`~CommitteeSetup.close`
    (close the ledger first).

    The reveal policy: ``epsilon`` per subject and period for the score and as much for
    the cap counters, slot headroom for any epsilon down to ``min(1/4, epsilon)``,
    ``honest = k``; each
    subject's budget is twelve such releases (delta 1e-9).  The combiner's store is at
    ``store_path`` (in memory by default); with a file, every member keeps its durable
    release record in ``committee-members/`` beside it.  ``witness`` records the noise
    the members draw (the simulation's god view; never in a deployment).

    Raises what :func:`~psc.hazmat.threshold.dealer.deal` raises (keys below 2048 bits
    are allowed here: this is a simulation).
    """
    k, n = committee
    public, key_shares = deal(k, n, bits=key_bits, allow_insecure=key_bits < MIN_KEY_BITS)
    policy = RevealPolicy(Fraction(epsilon), min(Fraction(1, 4), Fraction(epsilon)), k)
    layout = reveal_layout(catalog, key_bits, multiplicity=multiplicity, members=n, policy=policy)
    in_memory = str(store_path) == ":memory:"
    store = (
        sqlite3.connect(":memory:", isolation_level=None)
        if in_memory
        else open_committee_store(str(store_path))
    )
    assert policy.cap_epsilon is not None
    # twelve releases of score and cap counters
    budget = ApproxDP(12 * (policy.epsilon + policy.cap_epsilon), Fraction(1, 10**9))
    cs = CommitteeSetup(public, key_shares, policy, store, budget, workers, randbytes, witness)
    if not in_memory:  # members' durable release records
        cs.member_dir = Path(store_path).parent / "committee-members"
        cs.member_dir.mkdir(parents=True, exist_ok=True)
    if workers > 1 and str(ledger_path) == ":memory:":
        cs.scratch = Path(tempfile.mkdtemp(prefix="psc-ledger-"))
        ledger_path = cs.scratch / "ledger.sqlite"
    return cs, layout, ledger_path
