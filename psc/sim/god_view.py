"""The simulation's god view: checks of a run that no single party could make.

The driver runs every party, so it can compare revealed grades with the plaintext oracle
over all events and, in committee runs, with the noise each member actually drew
(:class:`~psc.sim.deployment.SimulationNoiseWitness`).  That view is the harness's, never
a protocol role's: nothing it learns flows back into a party or a message.

The checks, for any driver (in one process or across processes):
:func:`committee_noise_totals` (the noise each grade carries, as :class:`NoiseTotals`),
:func:`expected_grades` (what each revealed grade must equal), :func:`compare_with_oracle`
(every revealed grade and a relying party's), :func:`misgrade_rate_plausible` (the noisy
grades' misgrade rate against the rate the noise predicts), :func:`sample_access_subjects`
(who exercises the right of access) and :class:`AccessTally` (what they recomputed).
The private ``_committee_result`` and ``_he_result`` fill in an in-process run's result.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from psc.hazmat.he.circuit import GradingCircuit
    from psc.parties.grading_authority import GradingAuthority

from psc.catalog import Catalog
from psc.dp.accounting import ApproxDP
from psc.events import Event, EventTable, IntArray
from psc.oracle import Scores, cap_counts, caps_from_counts, grades_of, score
from psc.parties.committee import (
    CommitteeReveal,
    expected_misgrade_rate,
    subject_key,
)
from psc.protocol.signing import new_signing_key, public_bytes
from psc.sim.city import City
from psc.sim.committee_fields import fill_committee_fields
from psc.sim.deployment import CommitteeSetup, SimulationNoiseWitness
from psc.sim.results import HeReveal, RunResult


@dataclass(frozen=True)
class NoiseTotals:
    """God view: per slot, the total noise a reveal added to each subject's raw score
    (``score``) and to its cap counts (``caps``, by cap label), and whether that total is
    known exactly (``witnessed``: every member whose shares were added drew exactly one
    share for the slot and every label; a slot that is not cannot be checked and counts as
    a mismatch).

    Whoever holds it can undo the differential privacy of every grade of the run: the
    harness only, never a party or a message.
    """

    score: IntArray
    caps: dict[str, IntArray]
    witnessed: npt.NDArray[np.bool_]

    def cap_noise(self, slot: int) -> dict[str, int]:
        """One slot's noise per cap label."""
        return {label: int(v[slot]) for label, v in self.caps.items()}


def committee_noise_totals(
    witness: SimulationNoiseWitness,
    excluded: Mapping[int, str],
    members: int,
    period: int,
    n_subjects: int,
    cap_labels: Sequence[str],
) -> NoiseTotals:
    """The noise a committee grade reveal of ``period`` added to the grades of slots
    ``0..n_subjects-1``, for the score and each of ``cap_labels``, from what ``witness``
    recorded.

    ``excluded`` is the combiner's record of that reveal (member -> reason,
    :attr:`~psc.parties.committee.CommitteeReveal.excluded`); ``members`` the committee's
    size ``n`` (members are numbered ``1..n``).  The total is summed over the
    members whose noise shares the combiner added: all but those excluded for a missing or
    bad noise share (a member excluded only for its decryption share still added noise).
    Reads the witness's files; raises nothing of its own.
    """
    skipped = {
        i for i, why in excluded.items() if why.startswith(("no noise share", "bad noise share"))
    }
    added = [i for i in range(1, members + 1) if i not in skipped]
    total, witnessed = witness.totals(period, added, n_subjects)
    caps: dict[str, IntArray] = {}
    for label in cap_labels:
        caps[label], cap_ok = witness.totals(period, added, n_subjects, label)
        witnessed &= cap_ok
    return NoiseTotals(total, caps, witnessed)


