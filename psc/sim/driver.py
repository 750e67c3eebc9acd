"""The reference driver: one deployment, several scoring periods, end to end.

Readable first: each phase below is a comment and a few calls on the role objects of
:mod:`psc.parties`; every message is sealed by its sender, travels as bytes and is
opened (decoded, verified) by its receiver.  The parties live in one process here (``psc
demo --in-process``; :mod:`psc.sim.loopback` runs the same phases with every party its own
process); nothing but bytes passes between them.

Reveals (``reveal=``):

``"trusted"``    one key holder decrypts (the exact baseline).
``"committee"``  a trusted dealer deals a ``committee = (k, n)`` threshold key (``keypair``
                 is then not used) and the key holder reveals through the committee's DP
                 grade reveal (``epsilon`` per subject and period, ``honest = k``, each
                 subject's budget 12 releases; the committee's store at
                 ``committee_path``).  Grades are noisy by design, yet checked exactly: every
                 revealed grade must equal the oracle's grade of the subject's raw score plus
                 the total noise drawn for it (the god view below), and the misgrade rate
                 against the noiseless oracle must agree with what the noise predicts.
``"he"``         the trusted reveal, then the same events graded under CKKS encryption
                 (a new grading authority, or ``he_authority``), both compared with the
                 oracle and with each other.
``"exact"``      as ``"he"``, then the same events graded by the dealer-free k-of-n BFV
                 committee (:mod:`psc.sim.exact_driver`) against the noiseless oracle.

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
committee runs, the noise each member actually drew
(:class:`~psc.sim.deployment.SimulationNoiseWitness`).  That view is the harness's, never
a protocol role's: nothing it learns flows back into a party or a message.  Its checks
live in :mod:`psc.sim.god_view` (noise totals, expected grades, the comparison with the
oracle, the access sample and tally), so that a driver running the parties elsewhere
applies the same ones; :class:`~psc.sim.meter.Meter` times the phases and counts the bytes,
and :func:`~psc.sim.results.run_result` assembles what was measured and checked.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from psc.hazmat.exact.ring import LatticeParams
    from psc.parties.grading_authority import GradingAuthority

from psc.catalog import period_start
from psc.hazmat.packing import SlotLayout
from psc.hazmat.paillier import PaillierPrivateKey, PaillierPublicKey
from psc.ledger.log_verify import verify_log
from psc.parties.relying_party import read_grades
from psc.parties.subject import Subject
from psc.sim.city import City
from psc.sim.deployment import CommitteeSetup, SimulationNoiseWitness, deal_committee, setup
from psc.sim.god_view import (
    AccessTally,
    NoiseTotals,
    _committee_result,
    _he_result,
    committee_noise_totals,
    compare_with_oracle,
    sample_access_subjects,
)
from psc.sim.meter import Meter
from psc.sim.results import RunResult, run_result
from psc.sim.sources import SimClock, demo_keypair, precompute_agencies


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
    """Run every phase for ``city`` in this process and check the grades against the
    oracle (the reveals and the god view's checks: the module doc).  ``keypair`` overrides
    key generation (tests pass small fixed keys; below 2048 bits only for demos, 3072 is
    the secure default); ``committee``, ``epsilon`` and ``committee_path`` configure
    ``reveal="committee"``; ``he_authority`` reuses CKKS keys (tests), ``exact_params``
    overrides the exact reveal's lattice parameters."""
    if reveal not in ("trusted", "committee", "he", "exact"):
        raise ValueError(f"reveal must be 'trusted', 'committee', 'he' or 'exact', got {reveal!r}")
    meter, catalog, n = Meter(), city.catalog, city.n_subjects
    send, first, last = meter.send, city.periods[0], city.periods[-1]
    clock = SimClock(dt.datetime.combine(period_start(first), dt.time(8), dt.UTC))

    # -- Phase 1, setup: keys (the Paillier key, or a dealt k-of-n key whose slots get
    #    headroom for noise and masks); the registry enrols subjects in random slots,
    #    publishes the parameters and signs every registration.
    with meter.phase("setup"):
        cs: CommitteeSetup | None = None
        layout: SlotLayout | None = None
        if reveal == "committee":
            cs, layout, ledger_path = deal_committee(
                catalog,
                committee=committee,
                epsilon=epsilon,
                key_bits=key_bits,
                multiplicity=city.multiplicity,
                workers=workers,
                randbytes=randbytes,
                store_path=committee_path,
                ledger_path=ledger_path,
                witness=SimulationNoiseWitness(),  # the god view, never a party
            )
        pk, sk = (cs.public.public, None) if cs else keypair or demo_keypair(key_bits)
        d = setup(
            catalog,
            city.agencies,
            n,
            (pk, sk),
            clock=clock,
            ledger_path=ledger_path,
            randbytes=randbytes,
            revealer=cs.make if cs else None,
            layout=layout,
        )
        for kind, data in d.sent:
            send(kind, data)

    # -- Phase 2, precompute (offline, parallel): agencies' randomizers r^n mod n^2; the
    #    members' noise shares and randomizers.
    with meter.phase("precompute"):
        precompute_agencies(d.agencies, pk, len(city.periods), workers)
        if cs is not None:
            cs.prepare_grades(n, d.params.layout, len(catalog.cap_labels()))

    # -- Phases 3 and 4, each period: every agency encrypts, commits, proves and signs its
    #    envelope (submit); the aggregator verifies it, then logs and adds it in one
    #    transaction and returns a signed receipt (ingest).
    for p in city.periods:
        clock.advance_to(dt.datetime.combine(period_start(p + 1), dt.time(9), dt.UTC))
        for inst, agency in zip(city.agencies, d.agencies, strict=True):
            records = city.records(inst.id, p, d.slot_of)
            with meter.phase("submit"):
                envelope = send("submission", agency.submit(records, p))
            with meter.phase("ingest"):
                receipt = send("ingest-receipt", d.aggregator.ingest(envelope))
            with meter.phase("submit"):
                agency.accept_receipt(receipt)

    # -- Phase 5, reveal: every subject's grade through the registry (the aggregator
    #    prepares the blocks, the key holder decrypts, the notice is logged before the
    #    grades leave), then a bank's request for one subject.
    clock.advance_to(clock.now + dt.timedelta(hours=1))

    def reveal_one(request: bytes) -> bytes:
        send("grade-request", request)
        answer = d.key_holder.answer(send("reveal-request", d.aggregator.prepare_reveal(request)))
        logged = d.aggregator.release(send("reveal-notice", answer.notice))
        d.key_holder.check_logged(answer, send("log-inclusion", logged))
        return send("grade-response", answer.response)

    with meter.phase("reveal"):
        request = d.registry.grade_request(range(n), last)
        revealed = read_grades(d.params, request, reveal_one(request))
        batch = cs.revealer.last if cs is not None and cs.revealer is not None else None
        rp_slot = int(d.slot_of[0])
        rp_request = d.bank.request_grade(rp_slot, d.bank_purpose, last)
        rp_grade = d.bank.read_grade(rp_request, reveal_one(rp_request))

    # The god view (not a protocol phase; timed with the audit): in committee runs, the
    # total noise each revealed grade carries, as the members whose shares were added drew it.
    noise: NoiseTotals | None = None
    if cs is not None:
        with meter.phase("audit"):
            assert cs.witness is not None and batch is not None
            members, cap_labels = len(cs.key_shares), catalog.cap_labels()
            noise = committee_noise_totals(cs.witness, batch.excluded, members, last, n, cap_labels)

    # -- Phase 6, subject access: sampled subjects get their events from every agency,
    #    check them against the logged commitments and recompute their grade.
    table = city.table(d.slot_of)
    pick = sample_access_subjects(table, access_sample, np.random.default_rng(city.seed + 1))
    access = AccessTally()
    with meter.phase("access"):
        inclusions = {
            rec.envelope_hash: send("log-inclusion", d.aggregator.log_inclusion(rec.envelope_hash))
            for rec in d.ledger.envelopes()
        }
        ident = {s: i for i, s in d.slots.items()}  # slot -> identity: the registry's secret
        for slot in map(int, pick):
            subject = Subject(slot, d.params)
            for reg in d.registrations:
                subject.learn_agency(reg)
            events = []
            for agency in d.agencies:
                req = send("access-request", d.registry.access_request(ident[slot], first, last))
                resp = send("access-response", agency.answer_access(req))
                events += subject.verify_access(req, resp, inclusions)
            own = subject.explain(events, last)[1]
            access.record(catalog, events, last, own, revealed[slot], slot=slot, noise=noise)

    # -- Phase 7, audit: the log verified with the aggregator's key alone; grades compared
    #    with the oracle (committee: plus the noise drawn, which only the god view knows).
    with meter.phase("audit"):
        log = verify_log(d.ledger.connection, d.aggregator_public_key)
        log_ok = log.size == d.ledger.log.size and log.unsigned_leaves == 0
        comparison = compare_with_oracle(
            catalog, table, last, revealed, relying_party=(rp_slot, rp_grade), noise=noise
        )

    result = run_result(city, d.params, d.agencies, meter, comparison, access, log.size, log_ok)
    d.ledger.close()
    if cs is not None:
        assert batch is not None and noise is not None
        _committee_result(result, cs, batch, comparison, noise, sampled=len(pick))
        cs.close()

    # -- With reveal="he" or "exact", the same events are graded a second time: under CKKS
    #    by one grading authority, or by the dealer-free k-of-n BFV committee.
    if reveal == "he":
        _he_result(result, city, d.slot_of, comparison, meter.phase, he_authority)
    if reveal == "exact":  # issue 10: the dealer-free exact reveal (psc/sim/exact_driver.py)
        from psc.sim.exact_driver import exact_reveal

        oracle = comparison.oracle.grade
        exact_reveal(result, city, d.slot_of, last, oracle, rp_slot, meter.phase, exact_params)
    result.phase_seconds = meter.phase_seconds()
    return result