def expected_grades(
    catalog: Catalog,
    oracle: Scores,
    counts: Mapping[str, IntArray],
    noise: NoiseTotals | None = None,
) -> IntArray:
    """The grade index every revealed grade must equal, by slot.

    Without ``noise``: the noiseless oracle's grade (``oracle.grade``).  With it: the
    oracle's grade of each subject's raw score plus its score noise (unclamped, as the
    committee grades it) under the caps of its live cap ``counts`` plus their noise.
    """
    if noise is None:
        return oracle.grade.astype(np.int64)
    noisy = {label: c + noise.caps[label] for label, c in counts.items()}
    caps = caps_from_counts(catalog, noisy, oracle.raw.size)
    return grades_of(catalog, oracle.raw + noise.score, caps).astype(np.int64)


@dataclass(frozen=True)
class OracleComparison:
    """Revealed grades against the plaintext oracle over every event (see
    :func:`compare_with_oracle`)."""

    oracle: Scores  # the noiseless oracle at the evaluation period
    cap_counts: dict[str, IntArray]  # live cap counts by label, noiseless
    revealed: IntArray  # revealed grade index by slot
    expected: IntArray  # what each must equal (:func:`expected_grades`)
    mismatches: int  # revealed != expected, or the slot's noise not witnessed
    noiseless_mismatches: int  # revealed != the noiseless oracle's grade
    relying_party_slot: int  # the slot a relying party asked for
    relying_party_grade: str  # the grade it was given
    relying_party_ok: bool  # its grade equals the slot's expected grade, noise witnessed

    @property
    def misgrade_rate(self) -> float:
        """Fraction of revealed grades that differ from the noiseless oracle's."""
        return self.noiseless_mismatches / self.oracle.grade.size


def compare_with_oracle(
    catalog: Catalog,
    table: EventTable,
    period: int,
    revealed: Mapping[int, str],
    *,
    relying_party: tuple[int, str],
    noise: NoiseTotals | None = None,
) -> OracleComparison:
    """Compare every slot's revealed grade label in ``revealed`` (one per slot of
    ``table``) and a relying party's ``(slot, grade label)`` with the oracle's grades of
    ``table`` (every event, subjects by slot) at ``period``, plus ``noise`` when the reveal
    added DP noise (:func:`expected_grades`).

    Raises ``KeyError`` if a slot has no revealed grade and ``ValueError`` for a label
    that is not one of the catalog's grades.
    """
    oracle = score(table, period)
    counts = cap_counts(table, period)
    labels = catalog.labels
    got = np.array([labels.index(revealed[s]) for s in range(table.n_subjects)])
    expected = expected_grades(catalog, oracle, counts, noise)
    unwitnessed = ~noise.witnessed if noise is not None else np.zeros(got.size, dtype=bool)
    rp_slot, rp_grade = relying_party
    return OracleComparison(
        oracle=oracle,
        cap_counts=counts,
        revealed=got,
        expected=expected,
        mismatches=int(np.count_nonzero((got != expected) | unwitnessed)),
        noiseless_mismatches=int(np.count_nonzero(got != oracle.grade)),
        relying_party_slot=rp_slot,
        relying_party_grade=rp_grade,
        relying_party_ok=rp_grade == labels[int(expected[rp_slot])]
        and not bool(unwitnessed[rp_slot]),
    )


def misgrade_rate_plausible(rate: float, expected: float, n_subjects: int) -> bool:
    """Whether a misgrade rate against the noiseless oracle agrees with the rate the noise
    predicts: within ``5 sqrt(expected / n)`` (at least five binomial standard errors)
    plus ``1 / n``."""
    return abs(rate - expected) <= 5 * math.sqrt(expected / n_subjects) + 1 / n_subjects


def sample_access_subjects(table: EventTable, size: int, rng: np.random.Generator) -> IntArray:
    """The slots whose subjects exercise their right of access in a run: ``size`` slots
    (fewer if there are not that many), a fifth of them (``size // 5``) among subjects with
    no event in ``table`` (they have nothing to explain, which must check out too), the
    rest among subjects with events; without repetition, drawn from ``rng``.
    """
    with_events = np.unique(table.subject)
    without = np.setdiff1d(np.arange(table.n_subjects), with_events)
    n_without = min(without.size, size // 5)
    return np.concatenate(
        [
            rng.choice(with_events, size=min(size - n_without, with_events.size), replace=False),
            rng.choice(without, size=n_without, replace=False),
        ]
    )


@dataclass
class AccessTally:
    """God view over the subject-access phase (:meth:`record` one subject at a time)."""

    checked: int = 0  # subjects whose access answers were verified
    consistent: int = 0  # of those, whose recomputed grade equals the revealed one
    noiseless_consistent: int = 0  # of those, whose noiseless recomputed grade does

    def record(
        self,
        catalog: Catalog,
        events: Sequence[Event],
        period: int,
        own_grade: str,
        revealed: str,
        *,
        slot: int,
        noise: NoiseTotals | None = None,
    ) -> bool:
        """Record one subject: ``events`` are the events it verified, ``own_grade`` the grade
        it recomputed from them, ``revealed`` the grade revealed for its ``slot``.  Without
        ``noise`` it is consistent when its own grade equals the revealed one; with noise,
        when the oracle's grade of its events plus the noise drawn for its slot does and
        that noise was witnessed.  Returns whether it was consistent."""
        self.checked += 1
        self.noiseless_consistent += own_grade == revealed
        if noise is None:
            ok = own_grade == revealed
        else:
            grade = _noisy_grade(
                catalog, events, period, int(noise.score[slot]), noise.cap_noise(slot)
            )
            ok = bool(noise.witnessed[slot]) and grade == revealed
        self.consistent += ok
        return ok


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
    comparison: OracleComparison,
    noise: NoiseTotals,
    *,
    sampled: int,
) -> None:
    """Fill in what the committee reveal spent, how accurate it was and how many subjects'
    noise was witnessed (``batch``: the registry's batch reveal), and the committee's own
    checks in ``ok``: every one of the ``sampled`` subjects was checked in the access
    phase, the relying party's repeated query got the grade stored by the batch reveal,
    and the misgrade rate is what the noise predicts (:func:`misgrade_rate_plausible`)."""
    assert cs.committee is not None and cs.revealer is not None
    p = cs.committee.params
    spent = [cs.committee.budget.spent(subject_key(s)) for s in range(result.subjects)]
    worst = max(spent, key=lambda x: x.epsilon if isinstance(x, ApproxDP) else 0)
    assert isinstance(worst, ApproxDP)
    excluded = set(batch.excluded)
    last = cs.revealer.last
    if last is not None:
        excluded |= set(last.excluded)
    fill_committee_fields(
        result,
        p,
        worst,
        cs.budget.epsilon,
        excluded,
        expected_misgrade_rate(
            p,
            comparison.oracle.raw,
            comparison.cap_counts,
            comparison.oracle.grade.astype(np.int64),
        ),
    )
    result.noise_witnessed = int(np.count_nonzero(noise.witnessed))
    rp_slot = comparison.relying_party_slot
    result.ok = (
        result.ok
        and result.access_checked == sampled
        # the repeat got the stored grade
        and result.relying_party_grade == p.catalog.labels[int(comparison.revealed[rp_slot])]
        and misgrade_rate_plausible(
            result.misgrade_rate_vs_noiseless_oracle, result.expected_misgrade_rate, result.subjects
        )
    )


def _he_result(
    result: RunResult,
    city: City,
    slot_of: IntArray,
    comparison: OracleComparison,
    phase: Callable[[str], AbstractContextManager[None]],
    authority: GradingAuthority | None,
) -> None:
    """``reveal="he"``: grade the same events under CKKS encryption and check the grades
    against the oracle and the Paillier run's (``comparison``), and the relying party's.

    The parties of this path (:mod:`psc.hazmat.he`): agencies (signed, encrypted submissions), the
    aggregator (forwards them to the grading log; no key) and one grading authority (the
    secret key), which evaluates the published circuit itself on its logged inputs for
    each signed request and decrypts nothing else (``protocols/he-grading.md``).
    """
    from psc.hazmat.he.circuit import GradingCircuit
    from psc.parties.grading_authority import GradingAuthority
    from psc.protocol.messages import GradeRequest as HeGradeRequest
    from psc.protocol.signing import seal
    from psc.sim.he_driver import he_submission, period_vectors

    catalog, n, at = city.catalog, city.n_subjects, city.periods[-1]
    rp_slot = comparison.relying_party_slot
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
    S = circuit.slots
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
    run = HeRun(
        grades=answers,
        requests=[slots for _, slots in requests],
        score_submissions=n_score,
        cap_submissions=n_cap,
        submission_bytes=sent,
        context_bytes=auth.public.byte_size,
        seconds=seconds,
        per_agency=per_agency,
        where="in one process",
    )
    fill_he_result(result, catalog, circuit, run, comparison)


@dataclass
class HeRun:
    """What the CKKS grading of a run observed, wherever its parties ran: the grades of each
    request (the registry's parts, then the bank's one slot last), what was submitted, and
    the seconds of each phase (``grade`` and ``decrypt`` when the authority ran here,
    ``reveal`` when it answered over HTTP)."""

    grades: list[dict[int, int]]  # per request: slot -> grade index
    requests: list[tuple[int, ...]]  # per request: its slots
    score_submissions: int
    cap_submissions: int
    submission_bytes: int
    context_bytes: int
    seconds: dict[str, float]
    per_agency: list[str]  # what each agency saw and sent
    where: str  # "in one process" or "its own process"


def fill_he_result(
    result: RunResult,
    catalog: Catalog,
    circuit: GradingCircuit,
    run: HeRun,
    comparison: OracleComparison,
) -> None:
    """Check a CKKS grading ``run`` against the oracle and the Paillier run's grades
    (``comparison``) and record it in ``result`` (``result.he``, grades, checks, note)."""
    from psc.hazmat.he.flooding import FLOOD_SIGMA
    from psc.hazmat.he.params import MAX_MODULUS_BITS

    n = comparison.oracle.grade.size
    paillier, oracle = comparison.revealed, comparison.oracle.grade
    rp_slot = comparison.relying_party_slot
    S, params = circuit.slots, circuit.params
    he = np.zeros(n, dtype=np.int64)
    for answer in run.grades[:-1]:
        for slot, g in answer.items():
            he[slot] = g
    labels = catalog.labels
    rp_grade = labels[run.grades[-1][rp_slot]]
    mismatches = int(np.count_nonzero(he != oracle))
    sent = run.submission_bytes
    seen = {
        "agencies": run.per_agency,
        "aggregator": [
            f"{run.score_submissions} score and {run.cap_submissions} cap-counter ciphertexts "
            f"({sent:,} bytes) in signed submissions, forwarded to the grading log; no secret "
            "key, nothing in the clear"
        ],
        "grading-authority": [
            f"request {i + 1} (the registry's batch request): recomputed the live sums from "
            f"its log, ran the published circuit on part {slots[0] // S} of {S} slots, "
            f"flooded and decrypted; released {len(slots):,} grades"
            for i, slots in enumerate(run.requests[:-1])
        ]
        + [
            f"request {len(run.requests)} (the bank): slot {rp_slot}, the same circuit on its "
            "logged inputs; released one grade"
        ],
        "registry": [
            f"the grades of all {n:,} subjects (the batch request made on their behalf, to "
            "notify each subject of its own grade)"
        ],
        "relying-party": [f"slot {rp_slot}: grade {rp_grade}"],
    }
    seconds = run.seconds
    total = seconds.get("grade", 0.0) + seconds.get("decrypt", 0.0) + seconds.get("reveal", 0.0)
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
        context_bytes=run.context_bytes,
        parts=-(-n // S),
        score_submissions=run.score_submissions,
        cap_submissions=run.cap_submissions,
        submission_bytes=sent,
        bytes_per_subject=round(sent / n, 1),
        queries=len(run.requests),
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
        f"128-bit security, {params.levels} levels), the grading authority {run.where}; it "
        "holds the secret key, evaluates the published circuit itself on its log of signed "
        "submissions for each signed request, floods from the OS CSPRNG and releases only "
        "rounded grades. The Paillier run revealed through the trusted key holder; both are "
        "compared with the oracle. Agencies submit one dense vector per period, retention "
        "class and counter, zero vectors included"
    )
